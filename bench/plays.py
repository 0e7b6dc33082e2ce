"""Plays benchmark: RecordPlays batches of 1,000 plays (issue 15's target: at most 200 ms).

Starts `musicsync serve` on SQLite (its own temp folder), registers a user, fills the
library straight through the database (bench/diff.py's fill_library), then times over
gRPC on loopback, wall time per call:

- batches of 1,000 plays of 1,000 different songs (a phone's week of shuffle: one
  stats row and one change event a song, the most work a batch can ask for);
- batches of 1,000 plays of 20 songs (an album on repeat: 20 rows, 20 events);
- a batch sent again (every play a duplicate: nothing written);
- GetSongStats of 1,000 songs.

    python bench/plays.py [--songs 20000] [--repeat 20]

Its last line is machine-readable:
RESULT plays_batch_ms=<p50, 1,000 songs> plays_batch_p95_ms=<ms> few_songs_ms=<p50> resend_ms=<p50> stats_ms=<p50>
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc

from musicsync.proto import library_pb2, library_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from diff import fill_library, percentile  # noqa: E402 - sibling
from transfer import musicsync_server, register_bench_user  # noqa: E402 - sibling

BATCH = 1000
HOUR_MS = 3600 * 1000


def batch(prefix: str, hashes: list[bytes], start_ms: int) -> library_pb2.RecordPlaysRequest:
    return library_pb2.RecordPlaysRequest(plays=[
        library_pb2.Play(id=f"{prefix}-{n}", hash=hashes[n % len(hashes)].hex(),
                         started_at_ms=start_ms + n * 1000, seconds_played=180,
                         completed=n % 5 != 0, skipped=n % 7 == 0)
        for n in range(BATCH)])


async def timed(call, request, auth) -> tuple[float, object]:
    started = time.perf_counter()
    answer = await call(request, metadata=auth)
    return (time.perf_counter() - started) * 1000, answer


async def main() -> None:
    parser = argparse.ArgumentParser(description="RecordPlays benchmark")
    parser.add_argument("--songs", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=20)
    options = parser.parse_args()
    if options.songs < BATCH * options.repeat:
        raise SystemExit(f"--songs must be at least {BATCH} x --repeat")

    with tempfile.TemporaryDirectory(prefix="musicsync-bench-") as folder:
        server = musicsync_server(folder)
        try:
            await server.wait_ready()
            auth = await register_bench_user(server.port)
            hashes = fill_library(Path(folder) / "musicsync.db", "bench", options.songs)
            start_ms = int(time.time() * 1000) - 24 * HOUR_MS
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                listening = library_pb2_grpc.ListeningServiceStub(channel)
                await listening.RecordPlays(batch("warm-up", hashes[-BATCH:], start_ms),
                                            metadata=auth)
                spread, few, resend, stats = [], [], [], []
                for round_ in range(options.repeat):
                    songs = hashes[round_ * BATCH:(round_ + 1) * BATCH]
                    request = batch(f"spread{round_}", songs, start_ms)
                    ms, answer = await timed(listening.RecordPlays, request, auth)
                    assert all(r.outcome == r.OUTCOME_RECORDED for r in answer.results), \
                        answer.results[0]
                    spread.append(ms)
                    ms, answer = await timed(listening.RecordPlays, request, auth)
                    assert all(r.outcome == r.OUTCOME_DUPLICATE for r in answer.results)
                    resend.append(ms)
                    ms, _ = await timed(listening.RecordPlays,
                                        batch(f"few{round_}", songs[:20], start_ms), auth)
                    few.append(ms)
                    ms, answer = await timed(listening.GetSongStats,
                                             library_pb2.GetSongStatsRequest(
                                                 hashes=[h.hex() for h in songs]), auth)
                    assert len(answer.stats) == BATCH
                    stats.append(ms)
            rss = server.rss_mib()
        finally:
            server.stop()

    p50, p95 = statistics.median(spread), percentile(spread, 0.95)
    print(f"library of {options.songs} songs; {options.repeat} rounds of batches of {BATCH} "
          f"plays, SQLite, loopback")
    print(f"1,000 plays of 1,000 songs   p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")
    print(f"1,000 plays of 20 songs      p50 {statistics.median(few):7.1f} ms   "
          f"p95 {percentile(few, 0.95):7.1f} ms")
    print(f"the same batch again         p50 {statistics.median(resend):7.1f} ms")
    print(f"GetSongStats of 1,000 songs  p50 {statistics.median(stats):7.1f} ms")
    print(f"server RSS at the end        {rss:7.1f} MiB")
    print(f"RESULT plays_batch_ms={p50:.1f} plays_batch_p95_ms={p95:.1f} "
          f"few_songs_ms={statistics.median(few):.1f} resend_ms={statistics.median(resend):.1f} "
          f"stats_ms={statistics.median(stats):.1f}")


if __name__ == "__main__":
    asyncio.run(main())
