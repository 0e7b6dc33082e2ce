"""Wiring and lifetimes of one musicsync server process.

``App`` is an async context manager: entering it opens the database (upgrading
its schema), loads or generates the keys, builds the services and starts the
gRPC server; leaving it stops the server with a grace period and then closes
everything in reverse order.

``musicsync serve`` runs every service in one process and listens on the
auth, file and sync ports, each serving every service, so a client may point
any stub at any port. ``musicsync serve auth|file|sync`` runs one service on
one port, for layouts with a container per service.

The file service's health follows its blob store: NOT_SERVING while the store
does not answer (calls then fail UNAVAILABLE, naming the store), SERVING again
once it does. A watcher probes the store every few seconds, and at once when a
call met a storage error; the server itself stays up throughout, and starts
even when the store is down (a MinIO starting next to it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from .audio_check.checker import AudioChecker
from .auth.accounts import Accounts, LoginPolicy
from .auth.passwords import PasswordHasher
from .auth.tokens import AccessTokens
from .config import SERVICES, Settings
from .db import Database
from .db.migrations import migrate
from .errors import ConfigError, StorageUnavailable
from .feed import Feed
from .files import Files
from .interceptors import ServerInterceptor
from .keys import load_or_create_key
from .library import ChangeNotifier
from .memory import tune_allocator
from .storage import open_blob_store
from .uploads import Uploads
from .metrics import Metrics, MetricsEndpoint, NullMetrics
from .proto import auth_pb2, auth_pb2_grpc, file_pb2, sync_pb2, sync_pb2_grpc
from .services import file_service
from .services.auth_service import AuthServicer
from .services.file_service import FileServicer
from .services.sync_service import SyncServicer

log = logging.getLogger(__name__)

SERVICE_NAMES = {
    "auth": auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name,
    "file": file_pb2.DESCRIPTOR.services_by_name["FileService"].full_name,
    "sync": sync_pb2.DESCRIPTOR.services_by_name["SyncService"].full_name,
}
# How often a sync service without the file service in-process looks for changes.
FEED_POLL_INTERVAL = 1.0
# Upload chunks may be 4 MiB; leave room for the message framing around them.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024 + 64 * 1024
GRPC_OPTIONS = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # A second server on a busy port must fail rather than share it silently.
    ("grpc.so_reuseport", 0),
    # Find dead phones behind NAT on long Watch streams; let clients ping too.
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
)
# How often the storage watcher probes the blob store: while it answers, and while not.
STORAGE_PROBE_INTERVAL = 5.0
STORAGE_RETRY_INTERVAL = 1.0
# How long shutdown waits for cancelled handlers to unwind after the grace period.
HANDLER_UNWIND_SECONDS = 5.0


class App:
    """A running musicsync server; use ``async with App(settings) as app``."""

    def __init__(self, settings: Settings, services: Sequence[str] = SERVICES, *,
                 clock=time.time) -> None:
        unknown = set(services) - set(SERVICES)
        if unknown or not services:
            raise ConfigError(f"services must be among {', '.join(SERVICES)}")
        self.settings = settings
        self.services = tuple(s for s in SERVICES if s in services)
        self.clock = clock
        self.ports: dict[str, int] = {}
        self.closing = asyncio.Event()
        # Metrics: App.metrics takes reports (a no-op unless METRICS_PORT is set).
        self.metrics: Metrics | NullMetrics = NullMetrics()
        self.metrics_port: int | None = None
        self._stack = AsyncExitStack()
        self._server: grpc.aio.Server | None = None
        self._health: health.aio.HealthServicer | None = None
        self._key_note = ""
        self._storage_ready = False
        self._storage_trouble = asyncio.Event()  # set when a store call met an error

    async def __aenter__(self) -> App:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.stop()

    async def _start(self) -> None:
        settings = self.settings
        tune_allocator()
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.db = Database(settings.database_path_or_url())
        self._stack.push_async_callback(self.db.close)
        await migrate(self.db.writer_engine())

        self.accounts = self._build_accounts()
        if "auth" in self.services:
            await self.accounts.warm_up()
        self.notifier = ChangeNotifier()
        servicers = {
            "auth": lambda: auth_pb2_grpc.add_AuthServiceServicer_to_server(
                AuthServicer(self.accounts), self._server),
            "file": lambda: file_service.add_to_server(self._file_servicer(), self._server),
            "sync": lambda: sync_pb2_grpc.add_SyncServiceServicer_to_server(
                self._sync_servicer(), self._server),
        }
        observe = None
        if settings.metrics_port is not None:
            self.metrics = Metrics()
            observe = self.metrics.observe_rpc
        if "file" in self.services:
            await self._open_files()
        if "sync" in self.services:
            await self._open_feed()
        self._interceptor = ServerInterceptor(self.accounts, observe=observe)
        self._server = grpc.aio.server(
            interceptors=[self._interceptor],
            options=GRPC_OPTIONS)
        for service in self.services:
            servicers[service]()
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        names = [SERVICE_NAMES[s] for s in self.services]
        _serve_reflection([*names, health.SERVICE_NAME], self._server)
        self._bind()
        await self._server.start()
        self._stack.push_async_callback(self._stop_server)
        if isinstance(self.metrics, Metrics):
            endpoint = MetricsEndpoint(self.metrics, settings.host, settings.metrics_port)
            self.metrics_port = await endpoint.start()
            self._stack.push_async_callback(endpoint.close)
        for name in ("", *names):
            down = name == SERVICE_NAMES["file"] and not self._storage_ready
            await self._health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING if down
                                   else health_pb2.HealthCheckResponse.SERVING)
        if "file" in self.services:
            watcher = asyncio.create_task(self._watch_storage(), name="storage-watcher")
            self._stack.push_async_callback(_cancel, watcher)
        where = ", ".join(f"{s} {settings.host}:{p}" for s, p in self.ports.items())
        log.info("musicsync serving %s on %s", "+".join(self.services), where)
        if self._key_note:
            log.info(self._key_note.replace("{port}", str(self.ports.get("auth"))))

    async def _open_files(self) -> None:
        """The blob store and the file domain, with the sweeper of stale uploads."""
        settings = self.settings
        alarm = _StorageAlarm(self.metrics, asyncio.get_running_loop(), self._storage_trouble)
        self.store = open_blob_store(settings, alarm)
        self._stack.push_async_callback(self.store.close)
        self.files = Files(self.db, self.store, self.notifier, user_quota=settings.user_quota,
                           metrics=self.metrics, clock=self.clock)
        self.audio = AudioChecker()
        self._stack.push_async_callback(self.audio.close)
        self.uploads = Uploads(self.files, max_file_size=settings.max_file_size,
                               idle_timeout=settings.upload_idle_timeout,
                               session_ttl=settings.upload_session_ttl, audio=self.audio)
        try:
            await self._open_store()
            self._storage_ready = True
        except StorageUnavailable as exc:
            log.error("%s; the file service is NOT_SERVING until it answers", exc.message)
        sweeper = asyncio.create_task(self.uploads.sweep_forever(), name="upload-sweeper")
        self._stack.push_async_callback(_cancel, sweeper)

    async def _open_feed(self) -> None:
        """The change feed, with its hourly pruning of old events."""
        # Alone, the sync service does not see uploads commit: it polls instead.
        poll = None if "file" in self.services else FEED_POLL_INTERVAL
        self.feed = Feed(self.db, self.notifier, retention=self.settings.tombstone_retention,
                         poll_interval=poll, clock=self.clock)
        pruner = asyncio.create_task(self.feed.prune_forever(), name="feed-pruner")
        self._stack.push_async_callback(_cancel, pruner)

    async def _open_store(self) -> None:
        """Opens the blob store, recovers uploads a crash stopped and sweeps stale ones."""
        await self.store.open()
        await self.uploads.recover()
        await self.files.recover()
        await self.uploads.sweep()

    async def _watch_storage(self) -> None:
        """Keeps the file service's health in step with the blob store (a sleeping task)."""
        name = SERVICE_NAMES["file"]
        ready = self._storage_ready
        opened = ready
        while True:
            try:
                async with asyncio.timeout(STORAGE_PROBE_INTERVAL if ready
                                           else STORAGE_RETRY_INTERVAL):
                    await self._storage_trouble.wait()
            except TimeoutError:
                pass
            self._storage_trouble.clear()
            try:
                if opened:
                    await self.store.check()
                else:  # it was down when the server started
                    await self._open_store()
                    opened = True
                answers = True
            except StorageUnavailable:
                answers = False
            except Exception:  # noqa: BLE001 - a bug here must not stop the watching
                log.exception("probing %s failed", self.store.description)
                answers = False
            if answers != ready:
                ready = answers
                if ready:
                    log.info("%s answers again: the file service is SERVING",
                             self.store.description)
                else:
                    log.error("%s does not answer: the file service is NOT_SERVING until it "
                              "does", self.store.description)
                await self._health.set(name, health_pb2.HealthCheckResponse.SERVING if ready
                                       else health_pb2.HealthCheckResponse.NOT_SERVING)

    def _file_servicer(self) -> FileServicer:
        return FileServicer(self.files, self.uploads)

    def _sync_servicer(self) -> SyncServicer:
        return SyncServicer(self.db, self.feed, idle_timeout=self.settings.upload_idle_timeout)

    def _build_accounts(self) -> Accounts:
        settings = self.settings
        secret_key = settings.secret_key
        if secret_key is None:
            secret_key, created = load_or_create_key(settings.data_dir / "secret_key", nbytes=32)
            if created:
                log.info("generated a token signing key in %s", settings.data_dir / "secret_key")
        elif len(secret_key.encode()) < 32:
            log.warning("SECRET_KEY is shorter than 32 bytes; a longer random key is safer")
        registration_key = None
        if "auth" in self.services and settings.registration == "open":
            registration_key = self._registration_key()
        if settings.anonymous_user:
            log.warning("anonymous mode is on: File/Sync calls without a token act as user %r",
                        settings.anonymous_user)
        hasher = PasswordHasher(time_cost=settings.argon2_time_cost,
                                memory_kib=settings.argon2_memory_kib,
                                parallelism=settings.argon2_parallelism)
        return Accounts(
            self.db, hasher, AccessTokens(secret_key, settings.access_token_ttl),
            registration_key=registration_key, refresh_ttl=settings.refresh_token_ttl,
            login_policy=LoginPolicy(settings.login_max_failures, settings.login_window),
            anonymous_user=settings.anonymous_user, clock=self.clock)

    def _registration_key(self) -> str:
        if self.settings.security_key is not None:
            return self.settings.security_key
        path = self.settings.data_dir / "security_key"
        key, _ = load_or_create_key(path, nbytes=12)
        self._key_note = (
            f"registration key: {key} (kept in {path}; set SECURITY_KEY to choose your own). "
            "To register a phone, enter it with a username and password in the app, which "
            "calls auth.AuthService/Register on port {port}")
        return key

    def _bind(self) -> None:
        settings = self.settings
        if len(self.services) == 1:
            service = self.services[0]
            wanted = {service: settings.port if settings.port is not None
                      else settings.port_of(service)}
        else:
            wanted = {service: settings.port_of(service) for service in SERVICES}
        bound: dict[int, int] = {}
        for service, port in wanted.items():
            if port != 0 and port in bound:  # two services configured on one port
                self.ports[service] = bound[port]
                continue
            address = f"{settings.host}:{port}"
            try:
                actual = self._server.add_insecure_port(address)
            except RuntimeError as exc:
                raise ConfigError(f"cannot listen on {address}: {exc}; is the port in use?") from None
            bound[port] = actual
            self.ports[service] = actual

    async def _stop_server(self) -> None:
        self.closing.set()
        await self.notifier.close()  # Watch streams end, so clients reconnect elsewhere
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        await self._server.stop(self.settings.shutdown_grace)
        # The handlers cancelled at the end of the grace period unwind before the
        # database and the store they use are closed.
        await self._interceptor.drain(HANDLER_UNWIND_SECONDS)

    async def stop(self) -> None:
        """Stops accepting calls, lets running ones finish within the grace period, closes all."""
        await self._stack.aclose()

    async def wait_for_termination(self) -> None:
        await self._server.wait_for_termination()


REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"


def _serve_reflection(service_names: list[str], server: grpc.aio.Server) -> None:
    """Serves reflection as grpc.reflection.v1alpha and, for newer clients, v1.

    grpcio-reflection implements only v1alpha; v1's messages are the same on the
    wire, so the same servicer answers under the v1 name, and a copy of the v1alpha
    descriptor renamed to v1 lets reflection describe the v1 service too.
    """
    _add_v1_reflection_descriptor()
    servicer = reflection.aio.ReflectionServicer(
        [*service_names, reflection.SERVICE_NAME, REFLECTION_V1])
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    handlers = {"ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString)}
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(REFLECTION_V1, handlers),))
    server.add_registered_method_handlers(REFLECTION_V1, handlers)


def _add_v1_reflection_descriptor() -> None:
    """grpc/reflection/v1/reflection.proto in the default pool (once per process)."""
    pool = descriptor_pool.Default()
    name = "grpc/reflection/v1/reflection.proto"
    try:
        pool.FindFileByName(name)
        return
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    old, new = proto.package, "grpc.reflection.v1"
    proto.name, proto.package = name, new
    for message in proto.message_type:
        for field in message.field:
            if field.type_name:
                field.type_name = field.type_name.replace(f".{old}.", f".{new}.")
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(f".{old}.", f".{new}.")
            method.output_type = method.output_type.replace(f".{old}.", f".{new}.")
    pool.AddSerializedFile(proto.SerializeToString())


class _StorageAlarm:
    """The metrics sink given to the blob store: counts its errors as App.metrics does, and
    wakes the storage watcher to probe the store at once (from any thread)."""

    def __init__(self, metrics, loop: asyncio.AbstractEventLoop, trouble: asyncio.Event) -> None:
        self._metrics = metrics
        self._loop = loop
        self._trouble = trouble

    def storage_error(self, operation: str) -> None:
        self._metrics.storage_error(operation)
        try:
            self._loop.call_soon_threadsafe(self._trouble.set)
        except RuntimeError:  # the loop is closed: the server is gone
            pass

    def __getattr__(self, name: str):
        return getattr(self._metrics, name)


async def _cancel(task: asyncio.Task) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
