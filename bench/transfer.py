"""Transfer benchmark: musicsync's File service against a bare grpc.aio baseline.

Starts `musicsync serve` (local blob store, its own temp folder) and, in the
same run, bench/baseline_server.py: a bare grpc.aio sink/source in a process
of its own, like the server. The client here sends and receives a 200 MB file
at 64 KiB chunks (what phones send) and at 1 MiB, against both, and prints
MB/s and the ratio to the baseline; then it uploads 1 GiB at 1 MiB chunks to
each while sampling the server's RSS, and prints the growth (peak - before).

Both servers run side by side and the timed runs alternate between them
(musicsync, baseline, musicsync, ...), so a busy moment of a shared machine
falls on both rather than on one; each figure is the median of its runs.

    python bench/transfer.py [--size-mb 200] [--big-mb 1024] [--repeat 5]

Its last line is machine-readable:
RESULT up64k=<ratio> up1m=<ratio> down64k=<ratio> down1m=<ratio> rss_growth_mib=<MiB> base_rss_growth_mib=<MiB>
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc

from musicsync.proto import auth_pb2, auth_pb2_grpc, file_pb2, file_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-registration-key"
MB = 1_000_000
MIB = 1024 * 1024
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 8 * MIB),
                   ("grpc.max_send_message_length", 8 * MIB)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wav_header(data_bytes: int, salt: int) -> bytes:
    """A 44-byte PCM WAV header (16-bit stereo 44.1 kHz) for ``data_bytes`` of samples.

    ``salt`` goes into the first sample so every upload has a new hash.
    """
    header = b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 2, 44100, 44100 * 4, 4, 16)
    header += b"data" + struct.pack("<I", data_bytes)
    return header + struct.pack("<Q", salt)


def first_piece(total: int, chunk: int, salt: int) -> bytes:
    head = wav_header(total - 44, salt)
    return head + bytes(chunk - len(head))


def chunks_of(total: int, chunk: int, salt: int) -> list[bytes]:
    """A WAV of ``total`` bytes as chunk messages' payloads, built once, shared zeros."""
    first = first_piece(total, chunk, salt)
    zero = bytes(chunk)
    count, rest = divmod(total, chunk)
    pieces = [first] + [zero] * (count - 1)
    if rest:
        pieces.append(bytes(rest))
    return pieces


class Server:
    def __init__(self, command: list[str], env: dict[str, str], port: int) -> None:
        self.port = port
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(command, env={**os.environ, **env},
                                        stdout=self.log, stderr=subprocess.STDOUT)

    async def wait_ready(self) -> None:
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                await asyncio.sleep(0.05)
        self.log.seek(0)
        raise SystemExit(f"server on {self.port} did not start:\n{self.log.read().decode()}")

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        self.log.close()


async def upload(stub, pieces: list[bytes], metadata) -> None:
    def requests():
        yield file_pb2.UploadRequest(metadata=file_pb2.FileMetadata(filename="bench.wav"))
        for piece in pieces:
            yield file_pb2.UploadRequest(chunk=piece)
    await stub.Upload(requests(), metadata=metadata)


async def download(stub, sha: str, size: int, chunk: int, metadata) -> int:
    received = 0
    request = file_pb2.DownloadRequest(hash=sha, length=size, chunk_size=chunk)
    async for message in stub.Download(request, metadata=metadata):
        received += len(message.chunk)
    if received != size:
        raise SystemExit(f"downloaded {received} bytes, expected {size}")
    return received


class RssSampler:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.server.rss_mib())
            time.sleep(0.02)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class Target:
    """A server under test, with a channel to it and a way to get a downloadable file."""

    def __init__(self, server: Server, metadata, sha_of_upload) -> None:
        self.server = server
        self.metadata = metadata
        self._sha_of_upload = sha_of_upload
        self._channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}",
                                                  options=CHANNEL_OPTIONS)
        self.stub = file_pb2_grpc.FileServiceStub(self._channel)

    async def sha_of_upload(self, pieces: list[bytes]) -> str:
        return await self._sha_of_upload(self.stub, pieces)

    async def close(self) -> None:
        await self._channel.close()


async def alternating(runs: list[Callable[[], Awaitable]], repeat: int) -> list[float]:
    """Median seconds of each run (one per target), the runs taking turns."""
    seconds: list[list[float]] = [[] for _ in runs]
    for _ in range(repeat):
        for run, times in zip(runs, seconds):
            started = time.perf_counter()
            await run()
            times.append(time.perf_counter() - started)
    return [statistics.median(times) for times in seconds]


async def measure_speeds(targets: list[Target], sizes: dict[str, int], total: int,
                         repeat: int) -> list[dict[str, float]]:
    """MB/s of uploads and downloads per target, keyed up64k, down64k, ..."""
    figures: list[dict[str, float]] = [{} for _ in targets]
    salt = iter(range(1, 1_000_000))
    for name, chunk in sizes.items():
        pieces = chunks_of(total, chunk, 0)

        async def one_upload(target: Target) -> None:
            await upload(target.stub, [first_piece(total, chunk, next(salt)), *pieces[1:]],
                         target.metadata)
        uploads = [functools.partial(one_upload, target) for target in targets]
        for figure, seconds in zip(figures, await alternating(uploads, repeat)):
            figure[f"up{name}"] = total / seconds / MB
        downloads = [functools.partial(download, target.stub, await target.sha_of_upload(pieces),
                                       total, chunk, target.metadata) for target in targets]
        for figure, seconds in zip(figures, await alternating(downloads, repeat)):
            figure[f"down{name}"] = total / seconds / MB
    return figures


async def rss_growth(target: Target, big: int) -> tuple[float, float]:
    """The server's RSS before, and its growth (peak - before) during a ``big`` upload."""
    big_pieces = chunks_of(big, MIB, 999_999)
    await asyncio.sleep(0.5)
    before = target.server.rss_mib()
    with RssSampler(target.server) as sampler:
        await upload(target.stub, big_pieces, target.metadata)
    return before, max(sampler.peak - before, 0.0)


def musicsync_server(folder: str) -> Server:
    """``musicsync serve`` on a data folder, every service on one free loopback port."""
    port = free_port()
    return Server([sys.executable, "-m", "musicsync.cli", "serve", "--data-dir", folder,
                   "--host", "127.0.0.1", "--auth-port", str(port), "--file-port", "0",
                   # The benches' libraries (100,000 songs of 4 MB in bench/diff.py) are
                   # far over the default quota, which they are not about.
                   "--sync-port", "0", "--user-quota", "0"],
                  {"SECURITY_KEY": KEY, "LOG_LEVEL": "WARNING"}, port)


async def register_bench_user(port: int) -> tuple[tuple[str, str], ...]:
    """Registers the user "bench"; the call metadata carrying its token."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        token = (await auth_pb2_grpc.AuthServiceStub(channel).Register(
            auth_pb2.RegisterRequest(username="bench", password="bench password",
                                     security_key=KEY))).token
    return (("authorization", f"Bearer {token}"),)


async def main() -> None:
    parser = argparse.ArgumentParser(description="File transfer benchmark")
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--big-mb", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    total = options.size_mb * MB
    big = options.big_mb * MIB
    sizes = {"64k": 64 * 1024, "1m": MIB}

    with tempfile.TemporaryDirectory(prefix="musicsync-bench-") as folder:
        base_port = free_port()
        servers = [musicsync_server(folder),
                   Server([sys.executable, str(ROOT / "bench" / "baseline_server.py"),
                           str(base_port)], {}, base_port)]
        targets: list[Target] = []
        try:
            for server in servers:
                await server.wait_ready()
            auth = await register_bench_user(servers[0].port)

            async def musicsync_sha(stub, pieces):
                def requests():
                    yield file_pb2.UploadRequest(metadata=file_pb2.FileMetadata(filename="d.wav"))
                    for piece in pieces:
                        yield file_pb2.UploadRequest(chunk=piece)
                return (await stub.Upload(requests(), metadata=auth)).hash

            async def baseline_sha(stub, pieces):
                return "baseline"
            targets = [Target(servers[0], auth, musicsync_sha),
                       Target(servers[1], (), baseline_sha)]
            ours, base = await measure_speeds(targets, sizes, total, options.repeat)
            for figures, target in zip((ours, base), targets):
                figures["rss_before"], figures["rss_growth"] = await rss_growth(target, big)
        finally:
            for target in targets:
                await target.close()
            for server in servers:
                server.stop()

    print(f"file of {options.size_mb} MB, median of {options.repeat} alternating runs; "
          f"RSS growth during a {options.big_mb} MiB upload at 1 MiB chunks")
    print(f"{'':14} {'musicsync MB/s':>15} {'baseline MB/s':>15} {'ratio':>7}")
    ratios = {}
    for key in ("up64k", "up1m", "down64k", "down1m"):
        ratios[key] = ours[key] / base[key]
        print(f"{key:14} {ours[key]:15.1f} {base[key]:15.1f} {ratios[key]:7.2f}")
    print(f"{'rss growth':14} {ours['rss_growth']:12.1f} MiB {base['rss_growth']:12.1f} MiB "
          f"(server RSS before: {ours['rss_before']:.1f} MiB, baseline {base['rss_before']:.1f})")
    print("RESULT " + " ".join(f"{k}={v:.2f}" for k, v in ratios.items())
          + f" rss_growth_mib={ours['rss_growth']:.1f} base_rss_growth_mib={base['rss_growth']:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
