"""A library's statistics: its size, its songs by format, codec and year, what is played.

- Songs, bytes and duration in all, and by format (the filename's extension, lowercased),
  by codec and by year ("" for none; year "" means no year tag): one grouped scan of the
  library (by the filenames' last characters, codec and year: db/file_format.py), rolled
  up here. Each list is by songs (most first), years by year; at most
  MAX_COUNTS of each (the most common).
- The ten most played album artists (an artist's plays are its songs' play counts summed)
  and albums, from one grouped scan of the songs played; ties by name.
- The ten songs added last (upload time), and the ten played last (the device's clock).

Grouping a library of 100,000 songs takes a few hundred milliseconds; most calls ask
again about a library that has not changed. ``StatsCache`` keeps the last figures of a
few users with the user's change sequence (users.last_seq) they were computed at: every
change of a library, and of its songs' plays and ratings, records a change event and
moves the sequence on, so figures are served again only while nothing changed.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from ..db.file_format import filename_suffix
from ..db.models import LibraryEntry, User
from .browse import ALBUM_ARTIST, LIBRARY, STATS, Album, albums_of, albums_query

TOP = 10
RECENT = 10
# Entries of each by-format, by-codec and by-year list, at most (the answer stays small).
MAX_COUNTS = 100


@dataclass
class Count:
    name: str
    songs: int = 0
    bytes: int = 0
    duration_ms: int = 0

    def add(self, songs: int, size: int, duration_ms: int) -> None:
        self.songs += songs
        self.bytes += size
        self.duration_ms += duration_ms


@dataclass
class Stats:
    total: Count = field(default_factory=lambda: Count(""))
    by_format: list[Count] = field(default_factory=list)
    by_codec: list[Count] = field(default_factory=list)
    by_year: list[Count] = field(default_factory=list)
    top_artists: list[Count] = field(default_factory=list)  # .songs holds the plays
    top_albums: list[Album] = field(default_factory=list)
    recently_added: list[LibraryEntry] = field(default_factory=list)
    recently_played: list[LibraryEntry] = field(default_factory=list)


def _most(counts: dict[str, Count]) -> list[Count]:
    return sorted(counts.values(), key=lambda count: (-count.songs, count.name))[:MAX_COUNTS]


def statistics(session: Session, user_id: int) -> Stats:
    """The user's statistics (see the module's doc)."""
    stats = Stats()
    formats: dict[str, Count] = {}
    codecs: dict[str, Count] = {}
    years: dict[int, Count] = {}

    def count(fmt: str, codec: str, year: int, songs: int, size: int, duration: int) -> None:
        songs, size, duration = int(songs), int(size), int(duration)
        stats.total.add(songs, size, duration)
        formats.setdefault(fmt, Count(fmt)).add(songs, size, duration)
        codecs.setdefault(codec, Count(codec)).add(songs, size, duration)
        years.setdefault(year, Count(str(year) if year else "")).add(songs, size, duration)

    suffix = filename_suffix(LIBRARY.c.filename)
    dotless = []
    for end, codec, year, songs, size, duration in session.execute(
            select(suffix, LIBRARY.c.codec, LIBRARY.c.year, func.count(),
                   func.coalesce(func.sum(LIBRARY.c.size), 0),
                   func.coalesce(func.sum(LIBRARY.c.duration_ms), 0))
            .where(LIBRARY.c.user_id == user_id)
            .group_by(suffix, LIBRARY.c.codec, LIBRARY.c.year)):
        if "." in end:
            count(end.rpartition(".")[2], codec, year, songs, size, duration)
        else:
            dotless.append(end)
    if dotless:  # no extension, or a long one: their whole names tell
        for name, codec, year, size, duration in session.execute(
                select(LIBRARY.c.filename, LIBRARY.c.codec, LIBRARY.c.year, LIBRARY.c.size,
                       LIBRARY.c.duration_ms)
                .where(LIBRARY.c.user_id == user_id, suffix.in_(sorted(set(dotless))))):
            fmt = name.rpartition(".")[2].lower() if "." in name else ""
            count(fmt, codec, year, 1, size, duration)
    stats.by_format, stats.by_codec = _most(formats), _most(codecs)
    kept = {id(count) for count in _most({str(y): c for y, c in years.items()})}
    stats.by_year = [years[year] for year in sorted(years) if id(years[year]) in kept]
    _top_played(session, user_id, stats)
    stats.recently_added = list(session.scalars(
        select(LibraryEntry).where(LibraryEntry.user_id == user_id)
        .order_by(LibraryEntry.created_at.desc(), LibraryEntry.id.desc()).limit(RECENT)))
    stats.recently_played = list(session.scalars(
        select(LibraryEntry).join(STATS, STATS.c.library_id == LibraryEntry.id)
        .where(STATS.c.user_id == user_id, STATS.c.last_played_ms > 0)
        .order_by(STATS.c.last_played_ms.desc(), LibraryEntry.id.desc()).limit(RECENT)))
    return stats


def _top_played(session: Session, user_id: int, stats: Stats) -> None:
    """The most played artists and albums, from the plays of every played song."""
    album_plays = session.execute(
        select(ALBUM_ARTIST, LIBRARY.c.album, func.sum(STATS.c.play_count))
        .select_from(STATS.join(LIBRARY, LIBRARY.c.id == STATS.c.library_id))
        .where(STATS.c.user_id == user_id, STATS.c.play_count > 0)
        .group_by(ALBUM_ARTIST, LIBRARY.c.album)).all()
    artists: dict[str, int] = defaultdict(int)
    for artist, _album, plays in album_plays:
        artists[artist] += int(plays)
    stats.top_artists = [Count(name, plays) for name, plays in
                         sorted(artists.items(), key=lambda item: (-item[1], item[0]))[:TOP]]
    top = sorted(album_plays, key=lambda row: (-int(row[2]), row[1], row[0]))[:TOP]
    if not top:
        return
    albums = albums_of(session, session.execute(albums_query(user_id).where(
        LIBRARY.c.album.in_({album for _, album, _ in top}),  # steers SQLite to an index
        tuple_(LIBRARY.c.album, ALBUM_ARTIST).in_([(album, artist) for artist, album, _ in top]))))
    stats.top_albums = sorted(albums, key=lambda album: (-album.play_count, album.album,
                                                         album.album_artist))


class StatsCache:
    """The last statistics of up to ``users`` users, each with the change sequence it was
    computed at (see the module's doc). Owned by one servicer; not shared across servers."""

    def __init__(self, users: int = 16) -> None:
        self._users = users
        self._kept: OrderedDict[int, tuple[int, Stats]] = OrderedDict()

    def statistics(self, session: Session, user_id: int) -> Stats:
        """The user's statistics, computed again only if the library changed since."""
        # Read first: figures computed after it are at least this new.
        version = session.scalar(select(User.last_seq).where(User.id == user_id))
        kept = self._kept.get(user_id)
        if kept is not None and kept[0] == version:
            self._kept.move_to_end(user_id)
            return kept[1]
        figures = statistics(session, user_id)
        self._kept[user_id] = (version, figures)
        self._kept.move_to_end(user_id)
        while len(self._kept) > self._users:
            self._kept.popitem(last=False)
        return figures
