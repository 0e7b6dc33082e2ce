"""Property-based fuzzing of every RPC against one real server.

Hypothesis generates requests for every method of auth.AuthService,
file.FileService, sync.SyncService, the player services of library.proto,
grpc.health.v1.Health and both reflection services: messages built from the descriptors (with values at the edges of
each type, hashes the server knows, page tokens, huge strings), request streams
in any order (a chunk before the metadata, metadata twice, a cursor in a later
Diff message), and raw bytes that may not decode at all. Whatever comes in,
the server must answer a clean status: never INTERNAL or UNKNOWN, no Python
class name, traceback or file-system path in the message, no ERROR in its log,
and at the end it is still SERVING with its memory bounded.

The server runs once for the module, in a thread of its own with its own event
loop; the tests call it through blocking grpc channels. `make test` runs a
short sample (MUSICSYNC_FUZZ_EXAMPLES, 160 examples in all by default);
`make fuzz` a long one.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicsync.proto import auth_pb2, file_pb2, library_pb2, sync_pb2
from musicsync.server import App

from .conftest import PASSWORD, REGISTRATION_KEY, make_settings
from .transfer import wav_bytes

# Examples over the whole module; each of the four fuzzing tests takes a quarter.
EXAMPLES = int(os.environ.get("MUSICSYNC_FUZZ_EXAMPLES", "160"))
PER_TEST = settings(max_examples=max(EXAMPLES // 4, 1), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])
# A call that streams answers (Watch, Download) is read this long, then left.
STREAM_SECONDS = 0.3
CALL_SECONDS = 10.0
FORBIDDEN_CODES = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
# What an exception's text, a traceback or a path would put in a message.
FORBIDDEN_TEXT = ("<class", "Traceback", "Error:", "Exception:", ".py", "site-packages")

SERVICES = [
    auth_pb2.DESCRIPTOR.services_by_name["AuthService"],
    file_pb2.DESCRIPTOR.services_by_name["FileService"],
    sync_pb2.DESCRIPTOR.services_by_name["SyncService"],
    *library_pb2.DESCRIPTOR.services_by_name.values(),
    health_pb2.DESCRIPTOR.services_by_name["Health"],
    reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"],
]
METHODS = [(f"/{service.full_name}/{method.name}", method)
           for service in SERVICES for method in service.methods]
METHODS.append(("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"]
                .methods_by_name["ServerReflectionInfo"]))


class Target:
    """The running server, and what the strategies may pick from (known hashes, a token)."""

    def __init__(self) -> None:
        self.ports: list[int] = []
        self.token = ""
        self.hashes: list[str] = []
        self.data_dir: Path | None = None
        self.errors: list[str] = []


TARGET = Target()


class ServerThread:
    """An App on 127.0.0.1:0 in a thread with its own event loop."""

    def __init__(self, data_dir: Path) -> None:
        self._settings = make_settings(data_dir)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fuzzed-server", daemon=True)
        self.app: App | None = None

    def __enter__(self) -> ServerThread:
        self._thread.start()
        self._ready.wait(60)
        if self.app is None:
            raise RuntimeError("the server did not start") from self._failure
        return self

    def __exit__(self, *exc_info) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported by __enter__
            self._failure = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with App(self._settings) as app:
            self.app = app
            self._ready.set()
            await self._stop.wait()


class _ErrorLog(logging.Handler):
    """Collects every ERROR the server logs (an unexpected exception, grpc's own reports)."""

    def emit(self, record: logging.LogRecord) -> None:
        TARGET.errors.append(f"{record.name}: {record.getMessage()}")


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[ServerThread]:
    handler = _ErrorLog(level=logging.ERROR)
    root = logging.getLogger()
    root.addHandler(handler)
    with ServerThread(tmp_path_factory.mktemp("fuzz") / "data") as running:
        TARGET.ports = sorted(set(running.app.ports.values()))
        TARGET.data_dir = running.app.settings.data_dir
        with grpc.insecure_channel(f"127.0.0.1:{TARGET.ports[0]}") as channel:
            register = channel.unary_unary(
                "/auth.AuthService/Register",
                request_serializer=auth_pb2.RegisterRequest.SerializeToString,
                response_deserializer=auth_pb2.RegisterResponse.FromString)
            TARGET.token = register(auth_pb2.RegisterRequest(
                username="fuzzer", password=PASSWORD, security_key=REGISTRATION_KEY)).token
            upload = channel.stream_unary(
                "/file.FileService/Upload",
                request_serializer=file_pb2.UploadRequest.SerializeToString,
                response_deserializer=file_pb2.UploadResponse.FromString)
            for n in range(3):
                song = wav_bytes(0.2, salt=b"fuzz%d" % n)
                TARGET.hashes.append(upload(iter([file_pb2.UploadRequest(chunk=song)]),
                                            metadata=_auth(TARGET.token)).hash)
        TARGET.errors.clear()
        running.rss_start_kib = _rss_kib()
        yield running
    root.removeHandler(handler)


def _auth(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


# -- Strategies ---------------------------------------------------------------------------

F = FieldDescriptor
_INT_RANGES = {
    F.TYPE_INT32: (-2**31, 2**31 - 1), F.TYPE_SINT32: (-2**31, 2**31 - 1),
    F.TYPE_SFIXED32: (-2**31, 2**31 - 1), F.TYPE_UINT32: (0, 2**32 - 1),
    F.TYPE_FIXED32: (0, 2**32 - 1), F.TYPE_INT64: (-2**63, 2**63 - 1),
    F.TYPE_SINT64: (-2**63, 2**63 - 1), F.TYPE_SFIXED64: (-2**63, 2**63 - 1),
    F.TYPE_UINT64: (0, 2**64 - 1), F.TYPE_FIXED64: (0, 2**64 - 1),
}


def _integers(low: int, high: int) -> st.SearchStrategy[int]:
    edges = sorted({v for v in (0, 1, -1, 2, 1000, 2**31 - 1, 2**31, 2**32, 2**53, 2**63 - 1,
                                2**63, 2**64 - 1, -2**31, -2**63, low, high) if low <= v <= high})
    return st.one_of(st.sampled_from(edges), st.integers(low, high), st.integers(0, 100))


def _page_token(text: bytes) -> str:
    return base64.urlsafe_b64encode(text).decode()


_TEXT = st.one_of(
    st.text(max_size=40),
    st.deferred(lambda: st.sampled_from(TARGET.hashes)),
    st.deferred(lambda: st.sampled_from([h.upper() for h in TARGET.hashes])),
    st.sampled_from([
        "", "0" * 64, "g" * 64, "a" * 65, "song.wav", "../../etc/passwd", "a/b/c.mp3",
        "fuzzer", PASSWORD, REGISTRATION_KEY, "\x00", "\u202e", "\U0001d11e" * 300,
        _page_token(b"after:1"), _page_token(b"after:99999999999999999999"),
        _page_token(b"after:9223372036854775808"), _page_token(b"after:-1"), "after:1"]),
    st.integers(1, 5000).map(lambda n: "x" * n),
    st.just("y" * 300_000),
)
_BYTES = st.one_of(
    st.binary(max_size=64),
    st.deferred(lambda: st.sampled_from([bytes.fromhex(h) for h in TARGET.hashes])),
    st.sampled_from([b"", b"\x00" * 32, b"\xff" * 31, b"\xff" * 33,
                     wav_bytes(0.05, salt=b"new"), wav_bytes(0.05)[:100], b"RIFF"]),
)


def _field_value(field: FieldDescriptor, depth: int) -> st.SearchStrategy:
    if field.type in _INT_RANGES:
        return _integers(*_INT_RANGES[field.type])
    if field.type == F.TYPE_BOOL:
        return st.booleans()
    if field.type == F.TYPE_ENUM:
        return st.one_of(st.sampled_from([v.number for v in field.enum_type.values]),
                         st.integers(-3, 50))
    if field.type == F.TYPE_STRING:
        return _TEXT
    if field.type == F.TYPE_BYTES:
        return _BYTES
    if field.type in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=32)
    return messages(field.message_type, depth + 1)


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy:
    """Messages of ``descriptor``'s type with any subset of fields set to edge-case values."""
    cls = message_factory.GetMessageClass(descriptor)
    if depth > 2:
        return st.builds(cls)
    optional = {}
    for field in descriptor.fields:
        value = _field_value(field, depth)
        if field.is_repeated:
            value = st.lists(value, max_size=4)
        optional[field.name] = value

    def build(values: dict):
        message = cls()
        for name, value in values.items():
            field = descriptor.fields_by_name[name]
            target = getattr(message, name) if field.is_repeated or \
                field.type == F.TYPE_MESSAGE else None
            if field.is_repeated and field.type == F.TYPE_MESSAGE:
                for item in value:
                    target.add().CopyFrom(item)
            elif field.is_repeated:
                target.extend(value)
            elif field.type == F.TYPE_MESSAGE:
                target.CopyFrom(value)
            else:
                setattr(message, name, value)
        return message
    return st.fixed_dictionaries({}, optional=optional).map(build)


def _bodies(descriptor: Descriptor) -> st.SearchStrategy[bytes]:
    """One request message on the wire: an encoded message, or bytes that may not decode."""
    encoded = messages(descriptor).map(lambda m: m.SerializeToString())
    return st.one_of(encoded, encoded, encoded,  # mostly messages that decode
                     st.binary(max_size=48),
                     st.sampled_from([b"\x08", b"\x12", b"\x0a\xff", b"\x0a\x02\xc3\x28",
                                      bytes.fromhex("1280808080808080808001")]))


# Mostly signed in, so the calls get past authentication.
_TOKENS = st.sampled_from(["valid"] * 5 + ["none", "garbage", "Bearer"])


def _metadata(choice: str) -> tuple[tuple[str, str], ...]:
    if choice == "valid":
        return _auth(TARGET.token)
    if choice == "garbage":
        return _auth("not.a.token")
    if choice == "Bearer":
        return (("authorization", "Bearer"),)
    return ()


# -- Calling ----------------------------------------------------------------------------

def call(channel: grpc.Channel, method: str, descriptor, bodies: list[bytes],
         metadata) -> tuple[grpc.StatusCode, str]:
    """Sends ``bodies`` as they are; the status the call ends with."""
    try:
        if not descriptor.client_streaming and not descriptor.server_streaming:
            channel.unary_unary(method)(bodies[0], metadata=metadata, timeout=CALL_SECONDS)
        elif descriptor.client_streaming and not descriptor.server_streaming:
            channel.stream_unary(method)(iter(bodies), metadata=metadata, timeout=CALL_SECONDS)
        else:
            if descriptor.client_streaming:
                responses = channel.stream_stream(method)(
                    iter(bodies), metadata=metadata, timeout=STREAM_SECONDS * 10)
            else:
                responses = channel.unary_stream(method)(
                    bodies[0], metadata=metadata, timeout=STREAM_SECONDS)
            for _ in responses:
                pass
    except grpc.RpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


def assert_clean(method: str, code: grpc.StatusCode, message: str) -> None:
    assert code not in FORBIDDEN_CODES, (method, code, message)
    leaked = [text for text in FORBIDDEN_TEXT if text in message]
    if TARGET.data_dir is not None and str(TARGET.data_dir.parent) in message:
        leaked.append("the data directory")
    assert not leaked, (method, code, message, leaked)
    assert not TARGET.errors, TARGET.errors


@pytest.fixture(scope="module")
def channels(server) -> Iterator[list[grpc.Channel]]:
    opened = [grpc.insecure_channel(f"127.0.0.1:{port}") for port in TARGET.ports]
    yield opened
    for channel in opened:
        channel.close()


_UNARY = [(m, d) for m, d in METHODS if not d.client_streaming and not d.server_streaming]
_REQUEST_STREAMS = [(m, d) for m, d in METHODS if d.client_streaming]
_RESPONSE_STREAMS = [(m, d) for m, d in METHODS if d.server_streaming and not d.client_streaming]


@PER_TEST
@given(data=st.data())
def test_fuzzed_unary_calls_get_a_clean_status(channels, data):
    method, descriptor = data.draw(st.sampled_from(_UNARY), label="method")
    body = data.draw(_bodies(descriptor.input_type), label="body")
    token = data.draw(_TOKENS, label="token")
    channel = data.draw(st.sampled_from(channels), label="port")
    assert_clean(method, *call(channel, method, descriptor, [body], _metadata(token)))


@PER_TEST
@given(data=st.data())
def test_fuzzed_request_streams_in_any_order_get_a_clean_status(channels, data):
    method, descriptor = data.draw(st.sampled_from(_REQUEST_STREAMS), label="method")
    bodies = data.draw(st.lists(_bodies(descriptor.input_type), max_size=6), label="messages")
    token = data.draw(_TOKENS, label="token")
    assert_clean(method, *call(channels[0], method, descriptor, bodies, _metadata(token)))


@PER_TEST
@given(data=st.data())
def test_fuzzed_response_streams_get_a_clean_status(channels, data):
    method, descriptor = data.draw(st.sampled_from(_RESPONSE_STREAMS), label="method")
    body = data.draw(_bodies(descriptor.input_type), label="body")
    token = data.draw(_TOKENS, label="token")
    code, message = call(channels[-1], method, descriptor, [body], _metadata(token))
    assert_clean(method, code, message)


@PER_TEST
@given(method=st.sampled_from(METHODS), raw=st.binary(min_size=1, max_size=200))
def test_random_bytes_to_any_method_get_a_clean_status(channels, method, raw):
    name, descriptor = method
    assert_clean(name, *call(channels[0], name, descriptor, [raw], _metadata("valid")))


def test_server_is_serving_with_bounded_memory_after_fuzzing(server, channels):
    check = channels[0].unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString)
    for service in ("", "auth.AuthService", "file.FileService", "sync.SyncService"):
        status = check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.SERVING, service
    list_files = channels[0].unary_unary(
        "/sync.SyncService/ListFiles",
        request_serializer=sync_pb2.ListFilesRequest.SerializeToString,
        response_deserializer=sync_pb2.ListFilesResponse.FromString)
    assert list_files(sync_pb2.ListFilesRequest(), metadata=_auth(TARGET.token), timeout=5)
    # The server shares this process with the test: a loose bound, catching only leaks.
    assert _rss_kib() - server.rss_start_kib < 256 * 1024
    assert not TARGET.errors, TARGET.errors
