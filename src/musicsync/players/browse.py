"""Browsing a library: its artists, albums, genres and years, page by page; an album's songs.

An album is its album artist and its name: the album artist tag, or the artist tag when
that is empty (models.ALBUM_ARTIST_SQL), so songs tagged either way meet in one album.
Songs without an album tag make an album named "" of their artist; a genre "" and a year
0 gather the songs without one. An artist is an album artist in that sense.

An album's figures come from its songs: the latest year among them, how many, their total
duration, their plays summed (song_stats), the newest one's upload time, and a song with
cover art (the one first uploaded) for GetCoverArt. ListAlbums' filters choose songs: an
album listed for a genre or a year counts its songs of that genre or year.

Orders: by name (album, then album artist), by artist (album artist, then album): both
read page by page from an index, a page costing the same at any depth. By year (oldest
first), recently added (newest first) and most played (most first) group the whole
library for each page, ties ordered by name. An album's songs come by disc, track and
path (then id). Every listing, and an album's songs, page with keyset tokens (pages.py).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sqlalchemy import Select, Text, and_, case, func, literal_column, or_, select, tuple_
from sqlalchemy.orm import Session

from ..db.models import ALBUM_ARTIST_SQL, LibraryEntry, SongStats
from ..errors import InvalidArgument, NotFound
from .pages import Page, decode_token, scoped

LIBRARY = LibraryEntry.__table__
STATS = SongStats.__table__
# The album artist of a song, exactly as the browsing indexes spell it.
ALBUM_ARTIST = literal_column(ALBUM_ARTIST_SQL, Text)


class Sort(enum.IntEnum):
    """The orders of a listing (the values of library.proto's SortOrder)."""

    NAME = 1
    ARTIST = 2
    YEAR = 3
    RECENTLY_ADDED = 4
    MOST_PLAYED = 5


@dataclass(frozen=True)
class Album:
    album_artist: str
    album: str
    year: int
    track_count: int
    duration_ms: int
    art_hash: str  # lowercase hex, "" without art
    play_count: int
    added_at: int


@dataclass(frozen=True)
class Artist:
    name: str
    album_count: int
    song_count: int
    play_count: int
    added_at: int


def _plays() -> object:
    return func.coalesce(func.sum(STATS.c.play_count), 0)


def album_columns() -> list:
    """The figures of an album, as aggregates over its songs (joined with their stats)."""
    return [ALBUM_ARTIST.label("album_artist"), LIBRARY.c.album,
            func.max(LIBRARY.c.year).label("year"), func.count().label("tracks"),
            func.coalesce(func.sum(LIBRARY.c.duration_ms), 0).label("duration_ms"),
            func.min(case((LIBRARY.c.art_sha256.is_not(None), LIBRARY.c.id))).label("art_id"),
            _plays().label("plays"), func.max(LIBRARY.c.created_at).label("added_at")]


def albums_query(user_id: int) -> Select:
    """Every album of the user with its figures (narrow it with where/having/order)."""
    return (select(*album_columns())
            .select_from(LIBRARY.outerjoin(STATS, STATS.c.library_id == LIBRARY.c.id))
            .where(LIBRARY.c.user_id == user_id)
            .group_by(LIBRARY.c.album, ALBUM_ARTIST))


def albums_of(session: Session, rows) -> list[Album]:
    """Album rows (of albums_query) as Albums, with their art songs' hashes looked up."""
    rows = list(rows)
    art_ids = [row.art_id for row in rows if row.art_id is not None]
    hashes = dict(session.execute(select(LIBRARY.c.id, LIBRARY.c.sha256)
                                  .where(LIBRARY.c.id.in_(art_ids))).all()) if art_ids else {}
    return [Album(row.album_artist, row.album, int(row.year or 0), int(row.tracks),
                  int(row.duration_ms), hashes[row.art_id].hex() if row.art_id in hashes else "",
                  int(row.plays), int(row.added_at or 0)) for row in rows]


# Sorts with an aggregate first: the aggregate's label and whether larger comes first.
_AGGREGATE_ORDER = {Sort.YEAR: ("year", False), Sort.RECENTLY_ADDED: ("added_at", True),
                    Sort.MOST_PLAYED: ("plays", True)}


def _after_aggregate(value_column, value: int, descending: bool, names, after_names):
    beyond = value_column < value if descending else value_column > value
    return or_(beyond, and_(value_column == value, tuple_(*names) > tuple_(*after_names)))


def list_albums(session: Session, user_id: int, sort: Sort, size: int, token: str, *,
                artist: str = "", genre: str = "", year: int = 0) -> Page:
    """A page of the user's albums in ``sort`` order, filtered (see the module's doc)."""
    sort = sort or Sort.NAME
    listing = f"albums:{int(sort)}"
    query = albums_query(user_id)
    if artist:
        query = query.where(ALBUM_ARTIST == artist)
    if genre:
        query = query.where(LIBRARY.c.genre == genre)
    if year:
        query = query.where(LIBRARY.c.year == year)
    if sort in (Sort.NAME, Sort.ARTIST):
        names = [LIBRARY.c.album, ALBUM_ARTIST] if sort == Sort.NAME else [
            ALBUM_ARTIST, LIBRARY.c.album]
        after = decode_token(token, listing, "ss")
        # Always a bound on the first column: it steers SQLite to the index in that order.
        query = query.where(tuple_(*names) > tuple_(*after) if after else names[0] >= "")
        query = query.order_by(*names)

        def key(album: Album) -> tuple:
            return ((album.album, album.album_artist) if sort == Sort.NAME
                    else (album.album_artist, album.album))
    else:
        label, descending = _AGGREGATE_ORDER[sort]
        aggregate = {"year": func.max(LIBRARY.c.year), "added_at": func.max(LIBRARY.c.created_at),
                     "plays": _plays()}[label]
        names = [LIBRARY.c.album, ALBUM_ARTIST]
        after = decode_token(token, listing, "nss" if sort == Sort.YEAR else "iss")
        if after:
            query = query.having(_after_aggregate(aggregate, after[0], descending, names,
                                                  after[1:]))
        query = query.order_by(aggregate.desc() if descending else aggregate, *names)

        def key(album: Album) -> tuple:
            return (getattr(album, {"plays": "play_count"}.get(label, label)), album.album,
                    album.album_artist)
    rows = albums_of(session, session.execute(query.limit(size + 1)))
    return Page(rows[:size], len(rows) > size, listing, key)


def list_artists(session: Session, user_id: int, sort: Sort, size: int, token: str) -> Page:
    """A page of the user's (album) artists: by name, recently added or most played."""
    sort = Sort.NAME if sort in (0, Sort.ARTIST) else sort
    if sort == Sort.YEAR:
        raise InvalidArgument("artists are sorted by name, recently added or most played, "
                              "not by year")
    listing = f"artists:{int(sort)}"
    plays, added = _plays(), func.max(LIBRARY.c.created_at)
    query = (select(ALBUM_ARTIST.label("name"),
                    func.count(LIBRARY.c.album.distinct()).label("albums"),
                    func.count().label("songs"), plays.label("plays"), added.label("added_at"))
             .select_from(LIBRARY.outerjoin(STATS, STATS.c.library_id == LIBRARY.c.id))
             .where(LIBRARY.c.user_id == user_id).group_by(ALBUM_ARTIST))
    if sort == Sort.NAME:
        after = decode_token(token, listing, "s")
        query = query.where(ALBUM_ARTIST > after[0] if after else ALBUM_ARTIST >= "")
        query = query.order_by(ALBUM_ARTIST)

        def key(artist: Artist) -> tuple:
            return (artist.name,)
    else:
        aggregate = added if sort == Sort.RECENTLY_ADDED else plays
        after = decode_token(token, listing, "is")
        if after:
            query = query.having(_after_aggregate(aggregate, after[0], True, [ALBUM_ARTIST],
                                                  after[1:]))
        query = query.order_by(aggregate.desc(), ALBUM_ARTIST)

        def key(artist: Artist) -> tuple:
            return (artist.added_at if sort == Sort.RECENTLY_ADDED else artist.play_count,
                    artist.name)
    rows = [Artist(row.name, int(row.albums), int(row.songs), int(row.plays),
                   int(row.added_at or 0))
            for row in session.execute(query.limit(size + 1))]
    return Page(rows[:size], len(rows) > size, listing, key)


def list_genres(session: Session, user_id: int, size: int, token: str) -> Page:
    """A page of (genre, songs) by genre name."""
    after = decode_token(token, "genres", "s")
    query = (select(LIBRARY.c.genre, func.count()).where(LIBRARY.c.user_id == user_id)
             .where(LIBRARY.c.genre > after[0] if after else LIBRARY.c.genre >= "")
             .group_by(LIBRARY.c.genre).order_by(LIBRARY.c.genre).limit(size + 1))
    rows = [(genre, int(count)) for genre, count in session.execute(query)]
    return Page(rows[:size], len(rows) > size, "genres", lambda row: (row[0],))


def list_years(session: Session, user_id: int, size: int, token: str) -> Page:
    """A page of (year, songs), oldest first (0: songs without a year)."""
    after = decode_token(token, "years", "n")
    query = (select(LIBRARY.c.year, func.count()).where(LIBRARY.c.user_id == user_id)
             .where(LIBRARY.c.year > after[0] if after else LIBRARY.c.year >= 0)
             .group_by(LIBRARY.c.year).order_by(LIBRARY.c.year).limit(size + 1))
    rows = [(int(year), int(count)) for year, count in session.execute(query)]
    return Page(rows[:size], len(rows) > size, "years", lambda row: (row[0],))


def get_album(session: Session, user_id: int, album_artist: str, album: str, size: int,
              token: str) -> tuple[Album, Page]:
    """An album's figures (all its songs') and a page of its songs by disc, track and path
    (then id: unique, so pages never repeat or skip a song)."""
    listing = scoped("album-songs", user_id, album_artist, album)
    after = decode_token(token, listing, "nnsi")
    in_album = (LIBRARY.c.user_id == user_id, LIBRARY.c.album == album,
                ALBUM_ARTIST == album_artist)
    found = albums_of(session, session.execute(albums_query(user_id).where(*in_album[1:])))
    if not found:
        raise NotFound(f"your library has no album {album!r} by {album_artist!r}")
    order = (LibraryEntry.disc, LibraryEntry.track, LibraryEntry.path, LibraryEntry.id)
    query = select(LibraryEntry).where(*in_album)
    if after:
        query = query.where(tuple_(*order) > tuple_(*after))
    songs = list(session.scalars(query.order_by(*order).limit(size + 1)))
    return found[0], Page(songs[:size], len(songs) > size, listing,
                          lambda song: (song.disc, song.track, song.path, song.id))
