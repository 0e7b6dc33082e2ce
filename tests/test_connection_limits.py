"""Bounds on connections and calls, and the open-file limit (issue 12, finding 4)."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from musicsync import server as server_module
from musicsync.proto import sync_pb2
from musicsync.server import App

from .conftest import make_settings
from .helpers import ServerProcess, free_port, status_of, wait_until
from .test_file_limits import signed_in
from .test_stream_limits import user_id_of

ROOT = Path(__file__).resolve().parent.parent
OWN_CONNECTION = (("grpc.use_local_subchannel_pool", 1),)  # channels share no connection


def open_file_limits(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open-file limit in /proc")


async def test_the_server_raises_its_open_file_soft_limit_to_the_hard_limit(tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    port = free_port()
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))  # inherited
    try:
        server = ServerProcess(["serve", "--data-dir", str(tmp_path / "data"), "--host",
                                "127.0.0.1", "--auth-port", str(port), "--file-port", "0",
                                "--sync-port", "0"],
                               {"SECURITY_KEY": "test-registration-key"}, tmp_path / "log")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        await server.wait_serving(port)
        assert open_file_limits(server.process.pid) == (hard, hard)
    finally:
        assert server.stop() == 0


async def test_connections_beyond_the_bound_are_closed_and_a_freed_place_is_taken(
        tmp_path, monkeypatch):
    monkeypatch.setattr(server_module, "MAX_CONNECTIONS", 8)
    async with App(make_settings(tmp_path)) as app:
        address = f"127.0.0.1:{app.ports['auth']}"

        async def check(channel) -> grpc.StatusCode:
            return (await status_of(health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5)))[0]

        held = [grpc.aio.insecure_channel(address, options=OWN_CONNECTION) for _ in range(8)]
        assert [await check(channel) for channel in held] == [grpc.StatusCode.OK] * 8
        extra = grpc.aio.insecure_channel(address, options=OWN_CONNECTION)
        assert await check(extra) == grpc.StatusCode.UNAVAILABLE
        await held.pop().close()

        async def gets_in() -> bool:
            return await check(extra) == grpc.StatusCode.OK
        await wait_until(gets_in, "the freed place to be taken")
        for channel in [*held, extra]:
            await channel.close()


async def test_calls_beyond_the_servers_bound_are_refused_naming_it(tmp_path, monkeypatch):
    monkeypatch.setattr(server_module, "MAX_CONCURRENT_CALLS", 3)
    async with App(make_settings(tmp_path)) as app, await signed_in(app) as client:
        user_id = await user_id_of(app, client)
        watches = [client.sync.Watch(sync_pb2.WatchRequest(), metadata=client.meta())
                   for _ in range(3)]
        await wait_until(lambda: app.streams.open_streams(user_id, "Watch") == 3,
                         "three Watches to be open")
        code, message = await status_of(client.sync.ListFiles(
            sync_pb2.ListFilesRequest(), metadata=client.meta()))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "3 calls" in message
        watches.pop().cancel()

        async def answered() -> bool:
            return (await status_of(client.sync.ListFiles(
                sync_pb2.ListFilesRequest(), metadata=client.meta())))[0] == grpc.StatusCode.OK
        await wait_until(answered, "a call to get in once a Watch ended")
        for watch in watches:
            watch.cancel()


def test_idle_connections_and_open_watches_keep_memory_bounded_and_let_a_login_in():
    """1,100 idle connections under a 1,024 open-file limit once made an honest Login time
    out. Here: 300 of them, and 300 Watches of 19 accounts, against a server started under
    a soft limit of 256 (bench/connections.py holds 1,000 of each)."""
    run = subprocess.run([sys.executable, "bench/connections.py", "--idle", "300",
                          "--watches", "300", "--server-nofile", "256",
                          "--cpu-seconds", "0"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    figures = {key: float(value) for key, value in (
        pair.split("=") for pair in run.stdout.strip().splitlines()[-1]
        .removeprefix("RESULT ").split())}
    assert figures["login_ms"] > 0  # the honest Login was answered
    assert figures["growth_mib"] < 60, figures  # measured: +19 MiB


def test_the_bounds_in_the_docs_are_the_ones_the_server_enforces():
    from musicsync.sync.diff import MAX_DIFFS_PER_USER, MAX_DIFFS_WAITING
    from musicsync.services import streams
    from musicsync.services.sync_service import MAX_HEARTBEAT, MIN_HEARTBEAT
    from musicsync.library.uploads import MAX_SESSIONS_PER_USER
    options = dict(server_module.GRPC_OPTIONS)
    rows = {
        "connections at once": f"{server_module.MAX_CONNECTIONS:,}",
        "calls handled at once": f"{server_module.MAX_CONCURRENT_CALLS:,}",
        "streams on one connection": str(options["grpc.max_concurrent_streams"]),
        "a connection without calls": f"{options['grpc.max_connection_idle_ms'] // 60_000} "
                                      "minutes",
        "a connection's life": f"{options['grpc.max_connection_age_ms'] // 3_600_000} h",
        "handshake of a new connection": f"{options['grpc.server_handshake_timeout_ms'] // 1000} s",
        "Upload streams of one account": str(streams.MAX_UPLOADS_PER_USER),
        "Download streams of one account": str(streams.MAX_DOWNLOADS_PER_USER),
        "Watch streams of one account": str(streams.MAX_WATCHES_PER_USER),
        "Diffs of one account": f"{MAX_DIFFS_PER_USER} running, {MAX_DIFFS_WAITING} more",
        "Watch `heartbeat_seconds`": f"{MIN_HEARTBEAT} to {MAX_HEARTBEAT:,}",
        "unfinished resumable uploads of one account": str(MAX_SESSIONS_PER_USER),
    }
    assert options["grpc.max_connection_age_grace_ms"] == 30 * 60_000  # "30 minutes"
    for document in ("README.md", "docs/security.md"):
        table = {line.split("|")[1].strip(): line.split("|")[2]
                 for line in (ROOT / document).read_text().splitlines()
                 if line.startswith("| ") and line.count("|") >= 4}
        for bound, value in rows.items():
            row = next(text for name, text in table.items() if name.startswith(bound))
            assert value in row, (document, bound, row)
