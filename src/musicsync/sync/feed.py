"""The change feed: reading it, waiting on it, the devices that follow it, pruning it.

Each user's library changes carry a sequence number (see ``library``); a
*cursor* is the seq of the last change a device has applied. This module
checks cursors, pages through events after one, waits for new ones (Watch),
remembers each device's last cursor and prunes old events.

Pruning: an event is dropped once it is older than the retention period AND
every device seen within that period has passed it (acknowledged a cursor at
or beyond it). ``users.pruned_seq`` then says where the kept feed starts, and
a cursor older than that is expired: the device must run a full Diff.
"""

from __future__ import annotations

import asyncio
import logging
import time
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from ..db import Database
from ..db.dialect import greatest, insert_for
from ..db.models import Change, Device, LibraryEntry, Playlist, SongStats, User
from ..errors import FailedPrecondition, InvalidArgument
from ..limits import MAX_DEVICE_ID_CHARS, MAX_DEVICE_NAME_CHARS
from .changes import SONGS, Subject
from .notifier import ChangeNotifier

log = logging.getLogger(__name__)

# Sequence numbers are SQLite integers.
MAX_SEQ = 2**63 - 1
MAX_PAGE = 1000
DEFAULT_PAGE = 500
MAX_DEVICE_ID = MAX_DEVICE_ID_CHARS
MAX_DEVICE_NAME = MAX_DEVICE_NAME_CHARS
# A device's last_seen is written at most this often (reads stay read-only).
SEEN_RESOLUTION = 60
PRUNE_INTERVAL = 3600


@dataclass(frozen=True)
class DeviceRef:
    """Who is syncing: the id the device chose and a name to show."""

    id: str
    name: str


def parse_device(device_id: str, name: str) -> DeviceRef | None:
    """A validated device, or None when the request names none."""
    if not device_id:
        if name:
            raise InvalidArgument("device.name was given without device.id; send both")
        return None
    if len(device_id) > MAX_DEVICE_ID or not device_id.isprintable():
        raise InvalidArgument(f"device.id must be 1-{MAX_DEVICE_ID} printable characters "
                              "(an installation id)")
    name = unicodedata.normalize("NFC", name)
    if len(name) > MAX_DEVICE_NAME or not name.isprintable():
        raise InvalidArgument(f"device.name must be at most {MAX_DEVICE_NAME} printable "
                              "characters")
    return DeviceRef(device_id, name)


def page_size(requested: int) -> int:
    if requested < 0 or requested > MAX_PAGE:
        raise InvalidArgument(f"page size must be between 0 and {MAX_PAGE} (0 means "
                              f"{DEFAULT_PAGE}); got {requested}")
    return requested or DEFAULT_PAGE


@dataclass(frozen=True)
class FeedState:
    """Where a user's feed stands: its newest seq and where the kept part starts."""

    last_seq: int
    pruned_seq: int

    def check(self, cursor: int, *, zero_means_full: bool) -> None:
        """Raises FAILED_PRECONDITION for a cursor this feed cannot continue from.

        ``zero_means_full``: cursor 0 asks for no history at all (Diff), so it is
        always fine; for Changes and Watch, 0 means "from the beginning", which
        pruning may have taken away.
        """
        if cursor > self.last_seq:
            raise FailedPrecondition(
                f"cursor {cursor} is unknown to this server (the library's newest change "
                f"is {self.last_seq}); run a full Diff with cursor 0 and keep the cursor it "
                "returns")
        if cursor < self.pruned_seq and not (cursor == 0 and zero_means_full):
            raise FailedPrecondition(
                f"cursor {cursor} has expired (changes up to {self.pruned_seq} were pruned); "
                "run a full Diff with cursor 0 and keep the cursor it returns")


def _read_state(session: Session, user_id: int) -> FeedState:
    """The user's FeedState (for Database.quick_read; feed_state for async sessions)."""
    return FeedState(*session.execute(
        select(User.last_seq, User.pruned_seq).where(User.id == user_id)).one())


async def feed_state(session: AsyncSession, user_id: int) -> FeedState:
    return await session.run_sync(_read_state, user_id)


@dataclass(frozen=True)
class Event:
    """One change, with what it is about as it is now (None once deleted): the song's
    library entry; for a playlist event the playlist; for a stats event the song's stats."""

    change: Change
    entry: LibraryEntry | None
    playlist: Playlist | None = None
    stats: SongStats | None = None


@dataclass(frozen=True)
class Page:
    events: list[Event]
    cursor: int
    has_more: bool


def _events_query(user_id: int, since: int, limit: int, subjects: frozenset[Subject]):
    """Events after ``since`` about ``subjects``, each with what it is about."""
    song = (LibraryEntry.user_id == Change.user_id) & (LibraryEntry.sha256 == Change.sha256)
    if subjects == SONGS:  # the hot path of every device: nothing else to join
        return (select(Change, LibraryEntry).outerjoin(LibraryEntry, song)
                .where(Change.user_id == user_id, Change.seq > since,
                       Change.subject == int(Subject.SONG))
                .order_by(Change.seq).limit(limit + 1))
    return (select(Change, LibraryEntry, Playlist, SongStats)
            .outerjoin(LibraryEntry, song & (Change.subject != int(Subject.PLAYLIST)))
            .outerjoin(Playlist, (Change.subject == int(Subject.PLAYLIST))
                       & (Playlist.id == Change.subject_id) & (Playlist.user_id == user_id))
            .outerjoin(SongStats, (Change.subject == int(Subject.SONG_STATS))
                       & (SongStats.library_id == LibraryEntry.id))
            .where(Change.user_id == user_id, Change.seq > since,
                   Change.subject.in_([int(subject) for subject in subjects]))
            .order_by(Change.seq).limit(limit + 1))


class Feed:
    """Reads, waits on and prunes users' change feeds; remembers devices."""

    def __init__(self, db: Database, notifier: ChangeNotifier, *, retention: int,
                 poll_interval: float | None = None, clock=time.time) -> None:
        self._db = db
        self._notifier = notifier
        self._retention = retention
        # None: every change is published in this process, so the notifier is
        # enough. Otherwise (a sync service alone) the database is polled.
        self._poll_interval = poll_interval
        self._clock = clock

    def now(self) -> int:
        return int(self._clock())

    async def page(self, user_id: int, since: int, limit: int,
                   subjects: frozenset[Subject] = SONGS) -> Page:
        """The events about ``subjects`` after ``since``, at most ``limit`` of them.

        The cursor passes events of other subjects by: on the last page it is the
        feed's newest seq, whatever that event was about."""
        def read(session: Session) -> tuple[list, int]:
            state = _read_state(session, user_id)
            state.check(since, zero_means_full=False)
            return session.execute(_events_query(user_id, since, limit, subjects)).all(), \
                state.last_seq
        rows, newest = await self._db.quick_read(read)
        events = [Event(*row) for row in rows[:limit]]
        has_more = len(rows) > limit
        cursor = events[-1].change.seq if events else since
        if not has_more:
            cursor = max(cursor, newest)
        return Page(events, cursor, has_more)

    async def watch(self, user_id: int, since: int, heartbeat: float,
                    subjects: frozenset[Subject] = SONGS) -> AsyncIterator[Event | int]:
        """Events after ``since``, then each new one as it commits; forever.

        Yields an ``Event``, or the current cursor (an int) when nothing happened
        for ``heartbeat`` seconds. Ends when the server shuts down.
        """
        cursor = since
        quiet_since = time.monotonic()
        while not self._notifier.closed:
            page = await self.page(user_id, cursor, DEFAULT_PAGE, subjects)
            for event in page.events:
                yield event
            cursor = page.cursor
            if page.events:
                quiet_since = time.monotonic()
            if page.has_more:
                continue
            left = heartbeat - (time.monotonic() - quiet_since)
            if left <= 0:
                yield cursor
                quiet_since = time.monotonic()
                continue
            wait = left if self._poll_interval is None else min(left, self._poll_interval)
            await self._notifier.wait_beyond(user_id, cursor, wait)

    async def seen(self, user_id: int, device: DeviceRef | None, cursor: int | None = None
                   ) -> None:
        """Records that a device was active and, with ``cursor``, applied changes up to it.

        A cursor never moves back. Writes only when something changed or the last
        sighting is older than a minute, so frequent reads stay cheap. The caller has
        checked ``cursor`` against the feed (check_cursor) first.
        """
        if device is None:
            return
        if cursor is not None and not 0 <= cursor <= MAX_SEQ:  # a caller forgot to check it
            raise InvalidArgument(f"cursor must be between 0 and {MAX_SEQ}; got {cursor}")
        now = self.now()
        known = await self._db.quick_read(lambda session: session.execute(
            select(Device.name, Device.cursor, Device.last_seen)
            .where(Device.user_id == user_id, Device.device_id == device.id)).first())
        if known is not None and (
                (not device.name or known.name == device.name)
                and (cursor is None or cursor <= known.cursor)
                and now - known.last_seen < SEEN_RESOLUTION):
            return
        async with self._db.write() as session:
            insert = insert_for(session)(Device).values(
                user_id=user_id, device_id=device.id, name=device.name, cursor=cursor or 0,
                last_seen=now)
            changes = {"last_seen": now,
                       "cursor": greatest(Device.cursor, insert.excluded.cursor)}
            if device.name:
                changes["name"] = device.name
            await session.execute(insert.on_conflict_do_update(
                index_elements=[Device.user_id, Device.device_id], set_=changes))

    async def diffed_from(self, user_id: int, device: DeviceRef | None, cursor: int) -> None:
        """A Diff from ``cursor`` (0: from nothing) acknowledges it: the device applied
        everything up to it. Called once the Diff has been answered (diff checked it)."""
        await self.seen(user_id, device, cursor or None)

    async def read_from(self, user_id: int, device: DeviceRef | None, since: int) -> None:
        """Reading the feed after ``since`` (Changes, Watch; 0: from the start)
        acknowledges it, as a Diff does. The caller has checked ``since`` first."""
        await self.seen(user_id, device, since or None)

    async def check_cursor(self, user_id: int, cursor: int, *, zero_means_full: bool) -> None:
        """FAILED_PRECONDITION for a cursor this feed cannot continue from (FeedState.check)."""
        state = await self._db.quick_read(lambda session: _read_state(session, user_id))
        state.check(cursor, zero_means_full=zero_means_full)

    async def acknowledge(self, user_id: int, device: DeviceRef, cursor: int) -> None:
        await self.check_cursor(user_id, cursor, zero_means_full=True)
        await self.seen(user_id, device, cursor)

    # -- Pruning ------------------------------------------------------------------------

    async def prune(self) -> int:
        """Drops events every recent device has passed and older than the retention.

        Returns how many events were dropped, over all users.
        """
        horizon = self.now() - self._retention
        async with self._db.read() as session:
            users = list(await session.scalars(select(User.id)))
        dropped = 0
        for user_id in users:
            dropped += await self._prune_user(user_id, horizon)
        if dropped:
            log.info("pruned %d change events older than %d days", dropped,
                     self._retention // 86400)
        return dropped

    async def _prune_user(self, user_id: int, horizon: int) -> int:
        async with self._db.write() as session:
            state = await feed_state(session, user_id)
            old_enough = await session.scalar(select(func.max(Change.seq)).where(
                Change.user_id == user_id, Change.seq > state.pruned_seq, Change.at < horizon))
            if not old_enough:
                return 0
            slowest = await session.scalar(select(func.min(Device.cursor)).where(
                Device.user_id == user_id, Device.last_seen >= horizon))
            upto = old_enough if slowest is None else min(old_enough, slowest)
            if upto <= state.pruned_seq:
                return 0
            result = await session.execute(delete(Change).where(
                Change.user_id == user_id, Change.seq <= upto))
            await session.execute(update(User).where(User.id == user_id)
                                  .values(pruned_seq=upto))
            return result.rowcount

    async def prune_forever(self, interval: float = PRUNE_INTERVAL) -> None:
        while True:
            try:
                await self.prune()
            except Exception:  # keep pruning later; a failed round loses nothing
                log.exception("pruning the change feed failed")
            await asyncio.sleep(interval)
