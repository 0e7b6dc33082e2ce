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

from . import filemodes, tls
from .auth.accounts import Accounts, LoginPolicy
from .auth.passwords import PasswordHasher
from .auth.tokens import AccessTokens
from .auth_gate import AuthGate
from .config import SERVICES, Settings
from .db import Database
from .db.channel import ChangeListener
from .db.migrations import migrate
from .errors import ConfigError, NotFound, StorageUnavailable
from .interceptors import ServerInterceptor
from .keys import load_or_create_key
from .library.audio_check.checker import AudioChecker
from .library.files import Files
from .library.uploads import Uploads
from .limits import (AUTH_REQUEST_BYTES, TOKENLESS_RECEIVING, TOKENLESS_RECEIVING_PER_ADDRESS,
                     TOKENLESS_WAIT_SECONDS)
from .memory import tune_allocator
from .metrics import Metrics, MetricsEndpoint, NullMetrics
from .peers import ClientAddresses
from .players.context import PlayerContext
from .proto import (auth_pb2, auth_pb2_grpc, file_pb2, library_pb2, library_pb2_grpc, sync_pb2,
                    sync_pb2_grpc)
from .services import file_service
from .services.art_service import ArtServicer
from .services.auth_service import AuthServicer
from .services.browse_service import BrowseServicer
from .services.file_service import FileServicer
from .services.listening_service import ListeningServicer
from .services.playlist_service import PlaylistServicer
from .services.streams import StreamLimits
from .services.sync_service import SyncServicer
from .storage import open_blob_store
from .sync.feed import Feed
from .sync.notifier import ChangeNotifier

log = logging.getLogger(__name__)

SERVICE_NAMES = {
    "auth": auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name,
    "file": file_pb2.DESCRIPTOR.services_by_name["FileService"].full_name,
    "sync": sync_pb2.DESCRIPTOR.services_by_name["SyncService"].full_name,
}
# The player services (library.proto) ride with the service whose data they need.
PLAYER_SERVICE_NAMES = {
    "file": (library_pb2.DESCRIPTOR.services_by_name["ArtService"].full_name,),
    "sync": tuple(library_pb2.DESCRIPTOR.services_by_name[name].full_name
                  for name in ("PlaylistService", "ListeningService", "BrowseService")),
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
    # Bounds on connections (issue 12; docs/security.md has the table). A client opens
    # another connection for calls beyond a connection's streams.
    ("grpc.max_concurrent_streams", 100),
    # A connection without calls for 5 minutes is closed; clients reconnect unnoticed.
    ("grpc.max_connection_idle_ms", 5 * 60_000),
    # A connection lives 6 h (grpc adds up to 10%), then its calls get 30 minutes to end:
    # a Watch still open then breaks, and its client reconnects with its last cursor.
    ("grpc.max_connection_age_ms", 6 * 3600_000),
    ("grpc.max_connection_age_grace_ms", 30 * 60_000),
    # A connection that has not finished its handshake after 20 s is closed.
    ("grpc.server_handshake_timeout_ms", 20_000),
)
# At most this many connections at once, and at most half the open-file limit (the rest
# is for the database, blobs and uploads); connections beyond are closed at once.
MAX_CONNECTIONS = 2048
# At most this many calls handled at once (Watches included); RESOURCE_EXHAUSTED beyond.
MAX_CONCURRENT_CALLS = 2048
# How often the storage watcher probes the blob store: while it answers, and while not.
STORAGE_PROBE_INTERVAL = 5.0
STORAGE_RETRY_INTERVAL = 1.0
# How often a server on PostgreSQL checks that the database answers.
DATABASE_PROBE_INTERVAL = 5.0
# How long shutdown waits for cancelled handlers to unwind after the grace period:
# an interrupted resumable upload saves its progress then (an fsync and a write),
# which a loaded machine may take seconds over.
HANDLER_UNWIND_SECONDS = 15.0


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
        self._tls: tuple[tls.CertificateReloader, str] | None = None
        self._storage_ready = False
        self._database_ready = True  # watched on PostgreSQL (an SQLite file is always there)
        self._listener: ChangeListener | None = None
        self._storage_trouble = asyncio.Event()  # set when a store call met an error
        self.streams = StreamLimits()  # each account's open streams, per kind
        self.addresses = ClientAddresses(settings.trusted_proxies)

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
        # Before anything is opened: a missing certificate fails the start at once.
        self._tls = tls.server_certificates(settings)
        filemodes.warn_if_open_to_others(settings.data_dir)
        self.db = Database(settings.database_path_or_url())
        self._stack.push_async_callback(self.db.close)
        if self.db.path is not None:  # SQLite: the file holds password hashes
            filemodes.create_private(self.db.path)
            filemodes.make_private(*filemodes.database_files(self.db.path))
        await migrate(self.db.writer_engine())
        if self.db.path is not None:
            filemodes.make_private(*filemodes.database_files(self.db.path))

        self.notifier = ChangeNotifier()
        if self.db.dialect == "postgresql":
            # Changes committed by other replicas wake this one's Watch streams.
            self._listener = ChangeListener(self.db.url, self.notifier.published,
                                            self.notifier.wake_all)
            await self._listener.start()
            self._stack.push_async_callback(self._listener.close)
        servicers = {
            "auth": lambda: auth_pb2_grpc.add_AuthServiceServicer_to_server(
                AuthServicer(self.accounts, self.addresses), self._server),
            "file": self._add_file_services,
            "sync": self._add_sync_services,
        }
        observe = None
        if settings.metrics_port is not None:
            self.metrics = Metrics()
            observe = self.metrics.observe_rpc
        self.accounts = self._build_accounts()
        await self._require_anonymous_user()
        if "auth" in self.services:
            await self.accounts.warm_up()
        if "file" in self.services:
            await self._open_files()
        if "sync" in self.services:
            await self._open_feed()
        # Token-less requests are read only once admitted (limits.py has the bounds).
        self.auth_gate = AuthGate(TOKENLESS_RECEIVING, TOKENLESS_RECEIVING_PER_ADDRESS,
                                  TOKENLESS_WAIT_SECONDS)
        self._interceptor = ServerInterceptor(self.accounts, observe=observe,
                                              max_calls=MAX_CONCURRENT_CALLS,
                                              gate=self.auth_gate, addresses=self.addresses)
        self._server = grpc.aio.server(
            interceptors=[self._interceptor],
            options=(*_grpc_options(self.services), ("grpc.max_allowed_incoming_connections",
                                                     connection_bound(raise_open_file_limit()))))
        for service in self.services:
            servicers[service]()
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        names = [SERVICE_NAMES[s] for s in self.services]
        players = [name for s in self.services for name in PLAYER_SERVICE_NAMES.get(s, ())]
        _serve_reflection([*names, *players, health.SERVICE_NAME], self._server)
        self._bind()
        await self._server.start()
        self._stack.push_async_callback(self._stop_server)
        if isinstance(self.metrics, Metrics):
            endpoint = MetricsEndpoint(self.metrics, settings.metrics_host, settings.metrics_port)
            self.metrics_port = await endpoint.start()
            self._stack.push_async_callback(endpoint.close)
        await self._publish_health()
        if "file" in self.services:
            watcher = asyncio.create_task(self._watch_storage(), name="storage-watcher")
            self._stack.push_async_callback(_cancel, watcher)
        if self.db.dialect == "postgresql":
            watcher = asyncio.create_task(self._watch_database(), name="database-watcher")
            self._stack.push_async_callback(_cancel, watcher)
        where = ", ".join(f"{s} {settings.host}:{p}" for s, p in self.ports.items())
        log.info("musicsync serving %s on %s", "+".join(self.services), where)
        if self._tls is not None:
            log.info(self._tls[1])
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
        # Alone on SQLite, the sync service does not see uploads commit: it polls instead.
        # On PostgreSQL every commit is announced to every replica (db/channel.py).
        heard = "file" in self.services or self.db.dialect == "postgresql"
        poll = None if heard else FEED_POLL_INTERVAL
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
                self._storage_ready = ready
                await self._publish_health()

    async def _watch_database(self) -> None:
        """Every service is NOT_SERVING while PostgreSQL does not answer (a sleeping task)."""
        while True:
            await asyncio.sleep(DATABASE_PROBE_INTERVAL if self._database_ready
                                else STORAGE_RETRY_INTERVAL)
            answers = await self.db.answers()
            if answers != self._database_ready:
                self._database_ready = answers
                if answers:
                    log.info("%s answers again: SERVING", self.db.description)
                else:
                    log.error("%s does not answer: NOT_SERVING until it does",
                              self.db.description)
                await self._publish_health()

    async def _publish_health(self) -> None:
        """Each service's status from what it depends on: the database, the blob store."""
        for name in ("", *(SERVICE_NAMES[s] for s in self.services)):
            up = self._database_ready and (name != SERVICE_NAMES["file"] or self._storage_ready)
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING if up
                                   else health_pb2.HealthCheckResponse.NOT_SERVING)

    def _add_file_services(self) -> None:
        """file.FileService, and library.ArtService (cover art lives in the blob store)."""
        file_service.add_to_server(self._file_servicer(), self._server)
        library_pb2_grpc.add_ArtServiceServicer_to_server(
            ArtServicer(self._player_context()), self._server)

    def _add_sync_services(self) -> None:
        """sync.SyncService, and the player services whose changes travel the feed."""
        sync_pb2_grpc.add_SyncServiceServicer_to_server(self._sync_servicer(), self._server)
        context = self._player_context()
        library_pb2_grpc.add_PlaylistServiceServicer_to_server(
            PlaylistServicer(context), self._server)
        library_pb2_grpc.add_ListeningServiceServicer_to_server(
            ListeningServicer(context), self._server)
        library_pb2_grpc.add_BrowseServiceServicer_to_server(
            BrowseServicer(context), self._server)

    def _player_context(self) -> PlayerContext:
        return PlayerContext(self.db, self.notifier, getattr(self, "store", None), self.clock)

    def _file_servicer(self) -> FileServicer:
        return FileServicer(self.files, self.uploads, self.streams)

    def _sync_servicer(self) -> SyncServicer:
        return SyncServicer(self.db, self.feed, idle_timeout=self.settings.upload_idle_timeout,
                            streams=self.streams,
                            min_heartbeat=self.settings.watch_min_heartbeat)

    def _build_accounts(self) -> Accounts:
        settings = self.settings
        secret_key = settings.secret_key
        if secret_key is None:
            secret_key, created = load_or_create_key(settings.data_dir / "secret_key", nbytes=32)
            if created:
                log.info("generated a token signing key in %s", settings.data_dir / "secret_key")
        # A weak SECRET_KEY or SECURITY_KEY never gets here: Settings refuses it.
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
            login_policy=LoginPolicy(free_failures=settings.login_max_failures,
                                     max_delay=settings.login_window),
            anonymous_user=settings.anonymous_user, clock=self.clock, metrics=self.metrics,
            reserved_usernames=(settings.anonymous_user,) if settings.anonymous_user else ())

    async def _require_anonymous_user(self) -> None:
        """Anonymous mode needs its user to exist already: were it missing, the first phone to
        Register that name would receive every token-less call (Register refuses the name)."""
        name = self.settings.anonymous_user
        if not name:
            return
        try:
            await self.accounts.find_user(name)
        except NotFound:
            raise ConfigError(
                f"ANONYMOUS_USER is {name!r}, but there is no such user: create it first with "
                f"`musicsync user add {name}` (add --create before the first start), or unset "
                "ANONYMOUS_USER") from None

    def _registration_key(self) -> str:
        if self.settings.security_key is not None:
            return self.settings.security_key
        path = self.settings.data_dir / "security_key"
        key, created = load_or_create_key(path, nbytes=12)
        # Logged once, by the start that generates it: logs are kept and shipped
        # to more places than DATA_DIR.
        shown = f"{key} (generated now, not logged again; kept in {path}" if created else (
            f"kept in {path} (read it there: `cat {path}`")
        self._key_note = (
            f"registration key: {shown}; set SECURITY_KEY to choose your own). "
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
                actual = (self._server.add_insecure_port(address) if self._tls is None
                          else self._server.add_secure_port(address, self._tls[0].credentials()))
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


def _grpc_options(services: Sequence[str]) -> tuple:
    """GRPC_OPTIONS; alone, the auth service receives no message over AUTH_REQUEST_BYTES
    (grpc refuses it before it is read whole)."""
    if tuple(services) != ("auth",):
        return GRPC_OPTIONS
    return (*(o for o in GRPC_OPTIONS if o[0] != "grpc.max_receive_message_length"),
            ("grpc.max_receive_message_length", AUTH_REQUEST_BYTES))


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


def raise_open_file_limit() -> int:
    """Raises this process's open-file limit to its hard limit; returns the limit now.

    Every connection, upload and blob read holds a file: a common soft limit of
    1,024 let 1,100 idle connections make every other call fail (issue 12)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return soft if soft != resource.RLIM_INFINITY else wanted
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError) as exc:
        log.warning("could not raise the open-file limit from %d to %d: %s", soft, wanted, exc)
        return soft
    return wanted


def connection_bound(open_files: int) -> int:
    """Connections accepted at once: MAX_CONNECTIONS, or half the open-file limit."""
    bound = min(MAX_CONNECTIONS, max(64, open_files // 2))
    if bound < MAX_CONNECTIONS:
        log.warning("the open-file limit is %d: at most %d connections are accepted at once "
                    "(a hard `ulimit -n` of %d or more allows %d)", open_files, bound,
                    2 * MAX_CONNECTIONS, MAX_CONNECTIONS)
    return bound


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
