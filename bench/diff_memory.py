"""Diff memory benchmark: what the biggest Diffs a device may send cost the server.

Starts `musicsync serve` (its own temp folder), registers a user with an empty
library, and measures the server's resident memory (from /proc) while:

- one maximal Diff runs: 500,000 distinct random hashes in 10 messages of
  50,000 (all of them unknown to the server, so all come back as "upload");
  the peak is the kernel's high-water mark (VmHWM), reset before the call;
- Diffs over the cap are rejected (11 messages of 50,000) and Diffs with a
  malformed hash are rejected (a 31-byte hash, then 9 x 50,000);
- ``--rounds`` rejected and ``--rounds`` maximal Diffs have run: RSS at the
  end against RSS before them (the baseline of the same run).

    python bench/diff_memory.py [--rounds 100]

Targets: a maximal Diff raises RSS by at most 64 MiB at its peak, and after
the rounds RSS is back within 10% of where it started. Its last line:
RESULT peak_growth_mib=<n> rss_start_mib=<n> rss_end_mib=<n> end_ratio=<n> max_diff_ms=<n>
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import grpc

from musicsync.proto import sync_pb2, sync_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transfer import musicsync_server, register_bench_user  # noqa: E402 - sibling

BATCH = 50_000
MAX_HASHES = 500_000
MIB = 1024 * 1024
PEAK_TARGET_MIB = 64
END_TARGET = 1.10


def random_batches(count: int) -> list[list[bytes]]:
    """``count`` random 32-byte hashes in DiffRequest-sized batches."""
    blob = os.urandom(32 * count)
    hashes = [blob[i:i + 32] for i in range(0, len(blob), 32)]
    return [hashes[i:i + BATCH] for i in range(0, count, BATCH)]


def proc_status(pid: int, field: str) -> float:
    """A VmRSS/VmHWM-style figure of the process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"/proc/{pid}/status has no {field}")


def reset_peak(pid: int) -> None:
    """Resets the process's VmHWM to its current RSS (Linux: clear_refs 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


DETAILS: dict[str, str] = {}  # the first message seen with each status


async def run_diff(stub, auth, batches: list[list[bytes]]) -> tuple[grpc.StatusCode, int]:
    """One Diff; its status and how many hashes it said to upload."""
    def requests():
        for batch in batches:
            yield sync_pb2.DiffRequest(hashes=batch)
    uploads = 0
    try:
        async for response in stub.Diff(requests(), metadata=auth):
            uploads += len(response.upload)
    except grpc.aio.AioRpcError as error:
        DETAILS.setdefault(error.code().name, error.details() or "")
        return error.code(), uploads
    return grpc.StatusCode.OK, uploads


async def main() -> None:
    parser = argparse.ArgumentParser(description="Diff memory benchmark")
    parser.add_argument("--rounds", type=int, default=100,
                        help="rejected and maximal Diffs each (default 100)")
    options = parser.parse_args()
    maximal = random_batches(MAX_HASHES)
    over_cap = maximal + random_batches(BATCH)
    malformed = [[os.urandom(31)]] + maximal[:9]

    with tempfile.TemporaryDirectory(prefix="musicsync-bench-") as folder:
        server = musicsync_server(folder)
        try:
            await server.wait_ready()
            auth = await register_bench_user(server.port)
            pid = server.process.pid
            async with grpc.aio.insecure_channel(
                    f"127.0.0.1:{server.port}",
                    options=[("grpc.max_receive_message_length", 64 * MIB)]) as channel:
                stub = sync_pb2_grpc.SyncServiceStub(channel)
                # Warm up: code paths, thread pools and the database's caches.
                code, _ = await run_diff(stub, auth, random_batches(1000))
                if code != grpc.StatusCode.OK:
                    raise SystemExit(f"warm-up Diff failed: {code}")
                before = proc_status(pid, "VmRSS")
                reset_peak(pid)
                started = time.perf_counter()
                code, uploads = await run_diff(stub, auth, maximal)
                max_diff_ms = (time.perf_counter() - started) * 1000
                if code != grpc.StatusCode.OK or uploads != MAX_HASHES:
                    raise SystemExit(f"maximal Diff: {code}, {uploads} to upload")
                peak_growth = proc_status(pid, "VmHWM") - before
                print(f"one maximal Diff ({MAX_HASHES:,} hashes): {max_diff_ms:.0f} ms, "
                      f"RSS {before:.1f} MiB before, peak +{peak_growth:.1f} MiB "
                      f"(target at most +{PEAK_TARGET_MIB})")

                start = proc_status(pid, "VmRSS")
                statuses: dict[str, int] = {}
                for round_number in range(options.rounds):
                    for batches in (over_cap, malformed, maximal):
                        code, _ = await run_diff(stub, auth, batches)
                        statuses[code.name] = statuses.get(code.name, 0) + 1
                    if (round_number + 1) % 25 == 0:
                        print(f"  after {round_number + 1} rounds: RSS "
                              f"{proc_status(pid, 'VmRSS'):.1f} MiB")
                # RSS at rest: the last call's answer has arrived, but the server may
                # still be freeing what it held; samples over two seconds, the last kept.
                trail = []
                for _ in range(10):
                    await asyncio.sleep(0.2)
                    trail.append(proc_status(pid, "VmRSS"))
                print("  RSS at rest, every 0.2 s: " + " ".join(f"{r:.1f}" for r in trail))
                end = trail[-1]
        finally:
            server.stop()

    ratio = end / start
    print(f"{options.rounds} rounds of (over the cap, malformed, maximal): statuses {statuses}")
    for name, details in DETAILS.items():
        print(f"  {name}: {details[:160]}")
    print(f"RSS before the rounds {start:.1f} MiB, after {end:.1f} MiB: ratio {ratio:.2f} "
          f"(target at most {END_TARGET:.2f})")
    print(f"RESULT peak_growth_mib={peak_growth:.1f} rss_start_mib={start:.1f} "
          f"rss_end_mib={end:.1f} end_ratio={ratio:.2f} max_diff_ms={max_diff_ms:.0f}")


if __name__ == "__main__":
    asyncio.run(main())
