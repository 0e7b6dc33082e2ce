"""A user's library: its entries, its change feed, and news of fresh changes.

Every change to a library (a song added, its filename or tags changed, a song
deleted) takes the next value of the user's sequence (``users.last_seq``) and
writes a ``changes`` row in the same transaction as the change itself, so the
feed and the library can never disagree. Deleted events are the tombstones
that tell an offline device to delete a song rather than upload it again.

The functions here run inside a write session the caller owns; after the
commit, the caller tells the ``ChangeNotifier`` so Watch streams wake up.
"""

from __future__ import annotations

import asyncio
import enum
from collections import defaultdict
from dataclasses import asdict, dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from .db.models import Blob, Change, LibraryEntry, User


class ChangeKind(enum.IntEnum):
    """Values of sync.ChangeKind, as stored in changes.kind."""

    ADDED = 1
    UPDATED = 2
    DELETED = 3


@dataclass(frozen=True)
class Tags:
    """What a library entry says about a song besides its bytes and filename."""

    title: str = ""
    artist: str = ""
    album: str = ""
    album_artist: str = ""
    genre: str = ""
    track: int = 0
    disc: int = 0
    year: int = 0
    duration_ms: int = 0
    bitrate: int = 0
    sample_rate: int = 0
    channels: int = 0
    codec: str = ""


TAG_FIELDS = tuple(Tags.__dataclass_fields__)


async def next_seq(session: AsyncSession, user_id: int) -> int:
    """Takes the user's next change sequence number (inside the write transaction)."""
    return (await session.execute(
        update(User).where(User.id == user_id).values(last_seq=User.last_seq + 1)
        .returning(User.last_seq))).scalar_one()


async def ensure_blob(session: AsyncSession, sha256: bytes, size: int, now: int) -> None:
    """Records a stored, verified blob (clearing a corrupt mark a fresh upload repaired)."""
    await session.execute(sqlite_insert(Blob).values(
        sha256=sha256, size=size, created_at=now, corrupt=False).on_conflict_do_update(
        index_elements=[Blob.sha256], set_={"corrupt": False}))


async def record_blob_to_come(session: AsyncSession, sha256: bytes, size: int,
                              now: int) -> None:
    """Records a blob about to be published, before it is (kept as it is if recorded).

    Until a library entry lists it, the record marks a publish in progress: one that
    a crash interrupted is undone at the next start (Files.recover)."""
    await session.execute(sqlite_insert(Blob).values(
        sha256=sha256, size=size, created_at=now, corrupt=False).on_conflict_do_nothing(
        index_elements=[Blob.sha256]))


async def put_entry(session: AsyncSession, user_id: int, sha256: bytes, size: int,
                    filename: str, tags: Tags, now: int) -> tuple[LibraryEntry, ChangeKind | None]:
    """Adds a song to the library, or updates its filename and tags.

    Returns the entry and the change recorded: ADDED, UPDATED, or None when the
    library already held exactly this (an idempotent re-upload).
    The blob must be recorded (``ensure_blob``) in the same transaction.
    """
    entry = await session.scalar(select(LibraryEntry).where(
        LibraryEntry.user_id == user_id, LibraryEntry.sha256 == sha256))
    values = {"filename": filename, **asdict(tags)}
    if entry is not None:
        if all(getattr(entry, key) == value for key, value in values.items()):
            return entry, None
        seq = await next_seq(session, user_id)
        for key, value in values.items():
            setattr(entry, key, value)
        entry.updated_at, entry.seq = now, seq
        kind = ChangeKind.UPDATED
    else:
        seq = await next_seq(session, user_id)
        entry = LibraryEntry(user_id=user_id, sha256=sha256, size=size, created_at=now,
                             updated_at=now, seq=seq, **values)
        session.add(entry)
        kind = ChangeKind.ADDED
    await session.execute(insert(Change).values(
        user_id=user_id, seq=seq, kind=int(kind), sha256=sha256, at=now))
    await session.flush()
    return entry, kind


async def remove_entry(session: AsyncSession, user_id: int, sha256: bytes, now: int) -> bool:
    """Deletes a song from the library, leaving a tombstone; False if it was not there."""
    removed = (await session.execute(
        delete(LibraryEntry).where(LibraryEntry.user_id == user_id, LibraryEntry.sha256 == sha256)
        .returning(LibraryEntry.id))).first()
    if removed is None:
        return False
    seq = await next_seq(session, user_id)
    await session.execute(insert(Change).values(
        user_id=user_id, seq=seq, kind=int(ChangeKind.DELETED), sha256=sha256, at=now))
    return True


async def blob_is_referenced(session: AsyncSession, sha256: bytes) -> bool:
    """Whether any library entry still points at the blob."""
    return await session.scalar(
        select(LibraryEntry.id).where(LibraryEntry.sha256 == sha256).limit(1)) is not None


class ChangeNotifier:
    """Wakes the Watch streams of a user when a change of theirs commits (in-process)."""

    def __init__(self) -> None:
        self._conditions: defaultdict[int, asyncio.Condition] = defaultdict(asyncio.Condition)
        self._latest: dict[int, int] = {}
        self.closed = False

    async def close(self) -> None:
        """Wakes every waiter for good: the server is shutting down."""
        self.closed = True
        for condition in list(self._conditions.values()):
            async with condition:
                condition.notify_all()

    async def published(self, user_id: int, seq: int) -> None:
        """Call after the transaction holding change ``seq`` has committed."""
        if seq <= self._latest.get(user_id, 0):
            return
        self._latest[user_id] = seq
        condition = self._conditions.get(user_id)
        if condition is not None:
            async with condition:
                condition.notify_all()

    async def wait_beyond(self, user_id: int, seq: int, timeout: float) -> bool:
        """Waits until a change after ``seq`` is published (or the notifier closes);
        False on timeout."""
        condition = self._conditions[user_id]
        async with condition:
            try:
                await asyncio.wait_for(condition.wait_for(
                    lambda: self.closed or self._latest.get(user_id, 0) > seq), timeout)
            except TimeoutError:
                return False
        return True
