"""Searching a library: songs, albums and artists by words and prefixes.

A query is folded like the index (db/search_index.fold: case, diacritics and punctuation
gone), so "bjork" finds "Björk", "beyo" finds "Beyoncé", and characters that mean
something to FTS5 or tsquery (quotes, ``*``, ``NEAR(``, ``&``, ``:``) only separate words.
A song matches when every word of the query is a word, or the start of a word, of its
title, album, artist or album artist. A query without any word finds nothing.

Ranking, the same on SQLite and PostgreSQL: each query word scores what it matches best,
    8  a whole word of the title        4  the start of a word of the title
    2  a whole word of album or artists 1  the start of one
and a song's score is the sum; best first, ties in the order songs were added. So title
matches come before album and artist matches, whole words before prefixes ("love" puts
"Love" before "Lovely"). Songs page by (score, id) keyset tokens.

The first page also holds up to MAX_SEARCH_GROUPS albums whose name or album artist,
and (album) artists whose name, has every query word (as a word or a word's start), by
name.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, case, func, literal, or_, select, tuple_
from sqlalchemy.orm import Session

from ..db.models import LibraryEntry, SearchDocument
from ..db.search_index import Scope, fold, matching
from ..errors import InvalidArgument
from ..limits import MAX_SEARCH_QUERY_CHARS, MAX_SEARCH_WORDS, check_chars
from .browse import ALBUM_ARTIST, LIBRARY, Album, Artist, albums_of, albums_query
from .pages import decode_token, encode_token

# Albums and artists on a search's first page, at most.
MAX_SEARCH_GROUPS = 20
# Candidates looked at for those (matching rows grouped), before the exact check.
_GROUP_CANDIDATES = 500


@dataclass(frozen=True)
class Found:
    songs: list[LibraryEntry]
    scores: list[int]
    next_token: str
    albums: list[Album]
    artists: list[Artist]


def query_words(query: str) -> list[str]:
    """The folded words of a query; INVALID_ARGUMENT beyond the bounds (limits.py)."""
    check_chars(query, "query", MAX_SEARCH_QUERY_CHARS)
    words = list(dict.fromkeys(fold(query).split()))
    if len(words) > MAX_SEARCH_WORDS:
        raise InvalidArgument(f"query may have at most {MAX_SEARCH_WORDS} words "
                              f"(got {len(words)})")
    return words


def _has_words(text: str, words: list[str]) -> bool:
    """Whether every word starts a word of ``text`` (folded)."""
    present = fold(text).split()
    return all(any(found.startswith(word) for found in present) for word in words)


def _score(document, words: list[str]):
    """The ranking above, as SQL over a search document's folded columns."""
    title = literal(" ") + document.c.title + literal(" ")
    others = literal(" ") + document.c.album + literal(" ") + document.c.artist + literal(" ")
    terms = []
    for word in words:
        whole, start = f"% {word} %", f"% {word}%"
        terms.append(case((title.like(whole), 8), (title.like(start), 4),
                          (others.like(whole), 2), else_=1))
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def search(session: Session, user_id: int, query: str, size: int, token: str) -> Found:
    """A page of the user's songs best first (and on the first page, albums and artists)."""
    words = query_words(query)
    after = decode_token(token, "search", "ni")  # a score (INTEGER), a library id
    if not words:
        return Found([], [], "", [], [])
    document = SearchDocument.__table__.alias("document")
    score = _score(document, words).label("score")
    ranked = (select(document.c.library_id, score)
              .where(document.c.user_id == user_id,
                     document.c.library_id.in_(matching(session, words, Scope.SONGS)))
              .subquery("ranked"))
    page = select(ranked.c.library_id, ranked.c.score)
    if after:
        page = page.where(or_(ranked.c.score < after[0],
                              and_(ranked.c.score == after[0], ranked.c.library_id > after[1])))
    page = page.order_by(ranked.c.score.desc(), ranked.c.library_id).limit(size + 1)
    hits = [(int(library_id), int(points)) for library_id, points in session.execute(page)]
    more = len(hits) > size
    hits = hits[:size]
    entries = {entry.id: entry for entry in session.scalars(
        select(LibraryEntry).where(LibraryEntry.id.in_([id_ for id_, _ in hits])))}
    songs = [entries[id_] for id_, _ in hits if id_ in entries]
    scores = [points for id_, points in hits if id_ in entries]
    next_token = encode_token("search", hits[-1][::-1]) if more else ""
    albums, artists = ([], []) if after else _albums_and_artists(session, user_id, words)
    return Found(songs, scores, next_token, albums, artists)


def token_after(score: int, library_id: int) -> str:
    """The token continuing after a song (when an answer ends before its page does)."""
    return encode_token("search", (score, library_id))


def _albums_and_artists(session: Session, user_id: int, words: list[str]
                        ) -> tuple[list[Album], list[Artist]]:
    """Albums whose name or album artist, and album artists whose name, have every word.

    One look at the index finds both (an artist's words are among its albums'): which
    albums first, by their names only; then the figures of the few kept (the album names
    alone as well steer SQLite to the index by album; the artists' to the one by artist).
    """
    names = session.execute(
        select(LIBRARY.c.album, ALBUM_ARTIST).distinct()
        .where(LIBRARY.c.user_id == user_id,
               LIBRARY.c.id.in_(matching(session, words, Scope.ALBUMS)))
        .order_by(LIBRARY.c.album, ALBUM_ARTIST).limit(_GROUP_CANDIDATES)).all()
    kept = [(album, artist) for album, artist in names
            if _has_words(f"{album} {artist}", words)][:MAX_SEARCH_GROUPS]
    albums = albums_of(session, session.execute(
        albums_query(user_id).where(LIBRARY.c.album.in_({album for album, _ in kept}),
                                    tuple_(LIBRARY.c.album, ALBUM_ARTIST).in_(kept))
        .order_by(LIBRARY.c.album, ALBUM_ARTIST))) if kept else []
    named = sorted({artist for _, artist in names if _has_words(artist, words)})
    named = named[:MAX_SEARCH_GROUPS]
    artists = [Artist(name, int(count), int(songs), 0, int(added or 0))
               for name, count, songs, added in session.execute(
                   select(ALBUM_ARTIST, func.count(LIBRARY.c.album.distinct()), func.count(),
                          func.max(LIBRARY.c.created_at))
                   .where(LIBRARY.c.user_id == user_id, ALBUM_ARTIST.in_(named))
                   .group_by(ALBUM_ARTIST).order_by(ALBUM_ARTIST))] if named else []
    return albums, artists
