"""Test helpers: a fake clock, and a client holding stubs for a running App."""

from __future__ import annotations

import socket
import time

import grpc

from musicsync.proto import auth_pb2_grpc, file_pb2_grpc, sync_pb2_grpc


class FakeClock:
    """A time source the test moves by hand (token expiry, throttling windows)."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Client:
    """Channels to a running App's ports with stubs for every service.

    ``token`` is sent as `authorization: Bearer <token>` by ``meta()``.
    """

    def __init__(self, app, port: int | None = None) -> None:
        self.port = port if port is not None else app.ports.get("auth") or next(iter(app.ports.values()))
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.port}")
        self.auth = auth_pb2_grpc.AuthServiceStub(self.channel)
        self.file = file_pb2_grpc.FileServiceStub(self.channel)
        self.sync = sync_pb2_grpc.SyncServiceStub(self.channel)
        self.token: str | None = None

    def meta(self, token: str | None = None) -> tuple[tuple[str, str], ...]:
        token = token or self.token
        return (("authorization", f"Bearer {token}"),) if token else ()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.channel.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def status_of(call) -> tuple[grpc.StatusCode, str]:
    """The status code and message a call ends with (OK and '' if it succeeds)."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""
