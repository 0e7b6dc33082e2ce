"""Connection benchmark: what idle connections and open Watches cost the server.

Starts `musicsync serve` (its own temp folder, every service on one port) under
the open-file soft limit of 1,024 that many systems set (``--server-nofile``;
the server raises it to the hard limit at start), creates accounts with one song each, and holds at
once:

- ``--idle`` connections that made no call (HTTP/2 set up, then nothing), and
- ``--watches`` Watch streams, 16 per account (the per-account bound) and 90 per
  connection; each is known to be open when the song's event arrives on it.

With all of them held, an honest Login must be answered (10 s deadline), the
server's resident memory is measured against what it was before, and its CPU
use over ``--cpu-seconds`` (the Watches send a heartbeat every 10 s, the
shortest the server accepts: 3,000 Watches at 1 s once kept a core busy).

    python bench/connections.py [--idle 1000] [--watches 1000] [--cpu-seconds 20]
                                [--server-nofile 1024]

Target: RSS grows by at most 100 MiB with 1,000 of each. Its last line:
RESULT rss_start_mib=<n> rss_held_mib=<n> growth_mib=<n> login_ms=<n> cpu_pct=<n> idle=<n>
watches=<n>
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import resource
import sys
import tempfile
import time
import wave
from pathlib import Path

import grpc

from musicsync.ops.admin import open_accounts
from musicsync.config import Settings
from musicsync.proto import auth_pb2, auth_pb2_grpc, file_pb2, file_pb2_grpc, sync_pb2
from musicsync.proto import sync_pb2_grpc
from musicsync.services.streams import MAX_WATCHES_PER_USER

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transfer import musicsync_server  # noqa: E402 - sibling

PASSWORD = "bench password"
STREAMS_PER_CONNECTION = 90  # under the server's 100 per connection
GROWTH_TARGET_MIB = 100
CHEAP_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_kib": 1024, "argon2_parallelism": 1}
OWN_CONNECTION = (("grpc.use_local_subchannel_pool", 1),)  # channels share none


def song(salt: bytes) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes((salt + b"\0" * 16000)[:16000])
    return buffer.getvalue()


async def create_users(folder: str, count: int) -> list[str]:
    settings = Settings(data_dir=Path(folder), **CHEAP_ARGON2)
    names = [f"user{n}" for n in range(count)]
    async with open_accounts(settings, create=True) as accounts:
        for name in names:
            await accounts.create_user(name, PASSWORD)
    return names


async def login(channel, name: str, timeout: float | None = None) -> tuple[tuple[str, str], ...]:
    response = await auth_pb2_grpc.AuthServiceStub(channel).Login(
        auth_pb2.LoginRequest(username=name, password=PASSWORD), timeout=timeout)
    return (("authorization", f"Bearer {response.token}"),)


async def hold(port: int, names: list[str], idle: int, watches: int):
    """Opens the idle connections and the Watches; returns what to close."""
    address = f"127.0.0.1:{port}"
    setup = grpc.aio.insecure_channel(address)
    tokens = {}
    for index, name in enumerate(names):
        tokens[name] = await login(setup, name)
        data = song(name.encode())
        await file_pb2_grpc.FileServiceStub(setup).Upload(iter([
            file_pb2.UploadRequest(metadata=file_pb2.FileMetadata(filename=f"{index}.wav")),
            file_pb2.UploadRequest(chunk=data)]), metadata=tokens[name])
    idle_channels = [grpc.aio.insecure_channel(address, options=OWN_CONNECTION)
                     for _ in range(idle)]
    await asyncio.gather(*(asyncio.wait_for(channel.channel_ready(), 30)
                           for channel in idle_channels))
    watch_channels, calls = [], []
    for index in range(watches):
        if index % STREAMS_PER_CONNECTION == 0:
            watch_channels.append(grpc.aio.insecure_channel(address, options=OWN_CONNECTION))
        stub = sync_pb2_grpc.SyncServiceStub(watch_channels[-1])
        name = names[index // MAX_WATCHES_PER_USER]
        calls.append(stub.Watch(sync_pb2.WatchRequest(heartbeat_seconds=10),
                                metadata=tokens[name]))
    firsts = await asyncio.gather(*(asyncio.wait_for(call.read(), 60) for call in calls))
    if not all(first.HasField("event") for first in firsts):
        raise SystemExit("a Watch did not open")
    return setup, idle_channels, watch_channels, calls


async def cpu_percent(pid: int, seconds: float) -> float:
    """The process's CPU use over ``seconds`` (user + system), in percent of one core."""
    if seconds <= 0:
        return 0.0

    def used() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    before, began = used(), time.monotonic()
    await asyncio.sleep(seconds)
    return (used() - before) / (time.monotonic() - began) * 100


async def main() -> None:
    parser = argparse.ArgumentParser(description="Idle connections and open Watches")
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--watches", type=int, default=1000)
    parser.add_argument("--cpu-seconds", type=float, default=20,
                        help="how long to measure the server's CPU while it holds them all")
    parser.add_argument("--server-nofile", type=int, default=1024,
                        help="the open-file soft limit the server starts under")
    options = parser.parse_args()
    users = -(-options.watches // MAX_WATCHES_PER_USER)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with tempfile.TemporaryDirectory(prefix="musicsync-bench-") as folder:
        names = await create_users(folder, users)
        server_soft = min(options.server_nofile, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (server_soft, hard))  # the server's
        server = musicsync_server(folder)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # ours: many connections
        held = None
        try:
            await server.wait_ready()
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as warm:
                await login(warm, names[0])
            start = server.rss_mib()
            held = await hold(server.port, names, options.idle, options.watches)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}",
                                                 options=OWN_CONNECTION) as honest:
                began = time.perf_counter()
                await login(honest, names[-1], timeout=10)
                login_ms = (time.perf_counter() - began) * 1000
            rss = server.rss_mib()
            cpu_pct = await cpu_percent(server.process.pid, options.cpu_seconds)
        finally:
            if held is not None:
                setup, idle_channels, watch_channels, calls = held
                for call in calls:
                    call.cancel()
                for channel in [setup, *idle_channels, *watch_channels]:
                    await channel.close()
            server.stop()
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    growth = rss - start
    print(f"{options.idle} idle connections and {options.watches} Watches of {users} "
          f"accounts: server RSS {start:.1f} -> {rss:.1f} MiB (+{growth:.1f}, target "
          f"+{GROWTH_TARGET_MIB}); honest Login {login_ms:.0f} ms; server CPU while holding "
          f"them {cpu_pct:.1f}% of a core")
    print(f"RESULT rss_start_mib={start:.1f} rss_held_mib={rss:.1f} growth_mib={growth:.1f} "
          f"login_ms={login_ms:.1f} cpu_pct={cpu_pct:.1f} idle={options.idle} "
          f"watches={options.watches}")


if __name__ == "__main__":
    asyncio.run(main())
