"""grpc flow-control settings: memory under an oversized-Login flood against upload speed
over a long link (issue 12, finding 2).

grpc takes in the data of every open stream up to the stream's flow-control window
before the application reads it, so the window bounds what a flood of calls nobody
reads can make the server hold, and also how much an upload may have in flight per
round trip. For each variant of the server's grpc options, this starts `musicsync
serve` (every service on one loopback port, as by default) with those options, floods
it with oversized Logins (bench/auth_flood.py) and prints the peak (VmHWM) and rest
RSS, then uploads a file through bench/delay_proxy.py (40 ms each way by default) at
1 MiB and 64 KiB chunks, and straight over loopback at 1 MiB, and prints MB/s.

    python bench/flow_window.py [--variant NAME=KEY:VALUE,KEY:VALUE ...] [--size-mb 32]
        [--delay-ms 40] [--calls 100] [--connections 4] [--rounds 2] [--repeat 2]

A variant replaces or adds entries of musicsync.server.GRPC_OPTIONS ("current" is the
options as they are). Its lines are machine-readable:
RESULT variant=<name> peak_mib=<MiB> rest_mib=<MiB> up1m_delay=<MB/s> up64k_delay=<MB/s> up1m_local=<MB/s>
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import grpc

from auth_flood import flood, free_port, memory_mib, settle, wait_ready
from delay_proxy import DelayProxy
from transfer import KEY, MB, MIB, chunks_of, register_bench_user

from musicsync.proto import file_pb2, file_pb2_grpc

# Runs `musicsync` with GRPC_OPTIONS changed as its first argument (JSON) says.
LAUNCHER = """
import json, sys
import musicsync.server as server
changes = json.loads(sys.argv[1])
server.GRPC_OPTIONS = (*(o for o in server.GRPC_OPTIONS if o[0] not in changes),
                       *((key, value) for key, value in changes.items() if value is not None))
from musicsync.cli import main
sys.exit(main(sys.argv[2:]))
"""
DEFAULT_VARIANTS = (
    "current=",
    "bdp-off=grpc.http2.bdp_probe:0",
    "bdp-off-512k=grpc.http2.bdp_probe:0,grpc.http2.lookahead_bytes:524288",
    "bdp-off-1m=grpc.http2.bdp_probe:0,grpc.http2.lookahead_bytes:1048576",
    "bdp-off-2m=grpc.http2.bdp_probe:0,grpc.http2.lookahead_bytes:2097152",
)
CHANNEL = (("grpc.max_send_message_length", 8 * MIB),)


def parse_variant(text: str) -> tuple[str, dict[str, int | None]]:
    """``NAME=KEY:VALUE,...``; a VALUE of ``-`` removes the option."""
    name, _, rest = text.partition("=")
    changes: dict[str, int | None] = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition(":")
        changes[key] = None if value == "-" else int(value)
    return name, changes


def start_server(folder: str, port: int, changes: dict) -> subprocess.Popen:
    env = {**os.environ, "LOG_LEVEL": "WARNING", "SECURITY_KEY": KEY, "ARGON2_TIME_COST": "1",
           "ARGON2_MEMORY_KIB": "1024", "ARGON2_PARALLELISM": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, json.dumps(changes), "serve", "--data-dir", folder,
         "--host", "127.0.0.1", "--auth-port", str(port), "--file-port", "0",
         "--sync-port", "0", "--user-quota", "0"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def upload_speed(port: int, auth, total: int, chunk: int, salt: int) -> float:
    """MB/s of one upload of ``total`` bytes at ``chunk`` bytes a message, on a new channel."""
    pieces = chunks_of(total, chunk, salt)

    def requests():
        yield file_pb2.UploadRequest(metadata=file_pb2.FileMetadata(filename=f"{salt}.wav"))
        for piece in pieces:
            yield file_pb2.UploadRequest(chunk=piece)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=CHANNEL) as channel:
        stub = file_pb2_grpc.FileServiceStub(channel)
        started = time.perf_counter()
        try:
            await stub.Upload(requests(), metadata=auth, timeout=600)
        except grpc.aio.AioRpcError as error:  # a variant may refuse such chunks
            print(f"  upload at {chunk} B chunks failed: {error.code().name}", flush=True)
            return float("nan")
        return total / MB / (time.perf_counter() - started)


async def measure(name: str, changes: dict, options, salt: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="musicsync-window-") as folder:
        port = free_port()
        process = start_server(folder, port, changes)
        try:
            await wait_ready(port, process)
            auth = await register_bench_user(port)
            size = int(options.mib * MIB)
            for _ in range(options.rounds):
                await flood(port, options.calls, options.connections, size)
            rest = await settle(process.pid)
            figures = {"peak_mib": memory_mib(process.pid, "VmHWM"), "rest_mib": rest}
            big, small = options.size_mb * MB, options.size_64k_mb * MB
            async with DelayProxy(port, options.delay_ms / 1000) as proxy:
                for key, target, chunk, total in (
                        ("up1m_delay", proxy.port, MIB, big),
                        ("up64k_delay", proxy.port, 64 * 1024, small),
                        ("up1m_local", port, MIB, big)):
                    speeds = []
                    for _ in range(options.repeat):
                        salt += 1
                        speeds.append(await upload_speed(target, auth, total, chunk, salt))
                    figures[key] = statistics.median(speeds)
        finally:
            process.terminate()
            process.wait(30)
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description="Flow-control windows: flood memory "
                                                 "against upload speed over a long link")
    parser.add_argument("--variant", action="append", help="NAME=KEY:VALUE,... (repeat)")
    parser.add_argument("--size-mb", type=int, default=32, help="upload size, MB")
    parser.add_argument("--size-64k-mb", type=int, default=8,
                        help="upload size at 64 KiB chunks, MB")
    parser.add_argument("--delay-ms", type=float, default=40.0, help="proxy delay each way")
    parser.add_argument("--calls", type=int, default=100, help="Logins per flood round")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--mib", type=float, default=3.8, help="password size, MiB")
    parser.add_argument("--repeat", type=int, default=2, help="uploads per figure (median)")
    options = parser.parse_args()
    variants = [parse_variant(text) for text in (options.variant or DEFAULT_VARIANTS)]
    print(f"flood: {options.rounds} x {options.calls} Logins of {options.mib} MiB over "
          f"{options.connections} connections; uploads of {options.size_mb} MB (1 MiB chunks),"
          f" {options.size_64k_mb} MB (64 KiB) through {options.delay_ms:g} ms each way "
          f"(median of {options.repeat})")
    print(f"{'variant':16} {'peak MiB':>9} {'rest MiB':>9} {'1M delay':>9} {'64K delay':>10} "
          f"{'1M local':>9}  MB/s")
    for n, (name, changes) in enumerate(variants):
        f = await measure(name, changes, options, salt=1000 * (n + 1))
        print(f"{name:16} {f['peak_mib']:9.1f} {f['rest_mib']:9.1f} {f['up1m_delay']:9.1f} "
              f"{f['up64k_delay']:10.1f} {f['up1m_local']:9.1f}", flush=True)
        print(f"RESULT variant={name} " + " ".join(f"{k}={v:.1f}" for k, v in f.items()),
              flush=True)


if __name__ == "__main__":
    asyncio.run(main())
