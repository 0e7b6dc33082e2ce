"""Folder sync benchmark: `musicsync sync DIR` as a person runs it, against one server.

Starts `musicsync serve` (its own temp folder, loopback), registers a user, signs
the CLI in (its own configuration folder), and generates a folder of valid WAV
songs of 100-300 KB in nested folders (Artist/Album/NN Title.wav). Then:

- first sync of that folder (all uploads): files/s and MB/s, wall time of the
  command;
- a no-change re-sync: wall time of the command and of the pass itself, bytes
  on the wire (song bytes both ways plus the library's changes the client read;
  compared with a full GetSync listing of the same library, measured here too),
  files hashed;
- a second folder synced from the library (all downloads): files/s;
- `--watch` on both folders: the delay from a file landing in the first to its
  appearance (whole, under its name) in the second; median of a few.

    python bench/client_sync.py [--files 2000] [--jobs 8] [--watch-repeat 3]

Its last line is machine-readable:
RESULT first_files_per_s=<n> resync_s=<s> resync_bytes=<n> getsync_bytes=<n> resync_hashed=<n> watch_delay_s=<s>
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc
from google.protobuf import empty_pb2

from musicsync.proto import sync_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transfer import musicsync_server, register_bench_user, wav_header  # noqa: E402 - sibling

MB = 1_000_000
PASSWORD = "bench password"  # register_bench_user's


def write_song(path: Path, size: int, salt: int) -> None:
    """A valid WAV file of ``size`` bytes, unique by ``salt``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    head = wav_header(size - 44, salt)
    path.write_bytes(head + bytes(size - len(head)))


def make_folder(root: Path, files: int, seed: int = 13) -> int:
    """``files`` songs in Artist/Album folders; the bytes written."""
    rng = random.Random(seed)
    total = 0
    for n in range(files):
        size = rng.randint(100_000, 300_000)
        write_song(root / f"Artist {n % 40:02d}" / f"Album {n % 7}" /
                   f"{n:04d} A song with a title.wav", size, salt=n + 1)
        total += size
    return total


class Cli:
    """`musicsync ...` in a subprocess with the bench's configuration folder."""

    def __init__(self, config: Path) -> None:
        self.env = {**os.environ, "MUSICSYNC_CONFIG_DIR": str(config)}

    async def run(self, *args: str, stdin: str | None = None) -> tuple[float, str]:
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "musicsync.cli", *args, env=self.env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await process.communicate(stdin.encode() if stdin else b"")
        seconds = time.perf_counter() - started
        if process.returncode != 0:
            raise SystemExit(f"musicsync {' '.join(args)} exited {process.returncode}:\n"
                             f"{err.decode()[-3000:]}")
        return seconds, out.decode()

    async def sync(self, folder: Path, *options: str) -> tuple[float, dict]:
        seconds, out = await self.run("sync", str(folder), "--json", *options)
        return seconds, json.loads(out.strip().splitlines()[-1])

    async def start(self, *args: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "musicsync.cli", *args, env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def getsync_bytes(port: int, auth) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024)]) as channel:
        answer = await sync_pb2_grpc.SyncServiceStub(channel).GetSync(empty_pb2.Empty(),
                                                                      metadata=auth)
    return answer.ByteSize()


async def watch_delays(cli: Cli, one: Path, two: Path, repeat: int) -> list[float]:
    watchers = [await cli.start("sync", str(folder), "--watch", "--quiet")
                for folder in (one, two)]
    try:
        # Quiet watchers print nothing; their first pass is done once a song dropped in
        # one folder appears in the other, so the first drop is a warm-up.
        delays = []
        for n in range(repeat + 1):
            name = f"Live/{n:02d} Dropped in.wav"
            temp = one / f".incoming-{n}.tmp"
            write_song(temp, 200_000, salt=10_000_000 + n)
            (one / "Live").mkdir(exist_ok=True)
            landed = time.perf_counter()
            os.rename(temp, one / name)  # lands whole, as a finished copy does
            target = two / name
            deadline = landed + 120
            while not target.exists():
                if time.perf_counter() > deadline:
                    raise SystemExit(f"{name} did not reach the second folder in 120 s")
                await asyncio.sleep(0.01)
            if n:
                delays.append(time.perf_counter() - landed)
        return delays
    finally:
        for watcher in watchers:
            if watcher.returncode is None:
                watcher.send_signal(signal.SIGTERM)
        for watcher in watchers:
            await asyncio.wait_for(watcher.wait(), 60)


async def main() -> None:
    parser = argparse.ArgumentParser(description="Folder sync benchmark")
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--watch-repeat", type=int, default=3)
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="musicsync-bench-") as folder:
        work = Path(folder)
        server = musicsync_server(str(work / "server"))
        try:
            await server.wait_ready()
            auth = await register_bench_user(server.port)
            cli = Cli(work / "config")
            await cli.run("login", f"127.0.0.1:{server.port}", "--user", "bench",
                          "--password-stdin", stdin=PASSWORD + "\n")
            one, two = work / "one", work / "two"
            total = make_folder(one, options.files)
            two.mkdir()

            first_s, first = await cli.sync(one, "--jobs", str(options.jobs))
            assert first["uploaded"] == options.files, first
            resync_s, resync = await cli.sync(one, "--jobs", str(options.jobs))
            resync_bytes = (resync["bytes_sent"] + resync["bytes_received"]
                            + resync["listing_bytes"])
            listing = await getsync_bytes(server.port, auth)
            down_s, down = await cli.sync(two, "--jobs", str(options.jobs))
            assert down["downloaded"] == options.files, down
            delays = await watch_delays(cli, one, two, options.watch_repeat)
        finally:
            server.stop()

    watch_delay = statistics.median(delays)
    print(f"folder: {options.files} songs, {total / MB:.1f} MB in nested folders; "
          f"--jobs {options.jobs}")
    print(f"first sync (uploads)   {first_s:7.2f} s  {options.files / first_s:7.1f} files/s "
          f"{total / first_s / MB:7.1f} MB/s  (pass {first['seconds']:.2f} s, hashed "
          f"{first['files_hashed']})")
    print(f"no-change re-sync      {resync_s:7.2f} s  (the pass itself {resync['seconds']:.3f} s; "
          f"the rest is starting Python)")
    print(f"  bytes on the wire    {resync_bytes:>10,}  (songs {resync['bytes_sent']} up, "
          f"{resync['bytes_received']} down; changes {resync['listing_bytes']})")
    print(f"  GetSync full list    {listing:>10,}  (the re-sync read "
          f"{100 * resync_bytes / listing:.3f}% of it)")
    print(f"  files hashed         {resync['files_hashed']:>10}")
    print(f"second folder (downloads) {down_s:7.2f} s  {options.files / down_s:7.1f} files/s "
          f"{total / down_s / MB:7.1f} MB/s")
    print(f"--watch delay, file in one folder -> whole in the other: median "
          f"{watch_delay:.2f} s of {', '.join(f'{d:.2f}' for d in delays)}")
    print(f"RESULT first_files_per_s={options.files / first_s:.1f} resync_s={resync_s:.3f} "
          f"resync_bytes={resync_bytes} getsync_bytes={listing} "
          f"resync_hashed={resync['files_hashed']} watch_delay_s={watch_delay:.3f}")


if __name__ == "__main__":
    asyncio.run(main())
