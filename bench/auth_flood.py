"""Memory of a one-process server under floods of oversized Logins (issue 12, finding 2).

Starts `musicsync serve` (every service on one loopback port, as by default) and
sends rounds of concurrent Logins whose password is just under the 4 MiB the
server receives for upload chunks, spread over several connections. After each
round it waits for the server to settle and prints its RSS; the peak is the
kernel's high-water mark (VmHWM), so no sampling is missed.

    python bench/auth_flood.py [--calls 100] [--connections 4] [--rounds 4] [--mib 3.8]

Its last line is machine-readable:
RESULT before_mib=<MiB> peak_mib=<MiB> rest_mib=<MiB after the last round> codes=<code:count,...>
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

from musicsync.proto import auth_pb2, auth_pb2_grpc

# A client may send messages of any size; the server decides what it takes.
SENDER = (("grpc.max_send_message_length", 8 * 1024 * 1024),)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def memory_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


async def wait_ready(port: int, process: subprocess.Popen) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            await asyncio.sleep(0.05)
    raise SystemExit("the server did not start")


async def settle(pid: int, seconds: float = 2.0) -> float:
    """The server's RSS once it stopped changing for a moment (at most ``seconds``)."""
    last = memory_mib(pid, "VmRSS")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        now = memory_mib(pid, "VmRSS")
        if abs(now - last) < 0.5:
            return now
        last = now
    return last


async def flood(port: int, calls: int, connections: int, size: int) -> collections.Counter:
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=(
        *SENDER, ("grpc.use_local_subchannel_pool", 1), ("bench.channel", n)))
        for n in range(connections)]
    stubs = [auth_pb2_grpc.AuthServiceStub(channel) for channel in channels]
    request = auth_pb2.LoginRequest(username="alice", password="p" * size)

    async def one(n: int) -> grpc.StatusCode:
        try:
            await stubs[n % connections].Login(request, timeout=60)
        except grpc.aio.AioRpcError as error:
            return error.code()
        return grpc.StatusCode.OK
    try:
        return collections.Counter(await asyncio.gather(*(one(n) for n in range(calls))))
    finally:
        for channel in channels:
            await channel.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description="Oversized-Login flood: server memory")
    parser.add_argument("--calls", type=int, default=100, help="Logins per round")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--mib", type=float, default=3.8, help="password size, MiB")
    options = parser.parse_args()
    size = int(options.mib * 1024 * 1024)

    with tempfile.TemporaryDirectory(prefix="musicsync-flood-") as folder:
        port = free_port()
        env = {**os.environ, "LOG_LEVEL": "WARNING", "ARGON2_TIME_COST": "1",
               "ARGON2_MEMORY_KIB": "1024", "ARGON2_PARALLELISM": "1"}
        process = subprocess.Popen(
            [sys.executable, "-m", "musicsync.cli", "serve", "--data-dir", folder,
             "--host", "127.0.0.1", "--auth-port", str(port), "--file-port", "0",
             "--sync-port", "0"], env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        try:
            await wait_ready(port, process)
            before = await settle(process.pid)
            print(f"before: RSS {before:.1f} MiB (peak so far "
                  f"{memory_mib(process.pid, 'VmHWM'):.1f})")
            codes: collections.Counter = collections.Counter()
            rest = before
            for round_ in range(1, options.rounds + 1):
                started = time.perf_counter()
                codes += await flood(port, options.calls, options.connections, size)
                took = time.perf_counter() - started
                rest = await settle(process.pid)
                print(f"round {round_}: {options.calls} x {options.mib} MiB in {took:.1f} s; "
                      f"peak {memory_mib(process.pid, 'VmHWM'):.1f} MiB, at rest {rest:.1f}")
            peak = memory_mib(process.pid, "VmHWM")
        finally:
            process.terminate()
            process.wait(30)
    summary = ",".join(f"{code.name}:{count}" for code, count in sorted(
        codes.items(), key=lambda item: item[0].name))
    print(f"RESULT before_mib={before:.1f} peak_mib={peak:.1f} rest_mib={rest:.1f} "
          f"codes={summary}")


if __name__ == "__main__":
    asyncio.run(main())
