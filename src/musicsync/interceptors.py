"""The one server interceptor: who is calling, what happened, and which status.

For every RPC it
- authenticates the caller of File and Sync calls (and ChangePassword) from
  the ``authorization`` metadata and makes them ``current_principal()``;
- maps ``MusicsyncError`` to its gRPC status and message (and a failure of
  SQLite itself, such as a database locked by another program, to the error
  it means for the client), and anything else to a bare INTERNAL while the
  traceback goes to the log;
- answers INVALID_ARGUMENT "malformed request" for a request body (or a
  message of a request stream) that does not decode: every deserializer is
  wrapped so a decode failure becomes a ``Malformed`` value, which the
  behaviour wrappers (and the request stream and ``context.read`` they hand
  on) turn into the status before the servicer sees it;
- answers RESOURCE_EXHAUSTED for a request bigger than its method's limit
  (``limits.request_bytes_limit``: the Auth methods take a few KiB, not the
  4 MiB the server receives for upload chunks), from the size of the raw bytes,
  before they are parsed (an ``Oversized`` value, handled as ``Malformed``);
- accepts every handler shape grpc does (a coroutine, an async generator, a
  coroutine writing with ``context.write``, a function returning an iterator);
- logs one line: method, user id, status code, duration (health checks at
  DEBUG, everything else at INFO), and reports it to the metrics; a stream
  whose client went away, or whose deadline passed, ends quietly;
- refuses a call beyond ``max_calls`` handled at once with RESOURCE_EXHAUSTED
  naming the bound (before authentication or any other work);
- reads a unary request only once the call is admitted (``auth_gate``): grpc would
  read it whole (up to 4 MiB) before any handler runs, so such methods are served as
  request-streaming, the same on the wire; a call that needs a token is admitted by
  its token, one without by the gate's bounds, and its message must then arrive
  within ``TOKENLESS_RECEIVE_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
from collections.abc import Awaitable, Callable

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.message import DecodeError

from . import memory
from .auth.accounts import Accounts, Principal
from .auth_gate import AuthGate
from .db.engine import database_failure
from .errors import (DeadlineExceeded, InvalidArgument, MusicsyncError, ResourceExhausted,
                     Unauthenticated)
from .limits import TOKENLESS_RECEIVE_SECONDS, request_bytes_limit
from .peers import ClientAddresses

log = logging.getLogger("musicsync.rpc")

try:  # what grpc raises from context.write once the call is over (client gone, deadline)
    from grpc._cython.cygrpc import ExecuteBatchError as _WriteFailed
except ImportError:  # pragma: no cover - a grpc that renamed it: such writes log as bugs
    _WriteFailed = ()

_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "musicsync_principal", default=None)

# Methods of these services, and these single methods, need a signed-in caller.
AUTHENTICATED_SERVICES = ("/file.FileService/", "/sync.SyncService/", "/library.")
AUTHENTICATED_METHODS = frozenset({"/auth.AuthService/ChangePassword"})
# Probes call this every few seconds: keep it out of the INFO log.
QUIET_METHODS = frozenset({"/grpc.health.v1.Health/Check"})


def current_principal() -> Principal:
    """The authenticated caller of the RPC being handled."""
    principal = _principal.get()
    if principal is None:  # a servicer bug: the method is missing from the policy above
        raise Unauthenticated("this call needs `authorization: Bearer <access token>`")
    return principal


def needs_authentication(method: str) -> bool:
    return method.startswith(AUTHENTICATED_SERVICES) or method in AUTHENTICATED_METHODS


class ServerInterceptor(grpc.aio.ServerInterceptor):
    """Authentication, error-to-status mapping and access logging for every RPC."""

    def __init__(self, accounts: Accounts | None,
                 observe: Callable[[str, grpc.StatusCode, float], None] | None = None, *,
                 max_calls: int | None = None, gate: AuthGate | None = None,
                 addresses: ClientAddresses | None = None) -> None:
        # accounts is None only in a server without authenticated services.
        self._accounts = accounts
        self.gate = gate
        self.addresses = addresses or ClientAddresses()
        self._observe = observe
        self._running: set[asyncio.Task] = set()
        self._max_calls = max_calls
        self._refusal_logged = float("-inf")

    async def drain(self, timeout: float) -> None:
        """Waits (at most ``timeout`` seconds) for the handlers still running to end.

        grpc's ``server.stop`` cancels the handlers left after its grace period but does
        not wait for them; closing the database under one that is still unwinding
        (SQLAlchemy closes its connection in a shielded task) can leave that close
        waiting forever, and the process with it.
        """
        running = {task for task in self._running if not task.done()}
        if running:
            await asyncio.wait(running, timeout=timeout)

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        # -- The bound on calls handled at once (issue 12) --
        if self._max_calls is not None and len(self._running) >= self._max_calls:
            if self._observe is not None:
                self._observe(method, grpc.StatusCode.RESOURCE_EXHAUSTED, 0.0)
            if time.monotonic() - self._refusal_logged > 60:  # once a minute under a flood
                self._refusal_logged = time.monotonic()
                log.warning("refusing calls: %d are in progress, the most the server takes "
                            "at once (first refused: %s)", self._max_calls, method)
            return _refusal(handler, self._max_calls)
        # --
        authenticated = needs_authentication(method)
        call = _Call(method, self._accounts if authenticated else None,
                     self._observe, self._running)
        deserializer = tolerant_deserializer(handler.request_deserializer, method)
        if not handler.request_streaming and (authenticated or self.gate is not None):
            # Read the request once admitted; a stream of one message on the wire.
            call.admission = None if authenticated else self.gate
            call.addresses = self.addresses
            if handler.unary_unary:
                return grpc.stream_unary_rpc_method_handler(
                    call.unary(handler.unary_unary, late_request=True), deserializer,
                    handler.response_serializer)
            return grpc.stream_stream_rpc_method_handler(
                call.streaming(handler.unary_stream, late_request=True), deserializer,
                handler.response_serializer)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                call.unary(handler.unary_unary), deserializer, handler.response_serializer)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                call.unary(handler.stream_unary, streaming_request=True), deserializer,
                handler.response_serializer)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                call.streaming(handler.unary_stream), deserializer,
                handler.response_serializer)
        return grpc.stream_stream_rpc_method_handler(
            call.streaming(handler.stream_stream, streaming_request=True), deserializer,
            handler.response_serializer)


def _refusal(handler, max_calls: int):
    """A handler of ``handler``'s kind answering RESOURCE_EXHAUSTED at once."""
    async def refuse(request, context: grpc.aio.ServicerContext):
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                            f"the server is handling {max_calls} calls, the most it takes at "
                            "once; try again in a moment")
    kinds = ((handler.unary_unary, grpc.unary_unary_rpc_method_handler),
             (handler.stream_unary, grpc.stream_unary_rpc_method_handler),
             (handler.unary_stream, grpc.unary_stream_rpc_method_handler))
    make = next((make for behaviour, make in kinds if behaviour),
                grpc.stream_stream_rpc_method_handler)
    return make(refuse, None, handler.response_serializer)


class Malformed:
    """What a wrapped deserializer returns for bytes that are not the message it expects."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def error(self) -> MusicsyncError:
        return InvalidArgument(f"malformed request: the bytes sent are not a valid {self.what} "
                               "message")


class Oversized(Malformed):
    """What a wrapped deserializer returns for a message over its method's size limit."""

    __slots__ = ("limit",)

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(what)
        self.limit = limit

    def error(self) -> MusicsyncError:
        return ResourceExhausted(f"request too large: a {self.what} message may be at most "
                                 f"{self.limit} bytes")


def tolerant_deserializer(deserializer: Callable[[bytes], object] | None, method: str):
    """``deserializer`` returning ``Malformed`` instead of raising for undecodable bytes.

    grpc answers a deserializer's exception itself, before any handler runs (UNKNOWN
    naming the exception's class for a unary request, INTERNAL for a stream).
    """
    if deserializer is None:
        return None
    malformed = Malformed(_request_type(method))
    limit = request_bytes_limit(method)
    oversized = Oversized(malformed.what, limit) if limit is not None else None

    def deserialize(data: bytes):
        if oversized is not None and len(data) > oversized.limit:
            return oversized  # refused unparsed: no copy of what it holds is made
        try:
            return deserializer(data)
        except DecodeError:
            return malformed
    return deserialize


@functools.lru_cache(maxsize=256)  # only methods the server has handlers for get here
def _request_type(method: str) -> str:
    """The request message's full name for "/package.Service/Method", if the pool knows it."""
    service, _, name = method.lstrip("/").partition("/")
    try:
        found = descriptor_pool.Default().FindServiceByName(service).methods_by_name.get(name)
    except KeyError:
        found = None
    return found.input_type.full_name if found is not None else "request"


def _checked(message):
    if isinstance(message, Malformed):
        raise message.error()
    return message


async def _checked_stream(requests):
    """The request stream, raising InvalidArgument at a message that did not decode."""
    messages = aiter(requests)
    try:
        async for message in messages:
            yield _checked(message)
    finally:
        # grpc keeps a failed call's state for a while, and through it its request
        # generator with the last message received (up to 4 MiB): end that now.
        close = getattr(messages, "aclose", None)
        if close is not None:
            await close()


# An Upload or a Diff refused while the client still sends (not audio, over the quota, not
# signed in): answered at once, grpc resets the stream, and a client still writing then often
# reports INTERNAL "Internal error from Core" instead of the status (9 of 10 refused 40 MB
# uploads, grpc-python). So the rest of the request is read and dropped first, within
# these bounds; past them the status is sent all the same.
DRAIN_SECONDS = 10.0
DRAIN_BYTES = 64 * 1024 * 1024


async def _drain_requests(context: grpc.aio.ServicerContext) -> None:
    """Reads what is left of a refused call's request stream, keeping none of it."""
    received = 0
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            while received < DRAIN_BYTES:
                message = await context.read()
                if message is grpc.aio.EOF:
                    return
                received += (len(message) if isinstance(message, memoryview)
                             else getattr(message, "ByteSize", lambda: 1)())
    except Exception:  # noqa: BLE001 - past the bounds, or the stream broke: answer anyway
        return


async def _drain_refused(exc: BaseException, context: grpc.aio.ServicerContext) -> None:
    """Drains a request stream the call refuses with a status of ours (not a cancellation,
    nor a deadline: nobody is listening any more)."""
    if isinstance(exc, MusicsyncError) and not isinstance(exc, DeadlineExceeded):
        await _drain_requests(context)


class _CheckedContext:
    """The servicer's context, whose ``read`` raises InvalidArgument for a malformed message."""

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        self._context = context

    def __getattr__(self, name: str):
        return getattr(self._context, name)

    async def read(self):
        message = await self._context.read()
        return message if message is grpc.aio.EOF else _checked(message)


class _Call:
    """Wraps one method's behaviour; a new one per RPC."""

    def __init__(self, method: str, accounts: Accounts | None, observe,
                 running: set[asyncio.Task]) -> None:
        self.method = method
        self.running = running
        self.accounts = accounts
        self.observe = observe
        self.user_id: int | None = None
        self.code = grpc.StatusCode.OK
        self.started = time.perf_counter()
        # With a late request: the gate admitting the call (None: its token does), and
        # who the caller is for it.
        self.admission: AuthGate | None = None
        self.addresses = ClientAddresses()

    async def _arguments(self, request, context: grpc.aio.ServicerContext,
                         streaming_request: bool, late_request: bool):
        """Authenticates the caller; the request (read now if ``late_request``) and the
        context to hand the servicer."""
        await self._authenticate(context)
        if late_request:
            return await self._receive(request, context), context
        return _checked_arguments(request, context, streaming_request)

    async def _receive(self, requests, context: grpc.aio.ServicerContext):
        """The one message of a unary request, read once the call is admitted."""
        if self.admission is None:  # admitted by its token: read as grpc would
            return await _one_message(requests, None)
        admitted = await self.admission.enter(self.addresses.of(context))
        try:
            return await _one_message(requests, TOKENLESS_RECEIVE_SECONDS)
        finally:
            admitted.leave()

    def unary(self, behaviour: Callable[..., Awaitable], *, streaming_request: bool = False,
              late_request: bool = False):
        async def handle(request, context: grpc.aio.ServicerContext):
            task = self._track()
            try:
                request, servicer_context = await self._arguments(
                    request, context, streaming_request, late_request)
                return await behaviour(request, servicer_context)
            except BaseException as exc:  # noqa: BLE001 - mapped and re-raised by _failed
                if streaming_request:
                    await _drain_refused(exc, context)
                await self._failed(exc, context)
            finally:
                self.running.discard(task)
                self._finish(context)
        return handle

    def streaming(self, behaviour: Callable, *, streaming_request: bool = False,
                  late_request: bool = False):
        """Wraps a response-streaming behaviour, whatever its shape, as a coroutine.

        grpc accepts an async generator function, a coroutine function that writes with
        ``context.write`` (health's Watch), or a function returning a (sync or async)
        iterator; the wrapper drives each of them and writes the answers itself, so a
        write that fails because the call already ended (client gone, deadline passed)
        ends the call quietly instead of being logged by grpc as a failure.
        """
        async def handle(request, context: grpc.aio.ServicerContext):
            task = self._track()
            try:
                request, servicer_context = await self._arguments(
                    request, context, streaming_request, late_request)
                responses = behaviour(request, servicer_context)
                if hasattr(responses, "__await__"):
                    responses = await responses  # None once it wrote its answers itself
                if responses is not None:
                    await _write_all(responses, context)
            except BaseException as exc:  # noqa: BLE001 - mapped and re-raised by _failed
                if streaming_request:  # a Diff refused (its token, say) while the device sends
                    await _drain_refused(exc, context)
                await self._failed(exc, context)
            finally:
                self.running.discard(task)
                self._finish(context)
        return handle

    async def _failed(self, exc: BaseException, context: grpc.aio.ServicerContext) -> None:
        """Records and sends the status the exception stands for; always raises."""
        exc = database_failure(exc) or exc
        self.code = _code_of(exc, context)
        await _fail(exc, context, self.method)

    def _track(self) -> asyncio.Task | None:
        task = asyncio.current_task()
        if task is not None:
            self.running.add(task)
        return task

    async def _authenticate(self, context: grpc.aio.ServicerContext) -> None:
        if self.accounts is None:
            return
        authorization = None
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                authorization = value if isinstance(value, str) else value.decode("latin-1")
                break
        principal = await self.accounts.authenticate(authorization)
        self.user_id = principal.user_id
        _principal.set(principal)

    def _finish(self, context: grpc.aio.ServicerContext) -> None:
        code = self.code
        if code == grpc.StatusCode.OK and context.code() not in (None, grpc.StatusCode.OK):
            code = context.code()  # the servicer set a status without raising
        elapsed = time.perf_counter() - self.started
        level = logging.DEBUG if self.method in QUIET_METHODS else logging.INFO
        log.log(level, "rpc %s user=%s code=%s ms=%.1f", self.method,
                self.user_id if self.user_id is not None else "-", code.name, elapsed * 1000)
        if self.observe is not None:
            self.observe(self.method, code, elapsed)


async def _write_all(responses, context: grpc.aio.ServicerContext) -> None:
    """Writes every answer of a (sync or async) iterator; closes an async one however it ends."""
    if not hasattr(responses, "__aiter__"):
        for response in responses:
            await context.write(response)
        return
    try:
        async for response in responses:
            await context.write(response)
    finally:
        close = getattr(responses, "aclose", None)
        if close is not None:
            await close()


async def _one_message(requests, seconds: float | None):
    """The single message of a unary request sent as a stream (``seconds`` to arrive)."""
    messages = aiter(requests)
    try:
        async with asyncio.timeout(seconds):
            message = await anext(messages, None)
            if message is None:
                raise InvalidArgument("malformed request: the call carries no request message")
            if isinstance(message, Oversized):
                memory.trim_soon()  # glibc keeps what grpc freed of it: give it back
            _checked(message)  # an oversized or undecodable one is answered at once
            if await anext(messages, None) is not None:
                raise InvalidArgument("malformed request: this method takes one request "
                                      "message, the call sent more")
        return message
    except TimeoutError:
        raise DeadlineExceeded(f"the request did not arrive within {seconds:g} seconds; send "
                               "it with the call") from None
    finally:
        close = getattr(messages, "aclose", None)
        if close is not None:
            await close()


def _checked_arguments(request, context: grpc.aio.ServicerContext, streaming_request: bool):
    """The request (or request stream) and context to hand the servicer: malformed
    messages among them raise InvalidArgument."""
    if streaming_request:
        return _checked_stream(request), _CheckedContext(context)
    return _checked(request), context


def _ended_code(context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    """Why a call ended under its handler: its deadline passed, or it was cancelled."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED


def _code_of(exc: BaseException, context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    if isinstance(exc, MusicsyncError):
        return exc.code
    if isinstance(exc, grpc.aio.AbortError):
        return context.code() or grpc.StatusCode.UNKNOWN
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit, _WriteFailed)):
        return _ended_code(context)
    if isinstance(exc, NotImplementedError):
        return grpc.StatusCode.UNIMPLEMENTED
    return grpc.StatusCode.INTERNAL


async def _fail(exc: BaseException, context: grpc.aio.ServicerContext, method: str) -> None:
    """Turns an exception into the call's status; always raises."""
    if isinstance(exc, MusicsyncError):
        # The client's error needs no traceback; kept, its frames would keep the call's
        # data (a Diff's hashes, request messages) alive as long as grpc keeps the error.
        exc.__traceback__ = None
        await context.abort(exc.code, exc.message)  # raises AbortError
    if isinstance(exc, grpc.aio.AbortError):
        # The servicer aborted with a status of its own; grpc sends it.
        raise exc
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
        # The client went away or the server is stopping: nothing to send.
        raise exc
    if isinstance(exc, _WriteFailed):
        # An answer could not be sent: the call is over. grpc takes a cancellation
        # quietly, while it logs this error with its traceback.
        raise asyncio.CancelledError() from None
    if isinstance(exc, NotImplementedError):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented yet")
    log.error("unexpected error in %s", method, exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL,
                        "internal server error; the server log has the details")
    raise AssertionError("unreachable")
