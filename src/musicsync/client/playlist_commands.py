"""`musicsync playlist ls | show NAME | import FILE.m3u8 | export NAME [FILE]`."""

from __future__ import annotations

import sys
from pathlib import Path

from . import m3u8
from .commands import OK
from .credentials import open_client
from .errors import ClientError
from .playlists import RemotePlaylist


def playlist(args) -> int:
    return {"ls": ls, "show": show, "import": import_file,
            "export": export}[args.playlist_command](args)


async def _named(client, name: str) -> RemotePlaylist:
    found = await client.playlists.find(name)
    if found is None:
        raise ClientError(f"you have no playlist named {name!r} (`musicsync playlist ls` "
                          f"lists them)")
    return await client.playlists.get(found.id)


async def ls(args) -> int:
    async with open_client() as client:
        for found in await client.playlists.list():
            print(f"{found.name}\t{found.entry_count} songs\tversion {found.version}")
    return OK


async def show(args) -> int:
    async with open_client() as client:
        found = await _named(client, args.name)
    print(f"{found.name}: {found.entry_count} songs, version {found.version}")
    if found.description:
        print(found.description)
    for position, song in enumerate(found.songs, 1):
        mark = "  (missing: deleted from the library)" if song.missing else ""
        print(f"{position:>4}  {song.path}{mark}")
    return OK


async def import_file(args) -> int:
    source = Path(args.file)
    try:
        text = source.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ClientError(f"cannot read {source}: {getattr(exc, 'strerror', None) or exc}"
                          ) from None
    root = Path(args.root) if args.root else source.parent
    paths, outside = m3u8.parse(text, source.parent, root)
    name = args.name or source.stem
    async with open_client() as client:
        by_path = {song.path: song.hash async for song in client.list_files()}
        hashes = [by_path[p] for p in paths if p in by_path]
        unknown = [p for p in paths if p not in by_path] + outside
        existing = await client.playlists.find(name)
        if existing is None:
            made = await client.playlists.create(name, hashes)
            print(f"created playlist {made.name!r} with {len(hashes)} songs")
        else:
            base = await client.playlists.get(existing.id)
            await client.playlists.save(base, hashes)
            print(f"replaced the songs of playlist {name!r}: {len(hashes)} songs")
    for entry in unknown:
        print(f"musicsync: not in your library, left out: {entry}", file=sys.stderr)
    return OK


async def export(args) -> int:
    async with open_client() as client:
        found = await _named(client, args.name)
        songs = {song.path: song async for song in client.list_files()}
    lines = []
    for entry in found.songs:
        song = songs.get(entry.path)
        title = " - ".join(t for t in (song.artist, song.title) if t) if song else ""
        seconds = (song.duration_ms + 500) // 1000 if song and song.duration_ms else -1
        lines.append(m3u8.Line(entry.path, seconds, title or Path(entry.path).stem))
    missing = [entry.path for entry in found.songs if entry.missing]
    if args.file is None:
        root = Path(args.root) if args.root else Path.cwd()
        sys.stdout.write(m3u8.render(lines, Path.cwd(), root, missing))
        return OK
    target = Path(args.file)
    root = Path(args.root) if args.root else target.parent
    try:
        target.write_text(m3u8.render(lines, target.parent, root, missing), encoding="utf-8")
    except OSError as exc:
        raise ClientError(f"cannot write {target}: {exc.strerror or exc}") from None
    print(f"wrote {len(lines) - len(missing)} songs of {found.name!r} to {target}"
          + (f" ({len(missing)} missing from the library, as comments)" if missing else ""))
    return OK
