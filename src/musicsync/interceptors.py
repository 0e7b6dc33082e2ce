"""The one server interceptor: who is calling, what happened, and which status.

For every RPC it
- authenticates the caller of File and Sync calls (and ChangePassword) from
  the ``authorization`` metadata and makes them ``current_principal()``;
- maps ``MusicsyncError`` to its gRPC status and message (and a failure of
  SQLite itself, such as a database locked by another program, to the error
  it means for the client), and anything else to a bare INTERNAL while the
  traceback goes to the log;
- logs one line: method, user id, status code, duration.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable

import grpc

from .auth.accounts import Accounts, Principal
from .db.engine import database_failure
from .errors import MusicsyncError, Unauthenticated

log = logging.getLogger("musicsync.rpc")

_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "musicsync_principal", default=None)

# Methods of these services, and these single methods, need a signed-in caller.
AUTHENTICATED_SERVICES = ("/file.FileService/", "/sync.SyncService/")
AUTHENTICATED_METHODS = frozenset({"/auth.AuthService/ChangePassword"})
# Probes call these every few seconds: keep them out of the INFO log.
QUIET_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


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
                 observe: Callable[[str, grpc.StatusCode, float], None] | None = None) -> None:
        # accounts is None only in a server without authenticated services.
        self._accounts = accounts
        self._observe = observe
        self._running: set[asyncio.Task] = set()

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
        call = _Call(handler_call_details.method, self._accounts if needs_authentication(
            handler_call_details.method) else None, self._observe, self._running)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                call.unary(handler.unary_unary), handler.request_deserializer,
                handler.response_serializer)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                call.unary(handler.stream_unary), handler.request_deserializer,
                handler.response_serializer)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                call.streaming(handler.unary_stream), handler.request_deserializer,
                handler.response_serializer)
        return grpc.stream_stream_rpc_method_handler(
            call.streaming(handler.stream_stream), handler.request_deserializer,
            handler.response_serializer)


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

    def unary(self, behaviour: Callable[..., Awaitable]):
        async def handle(request, context: grpc.aio.ServicerContext):
            task = self._track()
            try:
                await self._authenticate(context)
                return await behaviour(request, context)
            except BaseException as exc:  # noqa: BLE001 - mapped and re-raised by _failed
                await self._failed(exc, context)
            finally:
                self.running.discard(task)
                self._finish(context)
        return handle

    def streaming(self, behaviour: Callable):
        async def handle(request, context: grpc.aio.ServicerContext):
            task = self._track()
            try:
                await self._authenticate(context)
                async for response in behaviour(request, context):
                    yield response
            except BaseException as exc:  # noqa: BLE001 - mapped and re-raised by _failed
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
        level = logging.DEBUG if self.method.startswith(QUIET_PREFIXES) else logging.INFO
        log.log(level, "rpc %s user=%s code=%s ms=%.1f", self.method,
                self.user_id if self.user_id is not None else "-", code.name, elapsed * 1000)
        if self.observe is not None:
            self.observe(self.method, code, elapsed)


def _code_of(exc: BaseException, context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    if isinstance(exc, MusicsyncError):
        return exc.code
    if isinstance(exc, grpc.aio.AbortError):
        return context.code() or grpc.StatusCode.UNKNOWN
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
        return grpc.StatusCode.CANCELLED
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
    if isinstance(exc, NotImplementedError):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented yet")
    log.error("unexpected error in %s", method, exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL,
                        "internal server error; the server log has the details")
    raise AssertionError("unreachable")
