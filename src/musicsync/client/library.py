"""`musicsync ls`, `push`, `pull`, `mv`, `rm` and `watch`: the library from a shell."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from dataclasses import asdict
from datetime import datetime
from pathlib import Path, PurePosixPath

from .commands import FAILED, OK
from .credentials import open_client
from .errors import ClientError
from .models import ChangeEvent, RemoteFile
from .output import Reporter, duration, human_size
from .transfer import hash_file

HASH = re.compile(r"[0-9a-fA-F]{64}")


async def ls(args) -> int:
    async with open_client() as client:
        songs = [song async for song in client.list_files()]
    songs.sort(key=lambda song: song.path)  # as the folder tree reads, not upload order
    if args.json:
        print(json.dumps([asdict(song) for song in songs], ensure_ascii=False, indent=2))
    elif sys.stdout.isatty():
        _table(songs)
    else:  # one song a line, tab-separated: for scripts
        for song in songs:
            print("\t".join((song.path, song.title, song.artist, song.album,
                             duration(song.duration_ms), str(song.size))))
    return OK


def _table(songs: list[RemoteFile]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for name, justify in (("PATH", "left"), ("TITLE", "left"), ("ARTIST", "left"),
                          ("ALBUM", "left"), ("TIME", "right"), ("SIZE", "right")):
        table.add_column(name, justify=justify, overflow="fold")
    for song in songs:
        table.add_row(song.path, song.title, song.artist, song.album,
                      duration(song.duration_ms), human_size(song.size))
    console = Console()
    console.print(table)
    console.print(f"{len(songs)} songs, {human_size(sum(s.size for s in songs))}")


async def _resolve(client, refs: list[str]) -> dict[str, RemoteFile | None]:
    """The library entry each HASH or PATH names (None: no such song)."""
    found: dict[str, RemoteFile | None] = {ref: None for ref in refs}
    if all(HASH.fullmatch(ref) for ref in refs):
        by_hash = {f.hash: f for f in (await client.stat([r.lower() for r in refs])).found}
        return {ref: by_hash.get(ref.lower()) for ref in refs}
    async for song in client.list_files():
        for ref in refs:
            if ref.strip("/") == song.path or ref.lower() == song.hash:
                found[ref] = song
    return found


def _report_failures(failures: list[str]) -> int:
    if not failures:
        return OK
    print(f"musicsync: {len(failures)} failed:", file=sys.stderr)
    for failure in failures:
        print(f"  {failure}", file=sys.stderr)
    return FAILED


async def push(args) -> int:
    files = [Path(f) for f in args.files]
    folder_target = args.path is not None and (len(files) > 1 or args.path.endswith("/"))
    reporter = Reporter(quiet=args.quiet)
    failures = []
    async with open_client() as client:
        with reporter.session():
            for source in files:
                if not source.is_file():
                    failures.append(f"{source}: not a file")
                    continue
                remote = args.path
                if folder_target:
                    remote = f"{args.path.rstrip('/')}/{source.name}"
                try:
                    with reporter.transfer(f"↑ {source.name}", source.stat().st_size) as progress:
                        result = await client.upload(source, path=remote, progress=progress)
                except ClientError as exc:
                    failures.append(f"{source}: {exc.message}")
                    continue
                if result.duplicate_of_path:
                    reporter.line(f"already in the library at {result.duplicate_of_path}: "
                                  f"{source}")
                elif result.bytes_sent == 0 and result.resumed_from == 0:
                    reporter.line(f"already in the library: {result.entry.path}")
                else:
                    resumed = (f", continued from byte {result.resumed_from}"
                               if result.resumed_from else "")
                    reporter.line(f"uploaded {source} -> {result.entry.path} "
                                  f"({human_size(result.entry.size)}{resumed})")
    return _report_failures(failures)


def _local_path(root: Path, remote_path: str) -> Path:
    parts = PurePosixPath(remote_path).parts
    if not parts or any(p in ("", ".", "..") for p in parts) or remote_path.startswith("/"):
        raise ClientError(f"the library path {remote_path!r} cannot be a local file name")
    return root.joinpath(*parts)


async def pull(args) -> int:
    root = Path(args.output)
    reporter = Reporter(quiet=args.quiet)
    failures = []
    async with open_client() as client:
        found = await _resolve(client, args.songs)
        with reporter.session():
            for ref, song in found.items():
                if song is None:
                    failures.append(f"{ref}: no such song in your library")
                    continue
                try:
                    dest = _local_path(root, song.path)
                    if dest.exists():
                        if (await asyncio.to_thread(hash_file, dest))[0] == song.hash:
                            reporter.line(f"already here: {dest}")
                            continue
                        failures.append(f"{dest}: a different file is there; not overwritten")
                        continue
                    with reporter.transfer(f"↓ {song.filename}", song.size) as progress:
                        result = await client.download(song.hash, dest, progress=progress)
                except ClientError as exc:
                    failures.append(f"{ref}: {exc.message}")
                    continue
                except OSError as exc:
                    failures.append(f"{ref}: {exc.strerror or exc} ({exc.filename or root})")
                    continue
                resumed = (f", continued from byte {result.resumed_from}"
                           if result.resumed_from else "")
                reporter.line(f"downloaded {song.path} -> {dest} "
                              f"({human_size(result.size)}{resumed})")
    return _report_failures(failures)


async def mv(args) -> int:
    async with open_client() as client:
        song = (await _resolve(client, [args.song]))[args.song]
        if song is None:
            raise ClientError(f"{args.song}: no such song in your library")
        moved = await client.move(song.hash, args.new_path)
    print(f"moved {song.path} -> {moved.path}")
    return OK


async def rm(args) -> int:
    failures = []
    async with open_client() as client:
        for ref, song in (await _resolve(client, args.songs)).items():
            if song is None or not await client.delete(song.hash):
                failures.append(f"{ref}: no such song in your library")
                continue
            print(f"removed {song.path}")
    return _report_failures(failures)


def watch(args) -> int:
    """Runs until Ctrl-C, which is its normal end (exit 0)."""
    try:
        return asyncio.run(_watch(args))
    except KeyboardInterrupt:
        return OK


async def _watch(args) -> int:
    from .livefeed import LiveFeed, drop_reason, newest_cursor

    async with open_client() as client:
        since = args.since
        if since is None:  # from now on
            since = await newest_cursor(client)
        print(f"watching {client.target} from cursor {since}; Ctrl-C to stop", flush=True)

        def dropped(error: ClientError | None, pause: float) -> None:
            print(f"musicsync: {drop_reason(error)}; reconnecting from cursor "
                  f"{feed.cursor} in {pause:g} s", file=sys.stderr, flush=True)

        def back() -> None:
            print(f"musicsync: reconnected to {client.target}; watching from cursor "
                  f"{feed.cursor}", file=sys.stderr, flush=True)

        feed = LiveFeed(client, since, on_drop=dropped, on_back=back)
        async for item in feed:
            if not isinstance(item, ChangeEvent):
                continue  # a heartbeat
            when = datetime.fromtimestamp(item.at).strftime("%Y-%m-%d %H:%M:%S")
            what = item.file.path if item.file else item.hash
            replaced = f" (replaces {item.replaces[:12]})" if item.replaces else ""
            print(f"{when} {item.kind:<7} {what} [{item.hash[:12]}]{replaced} "
                  f"cursor={item.cursor}", flush=True)
    return OK
