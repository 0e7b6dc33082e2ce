"""A library's statistics: its size, its songs by format, codec and year, what is played.

- Songs, bytes and duration in all, and by format (the filename's extension, lowercased),
  by codec and by year ("" for none; year "" means no year tag): rolled up here from the
  user's running totals by (format, codec, year), which triggers keep in step with the
  library (db/summaries.py). Each list is by songs (most first), years by year; at most
  MAX_COUNTS of each (the most common).
- The ten most played album artists (an artist's plays are its songs' play counts summed)
  and albums, from the running plays per album; ties by name.
- The ten songs added last (upload time), and the ten played last (the device's clock).

So a call reads some dozens of totals and a few thousand album rows, never the whole
library (grouping 100,000 songs took some 350 ms). ``StatsCache`` keeps the last figures
of a few users with the user's change sequence (users.last_seq) they were computed at:
every change of a library, and of its songs' plays and ratings, records a change event
and moves the sequence on, so figures are served again only while nothing changed.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from ..db.models import LibraryEntry, User
from ..db.summaries import ALBUM_PLAYS, LIBRARY_TOTALS
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

    totals = LIBRARY_TOTALS.c
    for fmt, codec, year, songs, size, duration in session.execute(
            select(totals.format, totals.codec, totals.year, totals.songs, totals.bytes,
                   totals.duration_ms).where(totals.user_id == user_id)):
        count(fmt.lower(), codec, year, songs, size, duration)  # SQLite lowercases ASCII only
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
    """The most played artists and albums, from the plays summed by album (db/summaries.py).

    SQL finds the tenth figure; the rows at or above it are sorted here, so that ties
    fall by name the same way on every database (collations differ)."""
    plays = ALBUM_PLAYS.c
    artist_plays = func.sum(plays.plays)
    played = (plays.user_id == user_id) & (plays.plays > 0)
    by_artist = (select(plays.album_artist, artist_plays.label("plays"))
                 .where(played).group_by(plays.album_artist))
    totals = by_artist.subquery().c.plays
    tenth = session.scalar(select(totals).order_by(totals.desc()).offset(TOP - 1).limit(1)) or 0
    artists = session.execute(by_artist.having(artist_plays >= tenth)).all()
    stats.top_artists = [Count(name, int(total)) for name, total in
                         sorted(artists, key=lambda row: (-int(row[1]), row[0]))[:TOP]]
    albums = select(plays.album_artist, plays.album, plays.plays).where(played)
    tenth = session.scalar(select(plays.plays).where(played)
                           .order_by(plays.plays.desc()).offset(TOP - 1).limit(1)) or 0
    top = sorted(session.execute(albums.where(plays.plays >= tenth)),
                 key=lambda row: (-int(row[2]), row[1], row[0]))[:TOP]
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
