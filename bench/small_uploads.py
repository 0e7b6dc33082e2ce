"""Small-upload benchmark: many songs of 100 KB over a few concurrent streams.

What a first sync of a library asks of the server: each song is one Upload
stream (its metadata with the hash, then one chunk), and the per-song costs
(authentication, the audio check, the durable write of the blob and its folder,
the library's transaction) weigh more than the bytes. Starts `musicsync serve`
(local blob store, its own temp folder, `--user-quota 0`) and the bare grpc.aio
sink of bench/baseline_server.py, sends the same uploads to each, and prints
uploads/s, the median latency, the server's CPU time per upload (its own
process, and its audio-check workers), and the ratio to the baseline.

Then the same number of other songs as resumable uploads, the way the desktop
client and phones send them: StartUpload (hash and size), then an Upload stream
whose metadata carries the session's upload_id and offset, then one chunk.

    python bench/small_uploads.py [--uploads 600] [--streams 8] [--size-kb 100]

Its last line is machine-readable:
RESULT uploads_per_s=<n> p50_ms=<ms> cpu_ms_per_upload=<ms> worker_cpu_ms_per_upload=<ms> ratio=<ratio> resumable_uploads_per_s=<n> resumable_p50_ms=<ms> resumable_cpu_ms_per_upload=<ms>
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transfer import (ROOT, Server, free_port, musicsync_server,  # noqa: E402
                      register_bench_user, wav_header)

from musicsync.proto import file_pb2, file_pb2_grpc  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (all its threads, not its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def children_cpu_seconds(pid: int) -> float:
    """CPU time of the live child processes of ``pid`` (the audio-check workers)."""
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    total = 0.0
    for child in found.stdout.split():
        try:
            total += cpu_seconds(int(child))
        except FileNotFoundError:
            pass
    return total


def songs(count: int, size: int, salt: int) -> list[bytes]:
    """``count`` WAVs of ``size`` bytes, each with a hash of its own."""
    return [wav_header(size - 44, salt + index) + bytes(size - 52) for index in range(count)]


async def upload_all(port: int, metadata, files: list[bytes], streams: int,
                     with_hash: bool, resumable: bool = False) -> tuple[float, list[float]]:
    """Uploads ``files`` over ``streams`` concurrent calls; wall seconds and latencies
    (``resumable``: each through StartUpload, its latency counting both calls)."""
    latencies: list[float] = []
    queue = list(enumerate(files))
    queue.reverse()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = file_pb2_grpc.FileServiceStub(channel)

        async def worker() -> None:
            while queue:
                index, data = queue.pop()
                meta = file_pb2.FileMetadata(filename=f"bench/{index}.wav")
                if with_hash:
                    meta.sha256 = hashlib.sha256(data).hexdigest()
                started = time.perf_counter()
                if resumable:
                    meta.size = len(data)
                    session = await stub.StartUpload(
                        file_pb2.StartUploadRequest(sha256=meta.sha256, size=len(data)),
                        metadata=metadata)
                    meta.upload_id, meta.offset = session.upload_id, session.offset
                requests = [file_pb2.UploadRequest(metadata=meta),
                            file_pb2.UploadRequest(chunk=data)]
                await stub.Upload(iter(requests), metadata=metadata)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(streams)))
        return time.perf_counter() - started, latencies


async def main() -> None:
    parser = argparse.ArgumentParser(description="Small-upload benchmark")
    parser.add_argument("--uploads", type=int, default=600)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--size-kb", type=int, default=100)
    options = parser.parse_args()
    size = options.size_kb * 1000
    warmup = max(options.streams * 2, 16)

    with tempfile.TemporaryDirectory(prefix="musicsync-bench-") as folder:
        base_port = free_port()
        servers = [musicsync_server(folder),
                   Server([sys.executable, str(ROOT / "bench" / "baseline_server.py"),
                           str(base_port)], {}, base_port)]
        try:
            for server in servers:
                await server.wait_ready()
            ours, base = servers
            auth = await register_bench_user(ours.port)
            # Warm up both (connections, the audio-check workers, SQLAlchemy's caches).
            await upload_all(ours.port, auth, songs(warmup, size, 10_000_000), 4, True)
            await upload_all(ours.port, auth, songs(warmup, size, 20_000_000), 4, True,
                             resumable=True)
            await upload_all(base.port, (), songs(warmup, size, 0), 4, False)

            files = songs(options.uploads, size, 0)
            cpu_before = cpu_seconds(ours.process.pid)
            workers_before = children_cpu_seconds(ours.process.pid)
            seconds, latencies = await upload_all(ours.port, auth, files, options.streams, True)
            cpu = cpu_seconds(ours.process.pid) - cpu_before
            worker_cpu = children_cpu_seconds(ours.process.pid) - workers_before
            resumable_files = songs(options.uploads, size, 30_000_000)
            cpu_before = cpu_seconds(ours.process.pid)
            res_seconds, res_latencies = await upload_all(
                ours.port, auth, resumable_files, options.streams, True, resumable=True)
            res_cpu = cpu_seconds(ours.process.pid) - cpu_before
            base_seconds, base_latencies = await upload_all(base.port, (), files,
                                                            options.streams, False)
        finally:
            for server in servers:
                server.stop()

    rate, base_rate = options.uploads / seconds, options.uploads / base_seconds
    p50, base_p50 = (statistics.median(latencies) * 1000,
                     statistics.median(base_latencies) * 1000)
    per_upload, worker_per_upload = (cpu / options.uploads * 1000,
                                     worker_cpu / options.uploads * 1000)
    print(f"{options.uploads} uploads of {size} B over {options.streams} streams "
          f"(each: metadata with the hash, one chunk)")
    print(f"{'':22} {'musicsync':>10} {'baseline':>10} {'ratio':>7}")
    print(f"{'uploads/s':22} {rate:10.1f} {base_rate:10.1f} {rate / base_rate:7.2f}")
    print(f"{'p50 latency ms':22} {p50:10.1f} {base_p50:10.1f}")
    print(f"server CPU per upload: {per_upload:.1f} ms (its process), "
          f"{worker_per_upload:.1f} ms (audio-check workers)")
    res_rate = options.uploads / res_seconds
    res_p50 = statistics.median(res_latencies) * 1000
    res_per_upload = res_cpu / options.uploads * 1000
    print(f"resumable (StartUpload, then Upload with its upload_id): {res_rate:.1f} uploads/s, "
          f"p50 {res_p50:.1f} ms (both calls), server CPU {res_per_upload:.1f} ms per upload "
          f"(its process), {res_rate / rate:.2f} of the plain rate")
    print(f"RESULT uploads_per_s={rate:.1f} p50_ms={p50:.1f} cpu_ms_per_upload={per_upload:.2f} "
          f"worker_cpu_ms_per_upload={worker_per_upload:.2f} ratio={rate / base_rate:.2f} "
          f"resumable_uploads_per_s={res_rate:.1f} resumable_p50_ms={res_p50:.1f} "
          f"resumable_cpu_ms_per_upload={res_per_upload:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
