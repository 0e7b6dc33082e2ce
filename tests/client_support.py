"""Helpers for the client tests: a library client signed in to a running App, the CLI run
as a person runs it, a TCP relay that breaks the first connection after some bytes
(a network that drops), and a server process that can be restarted."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from musicsync.client import Client
from musicsync.client.credentials import Credentials, CredentialsStore

from .conftest import PASSWORD, REGISTRATION_KEY
from .helpers import ServerProcess, free_port, sha
from .transfer import wav_bytes


def target_of(app) -> str:
    return f"127.0.0.1:{app.ports.get('auth') or next(iter(app.ports.values()))}"


async def signed_in(app, username: str = "alice", **options) -> Client:
    """A library Client registered as ``username`` on ``app``."""
    client = Client(target_of(app), **options)
    await client.register(username, PASSWORD, REGISTRATION_KEY)
    return client


def song_file(folder: Path, name: str, seconds: float = 1.0, salt: bytes = b"") -> Path:
    """A valid WAV song written to ``folder/name`` (salt: unique bytes)."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(wav_bytes(seconds, salt=salt or name.encode()))
    return path


def interruptible() -> None:
    """In a child before exec: Ctrl-C (SIGINT) as a terminal gives it.

    A test run started in the background (`make test &`, some CI runners) has SIGINT
    ignored, and children inherit that: a command the test stops with SIGINT would
    never hear it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Cli:
    """Runs `musicsync ...` with its own configuration folder; returns (code, out, err)."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.env = {**os.environ, "MUSICSYNC_CONFIG_DIR": str(config)}

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "musicsync.cli", *args]

    async def start(self, *args: str, stdin=None) -> asyncio.subprocess.Process:
        """Starts `musicsync ...` without waiting (its output piped)."""
        return await asyncio.create_subprocess_exec(
            *self.command(*args), env=self.env, stdin=stdin, preexec_fn=interruptible,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)

    async def __call__(self, *args: str, stdin: str | None = None,
                       cwd: Path | None = None) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            *self.command(*args), env=self.env, cwd=cwd,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await process.communicate(stdin.encode() if stdin is not None else b"")
        return process.returncode, out.decode(), err.decode()

    def credentials(self) -> Credentials | None:
        return CredentialsStore(self.config).load_credentials()


class BreakingRelay:
    """Relays TCP to ``port``. On the first connection it stops passing the client's bytes
    on once ``hold_after`` went through (a network that stalls), and ``cut()`` then resets
    that connection (a network that drops). Later connections pass everything."""

    def __init__(self, port: int, hold_after: int) -> None:
        self.port = port
        self.hold_after = hold_after
        self.connections = 0
        self.held = False  # the first connection reached hold_after and is stalled
        self._first: list[asyncio.StreamWriter] = []
        self._server: asyncio.AbstractServer | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> BreakingRelay:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info) -> None:
        self._server.close()
        await self._server.wait_closed()

    def cut(self) -> None:
        for writer in self._first:
            writer.transport.abort()  # a reset, as a dropped network gives

    async def _relay(self, client_reader, client_writer) -> None:
        self.connections += 1
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.port)
        limit = None
        if self.connections == 1:
            limit = self.hold_after
            self._first = [client_writer, server_writer]

        async def pipe(reader, writer, limit: int | None) -> None:
            passed = 0
            try:
                while data := await reader.read(65536):
                    if limit is not None and passed + len(data) > limit:
                        writer.write(data[:limit - passed])
                        self.held = True
                        await asyncio.Event().wait()  # held until cut() ends it
                    passed += len(data)
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        tasks = [asyncio.create_task(pipe(client_reader, server_writer, limit)),
                 asyncio.create_task(pipe(server_reader, client_writer, None))]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for writer in (client_writer, server_writer):
                writer.transport.abort()


def partial_bytes(data_dir: Path) -> int:
    """Bytes the server's local store holds in unfinished resumable uploads."""
    return sum(p.stat().st_size for p in (data_dir / "blobs" / ".partial").glob("*"))


class RestartableServer:
    """`musicsync serve` in a subprocess on fixed ports with one data folder (so the same
    keys and library each time), which a test stops and starts again: a server restart as
    clients see it. Use ``async with``; ``target`` is its address."""

    ENV = {"ARGON2_TIME_COST": "1", "ARGON2_MEMORY_KIB": "1024", "ARGON2_PARALLELISM": "1",
           "SECURITY_KEY": REGISTRATION_KEY, "SHUTDOWN_GRACE": "1"}

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ports = {"auth": free_port(), "file": free_port(), "sync": free_port()}
        self.process: ServerProcess | None = None
        self.starts = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.ports['auth']}"  # every service answers on each port

    async def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        args = ["serve", "--data-dir", str(self.folder / "data"), "--host", "127.0.0.1",
                "--auth-port", str(self.ports["auth"]), "--file-port", str(self.ports["file"]),
                "--sync-port", str(self.ports["sync"])]
        self.process = ServerProcess(args, self.ENV, self.folder / f"server-{self.starts}.log")
        await self.process.wait_serving(self.ports["auth"])

    def stop(self) -> None:
        assert self.process.stop() == 0, self.process.log()[-4000:]

    async def __aenter__(self) -> RestartableServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        self.process.kill()
