"""Sync benchmark: Diff, Changes and Watch on a library of 100,000 songs.

Starts `musicsync serve` (its own temp folder), registers a user, and fills
that user's library straight through the database layer: the same rows an
upload writes (blob, library entry, ADDED change event), in one transaction,
so the fill takes seconds instead of 100,000 uploads. Then, over gRPC:

- Diff for a device holding the same set plus 100 songs the server lacks and
  minus 100 it has: wall time per call on loopback (p50/p95), and bytes on
  the wire (request and response messages) against GetSync's full list for
  the same library;
- Changes when nothing changed (p50);
- the delay from an upload's commit to the event reaching a second client's
  Watch (p50).

    python bench/diff.py [--songs 100000] [--repeat 20]

Its last line is machine-readable:
RESULT diff_p50_ms=<ms> diff_p95_ms=<ms> diff_bytes=<n> getsync_bytes=<n> changes_ms=<ms> watch_ms=<ms>
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc

from musicsync.proto import file_pb2, file_pb2_grpc, sync_pb2, sync_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transfer import musicsync_server, register_bench_user, wav_header  # noqa: E402 - sibling

DIFF_BATCH = 50_000  # hashes per DiffRequest: 1.7 MB, well inside 4 MiB
CHANGED = 100
ADDED = 1  # ChangeKind.ADDED in the changes table
DEVICE = sync_pb2.Device(id="bench-desktop", name="Bench desktop")


def song_hash(number: int) -> bytes:
    return hashlib.sha256(b"bench song %d" % number).digest()


def fill_library(database: Path, username: str, songs: int) -> list[bytes]:
    """Writes ``songs`` library entries for the user, as uploads would; returns their hashes."""
    now = int(time.time())
    hashes = [song_hash(n) for n in range(songs)]
    with sqlite3.connect(database, timeout=30) as db:
        (user_id, last_seq), = db.execute(
            "SELECT id, last_seq FROM users WHERE username = ?", (username,))
        db.executemany("INSERT INTO blobs (sha256, size, created_at, corrupt) VALUES (?, ?, ?, 0)",
                       ((sha, 4_000_000 + n, now) for n, sha in enumerate(hashes)))
        db.executemany(
            "INSERT INTO library (user_id, sha256, filename, path, size, title, artist, "
            "album, track, duration_ms, codec, created_at, updated_at, seq) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'mp3', ?, ?, ?)",
            ((user_id, sha, f"Artist {n % 500} - Song number {n}.mp3",
              f"Artist {n % 500} - Song number {n}.mp3", 4_000_000 + n,
              f"Song number {n}", f"Artist {n % 500}", f"Album {n % 8000}", n % 12 + 1,
              215_000, now, now, last_seq + 1 + n) for n, sha in enumerate(hashes)))
        db.executemany("INSERT INTO changes (user_id, seq, kind, sha256, at) VALUES (?, ?, ?, ?, ?)",
                       ((user_id, last_seq + 1 + n, ADDED, sha, now)
                        for n, sha in enumerate(hashes)))
        db.execute("UPDATE users SET last_seq = ? WHERE id = ?", (last_seq + songs, user_id))
    return hashes


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def diff_once(stub, hashes: list[bytes], auth) -> tuple[float, int, int]:
    """One Diff: (seconds, bytes on the wire, songs to download)."""
    requests = [sync_pb2.DiffRequest(hashes=hashes[:DIFF_BATCH], device=DEVICE)]
    requests += [sync_pb2.DiffRequest(hashes=hashes[start:start + DIFF_BATCH])
                 for start in range(DIFF_BATCH, len(hashes), DIFF_BATCH)]
    wire = sum(r.ByteSize() for r in requests)
    downloads = 0
    started = time.perf_counter()
    async for response in stub.Diff(iter(requests), metadata=auth):
        wire += response.ByteSize()
        downloads += len(response.download)
    return time.perf_counter() - started, wire, downloads


async def getsync_bytes(stub, auth) -> int:
    """Size of GetSync's full list for the library, built from ListFiles pages.

    GetSync itself refuses a list over the phone's 4 MiB message limit (as
    100,000 songs are), so the same (hash, filename) pairs are sized here.
    """
    listing, token = sync_pb2.GetSyncResponse(), ""
    while True:
        page = await stub.ListFiles(sync_pb2.ListFilesRequest(page_size=1000, page_token=token),
                                    metadata=auth)
        listing.files.extend(sync_pb2.FileInfo(hash=f.hash, filename=f.filename)
                             for f in page.files)
        token = page.next_page_token
        if not token:
            return listing.ByteSize()


async def changes_idle(stub, auth, repeat: int) -> tuple[list[float], int]:
    cursor = (await stub.Changes(sync_pb2.ChangesRequest(since=0, limit=1), metadata=auth)).cursor
    cursor = max(cursor, 0)
    while True:  # walk to the end of the feed
        page = await stub.Changes(sync_pb2.ChangesRequest(since=cursor, limit=1000), metadata=auth)
        cursor = page.cursor
        if not page.has_more:
            break
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        page = await stub.Changes(sync_pb2.ChangesRequest(since=cursor), metadata=auth)
        runs.append(time.perf_counter() - started)
        assert not page.events, "nothing changed, yet Changes returned events"
    return runs, cursor


async def watch_delays(port: int, auth, cursor: int, repeat: int) -> tuple[list[float], list[float]]:
    """Per upload: (event time - upload answer time, event time - upload start)."""
    after_answer, after_start = [], []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as phone, \
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as desktop:
        files = file_pb2_grpc.FileServiceStub(phone)
        watch = sync_pb2_grpc.SyncServiceStub(desktop).Watch(
            sync_pb2.WatchRequest(since=cursor, device=DEVICE), metadata=auth)
        events: asyncio.Queue[float] = asyncio.Queue()

        async def listen():
            async for message in watch:
                if message.HasField("event"):
                    events.put_nowait(time.perf_counter())
        listener = asyncio.create_task(listen())
        await asyncio.sleep(0.2)  # the stream is open and caught up
        try:
            for n in range(repeat):
                song = wav_header(4 * 4410, salt=10_000_000 + n) + bytes(4 * 4410 - 8)
                started = time.perf_counter()
                await files.Upload(iter([
                    file_pb2.UploadRequest(metadata=file_pb2.FileMetadata(filename=f"new {n}.wav")),
                    file_pb2.UploadRequest(chunk=song)]), metadata=auth)
                answered = time.perf_counter()
                heard = await asyncio.wait_for(events.get(), 10)
                after_answer.append(heard - answered)
                after_start.append(heard - started)
        finally:
            listener.cancel()
            watch.cancel()
    return after_answer, after_start


async def main() -> None:
    parser = argparse.ArgumentParser(description="Sync benchmark (Diff, Changes, Watch)")
    parser.add_argument("--songs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="musicsync-bench-") as folder:
        server = musicsync_server(folder)
        port = server.port
        try:
            await server.wait_ready()
            auth = await register_bench_user(port)
            started = time.perf_counter()
            hashes = fill_library(Path(folder) / "musicsync.db", "bench", options.songs)
            fill_s = time.perf_counter() - started

            held = hashes[CHANGED:] + [song_hash(options.songs + n) for n in range(CHANGED)]
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[
                    ("grpc.max_receive_message_length", 64 * 1024 * 1024)]) as channel:
                sync = sync_pb2_grpc.SyncServiceStub(channel)
                await diff_once(sync, held, auth)  # warm-up: SQLite page cache, code paths
                timings, wire = [], 0
                for _ in range(options.repeat):
                    seconds, wire, downloads = await diff_once(sync, held, auth)
                    assert downloads == CHANGED, f"Diff asked for {downloads} downloads"
                    timings.append(seconds * 1000)
                full_list = await getsync_bytes(sync, auth)
                changes, cursor = await changes_idle(sync, auth, options.repeat * 10)
            after_answer, after_start = await watch_delays(port, auth, cursor, options.repeat)
            rss = server.rss_mib()
        finally:
            server.stop()

    diff_p50, diff_p95 = statistics.median(timings), percentile(timings, 0.95)
    changes_ms = statistics.median(changes) * 1000
    watch_ms = max(statistics.median(after_answer) * 1000, 0.0)
    print(f"library of {options.songs} songs (filled in {fill_s:.1f} s); "
          f"device holds it minus {CHANGED} plus {CHANGED}; {options.repeat} runs each")
    print(f"Diff wall time on loopback  p50 {diff_p50:8.1f} ms   p95 {diff_p95:8.1f} ms")
    print(f"Diff bytes on the wire      {wire:>12,}  (request hashes + answer)")
    print(f"GetSync full list           {full_list:>12,}  "
          f"({full_list / wire:.1f}x the Diff; over the 4 MiB limit from "
          f"~{4 * 1024 * 1024 * options.songs // full_list:,} songs of these names)")
    print(f"Changes, nothing new        p50 {changes_ms:8.2f} ms")
    print(f"Watch: event after upload answer p50 {statistics.median(after_answer) * 1000:6.1f} ms"
          f" (negative: the watcher heard first); after upload start p50 "
          f"{statistics.median(after_start) * 1000:6.1f} ms")
    print(f"server RSS at the end       {rss:8.1f} MiB")
    print(f"RESULT diff_p50_ms={diff_p50:.1f} diff_p95_ms={diff_p95:.1f} diff_bytes={wire} "
          f"getsync_bytes={full_list} changes_ms={changes_ms:.2f} watch_ms={watch_ms:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
