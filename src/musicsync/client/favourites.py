"""`musicsync star`, `unstar` and `rate`: favourites and ratings from a shell."""

from __future__ import annotations

from .commands import OK
from .credentials import open_client
from .library import _report_failures, _resolve

STARS = "★★★★★"


async def star(args) -> int:
    return await _mark(args.songs, starred=True)


async def unstar(args) -> int:
    return await _mark(args.songs, starred=False)


async def _mark(refs: list[str], *, starred: bool) -> int:
    failures = []
    async with open_client() as client:
        for ref, song in (await _resolve(client, refs)).items():
            if song is None:
                failures.append(f"{ref}: no such song in your library")
                continue
            stats = await client.listening.rate(song.hash, starred=starred)
            if stats.starred != starred:  # another device did otherwise later
                failures.append(f"{song.path}: {'unstarred' if starred else 'starred'} on "
                                f"another device later; left as it is")
                continue
            print(f"{'starred' if starred else 'unstarred'} {song.path}")
    return _report_failures(failures)


async def rate(args) -> int:
    async with open_client() as client:
        song = (await _resolve(client, [args.song]))[args.song]
        if song is None:
            return _report_failures([f"{args.song}: no such song in your library"])
        stats = await client.listening.rate(song.hash, rating=args.rating)
    if stats.rating != args.rating:
        return _report_failures([f"{song.path}: rated {stats.rating} on another device later; "
                                 f"left as it is"])
    print(f"rated {song.path} {_stars(stats.rating)}")
    return OK


def _stars(rating: int) -> str:
    return f"{rating}/5" if rating == 0 else f"{rating}/5 {STARS[:rating]}"
