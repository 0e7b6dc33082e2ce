"""Test helpers: a fake clock, and a client holding stubs for a running App."""

from __future__ import annotations

import hashlib
import socket
import time

import grpc

from musicsync.proto import auth_pb2_grpc, file_pb2_grpc, sync_pb2_grpc


def sha(data: bytes) -> str:
    """Lowercase hex SHA-256, as the server names songs."""
    return hashlib.sha256(data).hexdigest()


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

    ``token`` is sent as `authorization: Bearer <token>` by ``meta()``. ``host`` is where
    to connect: "[::1]" reaches a server on HOST=localhost from a second client address.
    """

    def __init__(self, app, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.port = port if port is not None else app.ports.get("auth") or next(iter(app.ports.values()))
        self.channel = grpc.aio.insecure_channel(f"{host}:{self.port}")
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


async def wait_until(predicate, what: str, timeout: float = 15) -> None:
    """Polls ``predicate`` (sync or async) until it holds; fails naming ``what``."""
    import asyncio
    import inspect
    deadline = time.monotonic() + timeout
    while True:
        held = predicate()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


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


class ServerProcess:
    """`musicsync serve ...` in a subprocess, its log in a file; for process-level tests."""

    def __init__(self, args: list[str], env: dict[str, str], log_path, command=None) -> None:
        import os
        import subprocess
        import sys
        self.log_path = log_path
        self._log = open(log_path, "wb")
        base = command or [sys.executable, "-m", "musicsync.cli"]
        full_env = {k: v for k, v in os.environ.items() if k not in _SERVER_ENV}
        full_env.update(env)
        self.process = subprocess.Popen([*base, *args], stdout=self._log, stderr=subprocess.STDOUT,
                                        env=full_env)

    def log(self) -> str:
        return self.log_path.read_text()

    async def wait_serving(self, port: int, service: str = "", timeout: float = 30) -> None:
        """Waits until the health service on ``port`` answers SERVING."""
        import asyncio
        from grpc_health.v1 import health_pb2, health_pb2_grpc
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                    response = await health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(service=service), timeout=1)
                if response.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server did not become healthy:\n{self.log()}")
            await asyncio.sleep(0.1)

    def stop(self, sig=None, timeout: float = 30) -> int:
        import signal
        import subprocess
        if self.process.poll() is None:
            self.process.send_signal(sig or signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"server did not stop within {timeout} s:\n"
                                 f"{self.log()[-4000:]}") from None
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()


# Variables a developer's shell might have set that would change a test server.
_SERVER_ENV = {"DATA_DIR", "DATABASE_URL", "SECURITY_KEY", "SECRET_KEY", "ANONYMOUS_USER", "PORT",
               "AUTH_PORT", "FILE_PORT", "SYNC_PORT", "REGISTRATION", "S3_ENDPOINT", "HOST",
               "TLS", "TLS_CERT", "TLS_KEY", "TLS_HOSTNAMES"}



def query(settings, statement: str, *params) -> list[tuple]:
    """Runs one SQL statement (``?`` placeholders) on the test server's database, SQLite
    or PostgreSQL, as an outside program would, and returns its rows (none for a write)."""
    import sqlite3
    from contextlib import closing

    if not settings.database_url:
        # Closed at once: the last connection to close folds the WAL back in.
        with closing(sqlite3.connect(settings.data_dir / "musicsync.db")) as db, db:
            return db.execute(statement, params).fetchall()
    import asyncio
    import re
    from concurrent.futures import ThreadPoolExecutor

    import asyncpg

    numbered = iter(range(1, statement.count("?") + 1))
    statement = re.sub(r"\?", lambda _: f"${next(numbered)}", statement)

    async def run() -> list[tuple]:
        connection = await asyncpg.connect(settings.database_url)
        try:
            return [tuple(row) for row in await connection.fetch(statement, *params)]
        finally:
            await connection.close()
    with ThreadPoolExecutor(1) as thread:  # a loop of its own, whoever calls
        return thread.submit(asyncio.run, run()).result()


def downgrade(settings, revision: str) -> None:
    """Takes the test server's database (SQLite or PostgreSQL) back to schema ``revision``
    through the revisions' downgrades, as an older musicsync had left it."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from musicsync.db import Database
    from musicsync.db.migrations import runner

    async def run() -> None:
        db = Database(settings.database_url or str(settings.data_dir / "musicsync.db"))
        try:
            async with db.writer_engine().begin() as connection:
                await connection.run_sync(runner.downgrade, revision)
        finally:
            await db.close()
    with ThreadPoolExecutor(1) as thread:  # a loop of its own, whoever calls
        thread.submit(asyncio.run, run()).result()
