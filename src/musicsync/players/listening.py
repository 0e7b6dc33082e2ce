"""Favourites, ratings and plays: what a user's devices say about listening to a song.

A song's ``song_stats`` row (keyed by its library entry, so a replace or a move keeps
it, and deleting the song drops it) holds its star, rating and play counts. Each
change to it takes one SONG_STATS event of the change feed (sha256 = the song), in
the transaction of the change, so every device of the user hears of it.

Stars and ratings: the latest by the device's clock wins. A request carries the
time the user did it (``at_ms``); one not newer than the stored ``rated_at_ms``
changes nothing (a device offline for a week cannot undo what another did since).
Star and rating share that one time.

Plays are recorded on a device, maybe offline and long before they are sent, and
come in batches. Each carries an id the device made: ``plays`` holds (user, id), so
a batch sent again counts once. A play is refused alone (the rest of its batch
counts) when its song is not in the library, its start is ahead of the server's
clock by more than PLAY_CLOCK_SKEW_MS, it started more than PLAY_BEFORE_ADDED_MS
before the song entered the library (the server cannot know when a device got its
copy: a song is normally uploaded by the first device that has it, within the time
that device stays offline; the margin is that time, generously), or it lasted more
than MAX_SECONDS_PLAYED. What a play adds to its song:
- skipped: skip_count + 1, nothing else (a skip is not a listen);
- otherwise, completed or not: play_count + 1, last_played_ms = the latest start.
Plays recorded against a hash the song had before a replace (a tag edit uploaded
elsewhere meanwhile) count for the song as it is now, while the feed remembers it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from ..db.dialect import UpsertMany, greatest
from ..db.models import Change, LibraryEntry, PlayRecord, SongStats
from ..errors import InvalidArgument, NotFound
from ..limits import (MAX_PLAY_ID_CHARS, MAX_SECONDS_PLAYED, PLAY_BEFORE_ADDED_MS,
                      PLAY_CLOCK_SKEW_MS)
from ..storage import is_sha256_hex
from ..sync.changes import ChangeKind, Subject, next_seq, record_change, record_changes
from .context import PlayerContext

MAX_RATING = 5
# Replaces followed from a hash a device still knows to the song as it is now.
_MAX_REPLACE_HOPS = 8
_STATS = SongStats.__table__
_INSERT_PLAY = insert(PlayRecord.__table__)


class Outcome(enum.IntEnum):
    """What became of one play (the values of library.PlayResult.Outcome)."""

    RECORDED = 1
    DUPLICATE = 2
    INVALID = 3


@dataclass(frozen=True)
class Rating:
    """A star and/or a rating (None: left as it is), done at ``at_ms`` by the device."""

    starred: bool | None
    rating: int | None
    at_ms: int


@dataclass(frozen=True)
class Play:
    """One play as the device sent it (``hash`` unparsed: a bad one refuses the play)."""

    id: str
    hash: str
    started_at_ms: int
    seconds_played: int
    completed: bool
    skipped: bool


@dataclass(frozen=True)
class PlayOutcome:
    id: str
    outcome: Outcome
    error: str = ""


@dataclass(frozen=True)
class Stats:
    """A song's favourite, rating and play counts (all zero when it has none yet)."""

    sha256: bytes
    starred: bool = False
    rating: int = 0
    rated_at_ms: int = 0
    play_count: int = 0
    skip_count: int = 0
    last_played_ms: int = 0


@dataclass(frozen=True)
class _Song:
    library_id: int
    sha256: bytes  # as it is now
    created_at: int


def _add_to_stats(statement):
    """Adds a batch's counts to its songs' rows (made where there are none)."""
    added = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[_STATS.c.library_id],
        set_=dict(play_count=_STATS.c.play_count + added.play_count,
                  skip_count=_STATS.c.skip_count + added.skip_count,
                  last_played_ms=greatest(_STATS.c.last_played_ms, added.last_played_ms)))


# One statement a batch on PostgreSQL: its triggers keeping the plays by album
# (db/summaries.py) run once a batch, not once a song.
_ADD_PLAYS = UpsertMany(_STATS, ("library_id", "user_id", "play_count", "skip_count",
                                 "last_played_ms"), _add_to_stats)


class Listening:
    """Stars, ratings and plays of the songs of users' libraries."""

    def __init__(self, context: PlayerContext) -> None:
        self._context = context

    def _now_ms(self) -> int:
        return int(self._context.clock() * 1000)

    async def rate(self, user_id: int, sha256: bytes, rating: Rating) -> Stats:
        """Stars/unstars and/or rates a song, unless a newer star or rating is stored;
        the song's stats as they are after it. NotFound if the library lacks the song."""
        if rating.starred is None and rating.rating is None:
            raise InvalidArgument("RateSong needs starred, rating or both: nothing to change")
        if rating.rating is not None and not 0 <= rating.rating <= MAX_RATING:
            raise InvalidArgument(f"rating must be 0 (none) to {MAX_RATING}; got {rating.rating}")
        now_ms = self._now_ms()
        if rating.at_ms <= 0:
            raise InvalidArgument("at_ms must be when the user did it, by the device's clock "
                                  "(Unix milliseconds)")
        if rating.at_ms > now_ms + PLAY_CLOCK_SKEW_MS:
            raise InvalidArgument(_ahead(rating.at_ms, now_ms, "at_ms"))

        def work(session: Session) -> tuple[Stats, int | None]:
            song = _songs(session, user_id, [sha256]).get(sha256)
            if song is None:
                raise NotFound(f"no song {sha256.hex()} in your library")
            row = session.get(SongStats, song.library_id)
            if row is None:
                row = SongStats(library_id=song.library_id, user_id=user_id, starred=False,
                                rating=0, rated_at_ms=0, play_count=0, skip_count=0,
                                last_played_ms=0)
                session.add(row)
            if rating.at_ms <= row.rated_at_ms:
                return _stats(song.sha256, row), None  # a newer one is stored: it stands
            changed = ((rating.starred is not None and bool(row.starred) != rating.starred)
                       or (rating.rating is not None and row.rating != rating.rating))
            if rating.starred is not None:
                row.starred = rating.starred
            if rating.rating is not None:
                row.rating = rating.rating
            row.rated_at_ms = rating.at_ms
            seq = None
            if changed:  # the same state again only moves the time: no event
                seq = next_seq(session, user_id)
                record_change(session, user_id, seq, ChangeKind.UPDATED, song.sha256,
                              self._context.now(), subject=Subject.SONG_STATS)
            session.flush()
            return _stats(song.sha256, row), seq

        async with self._context.db.write() as session:
            stats, seq = await session.run_sync(work)
        if seq is not None:
            await self._context.notifier.published(user_id, seq)
        return stats

    async def record_plays(self, user_id: int, plays: Sequence[Play]) -> list[PlayOutcome]:
        """Records a batch of plays in one transaction; an outcome per play, in order."""
        now_ms = self._now_ms()
        checked: list[PlayOutcome | None] = []
        hashes: list[bytes] = []
        for play in plays:
            error = _play_error(play, now_ms)
            checked.append(PlayOutcome(play.id, Outcome.INVALID, error) if error else None)
            if not error:
                hashes.append(bytes.fromhex(play.hash.lower()))
        if not hashes:
            return [outcome for outcome in checked if outcome is not None]

        def work(session: Session) -> tuple[list[PlayOutcome], int | None]:
            songs = _songs(session, user_id, hashes)
            ids = [play.id for play, done in zip(plays, checked) if done is None]
            seen = set(session.scalars(select(PlayRecord.play_id).where(
                PlayRecord.user_id == user_id, PlayRecord.play_id.in_(set(ids)))))
            outcomes: list[PlayOutcome] = []
            rows: list[dict] = []
            counts: dict[int, list] = {}  # library id: [plays, skips, last played, hash]
            for play, done in zip(plays, checked):
                if done is not None:
                    outcomes.append(done)
                    continue
                song = songs.get(bytes.fromhex(play.hash.lower()))
                error = _song_error(play, song)
                if error:
                    outcomes.append(PlayOutcome(play.id, Outcome.INVALID, error))
                    continue
                if play.id in seen:
                    outcomes.append(PlayOutcome(play.id, Outcome.DUPLICATE))
                    continue
                seen.add(play.id)
                rows.append(dict(user_id=user_id, play_id=play.id, library_id=song.library_id,
                                 started_at_ms=play.started_at_ms,
                                 seconds_played=play.seconds_played,
                                 completed=play.completed, skipped=play.skipped,
                                 received_at=now_ms // 1000))
                count = counts.setdefault(song.library_id, [0, 0, 0, song.sha256])
                if play.skipped:
                    count[1] += 1
                else:
                    count[0] += 1
                    count[2] = max(count[2], play.started_at_ms)
                outcomes.append(PlayOutcome(play.id, Outcome.RECORDED))
            if not rows:
                return outcomes, None
            connection = session.connection()
            connection.execute(_INSERT_PLAY, rows)
            _ADD_PLAYS.execute(connection, [
                dict(library_id=library_id, user_id=user_id, play_count=plays_,
                     skip_count=skips, last_played_ms=last)
                for library_id, (plays_, skips, last, _) in counts.items()])
            seq = record_changes(session, user_id, ChangeKind.UPDATED,
                                 [count[3] for count in counts.values()], now_ms // 1000,
                                 subject=Subject.SONG_STATS)
            return outcomes, seq

        async with self._context.db.write() as session:
            outcomes, seq = await session.run_sync(work)
        if seq is not None:
            await self._context.notifier.published(user_id, seq)
        return outcomes

    async def stats(self, user_id: int, hashes: Iterable[bytes]) -> list[Stats]:
        """The stats of those of ``hashes`` the library holds, in the order asked."""
        wanted = list(dict.fromkeys(hashes))
        if not wanted:
            return []

        def work(session: Session) -> list[Stats]:
            found = {sha: _stats(sha, row) for sha, row in session.execute(
                select(LibraryEntry.sha256, SongStats)
                .outerjoin(SongStats, SongStats.library_id == LibraryEntry.id)
                .where(LibraryEntry.user_id == user_id, LibraryEntry.sha256.in_(wanted)))}
            return [found[sha] for sha in wanted if sha in found]

        return await self._context.db.quick_read(work)


def _stats(sha256: bytes, row: SongStats | None) -> Stats:
    if row is None:
        return Stats(sha256)
    return Stats(sha256, bool(row.starred), row.rating, row.rated_at_ms, row.play_count,
                 row.skip_count, row.last_played_ms)


def _songs(session: Session, user_id: int, hashes: Iterable[bytes]) -> dict[bytes, _Song]:
    """The user's songs by hash, including hashes they had before a replace."""
    wanted = set(hashes)
    found = {sha: _Song(library_id, sha, created_at) for library_id, sha, created_at in
             session.execute(select(LibraryEntry.id, LibraryEntry.sha256,
                                    LibraryEntry.created_at)
                             .where(LibraryEntry.user_id == user_id,
                                    LibraryEntry.sha256.in_(wanted)))}
    # Hashes the library lacks may be songs replaced since the device learnt them.
    lost = {sha: sha for sha in wanted - found.keys()}  # asked: hash followed so far
    for _ in range(_MAX_REPLACE_HOPS):
        if not lost:
            break
        newer = dict(session.execute(
            select(Change.replaces, Change.sha256).where(
                Change.user_id == user_id, Change.subject == int(Subject.SONG),
                Change.kind == int(ChangeKind.ADDED),
                Change.replaces.in_(set(lost.values())))).all())
        following = {}
        for asked, current in lost.items():
            successor = newer.get(current)
            if successor is None:
                continue
            following[asked] = successor
        if not following:
            break
        now_held = {sha: _Song(library_id, sha, created_at) for library_id, sha, created_at in
                    session.execute(select(LibraryEntry.id, LibraryEntry.sha256,
                                           LibraryEntry.created_at)
                                    .where(LibraryEntry.user_id == user_id,
                                           LibraryEntry.sha256.in_(set(following.values()))))}
        lost = {}
        for asked, successor in following.items():
            if successor in now_held:
                found[asked] = now_held[successor]
            else:
                lost[asked] = successor
    return found


def _play_error(play: Play, now_ms: int) -> str:
    """Why a play is refused before looking at its song ("" if it is not)."""
    if not 1 <= len(play.id) <= MAX_PLAY_ID_CHARS:
        return f"a play's id must have 1 to {MAX_PLAY_ID_CHARS} characters (got {len(play.id)})"
    if not is_sha256_hex(play.hash.lower()):
        return f"hash must be the 64 hex characters of a SHA-256 (got {play.hash[:80]!r})"
    if play.started_at_ms > now_ms + PLAY_CLOCK_SKEW_MS:
        return _ahead(play.started_at_ms, now_ms, "started_at_ms")
    if play.seconds_played > MAX_SECONDS_PLAYED:
        return (f"seconds_played {play.seconds_played} is more than a play can last "
                f"(at most {MAX_SECONDS_PLAYED})")
    return ""


def _song_error(play: Play, song: _Song | None) -> str:
    if song is None:
        return f"no song {play.hash.lower()} in your library"
    earliest = song.created_at * 1000 - PLAY_BEFORE_ADDED_MS
    if play.started_at_ms < earliest:
        return (f"started_at_ms {play.started_at_ms} is before the song could be on the "
                f"device: more than {PLAY_BEFORE_ADDED_MS // 86_400_000} days before it "
                f"entered your library ({song.created_at * 1000} ms); is the device's clock "
                f"right?")
    return ""


def _ahead(at_ms: int, now_ms: int, field: str) -> str:
    return (f"{field} {at_ms} is {(at_ms - now_ms) // 1000} s ahead of the server's clock "
            f"(at most {PLAY_CLOCK_SKEW_MS // 1000} s allowed); is the device's clock right?")
