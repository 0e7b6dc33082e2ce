"""Diff: what a device must upload, download and delete to match the library.

The device sends every hash it holds and the cursor of its last completed
sync. In one read snapshot the server compares that set with the library:

- held by the device, not in the library, deleted or replaced (an upload
  with ``replaces``) after the cursor: the device missed a deletion, so it
  deletes its copy (without a cursor, or if
  the deletion came before it, the device added the song since: upload;
  cursor 0 from a device that synced while the library had no changes yet is
  that device's cursor, not "none");
- held by the device, not in the library otherwise: upload;
- in the library, not held by the device: download.

Memory is bounded by the request, not by what a client chooses to send: the
hashes are checked and counted as each message arrives (the cap applies
before anything is kept) and kept packed, 32 bytes each in one buffer, not as
hundreds of thousands of Python objects. They are compared with the library
a run at a time; what the device must upload is kept packed and sorted too.
Everything a Diff holds is released when its call ends, however it ends.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy import select

from ..db import Database
from ..db.models import Change, Device, LibraryEntry
from ..errors import InvalidArgument, ResourceExhausted
from .changes import ChangeKind, Subject
from .feed import feed_state

HASH_BYTES = 32
# At most this many hashes in one Diff: 16 MB packed. Larger collections page
# through ListFiles instead.
MAX_DIFF_HASHES = 500_000
# Held hashes are compared with the library this many at a time (a set of this
# many costs about 5 MB while it lives).
RUN_HASHES = 50_000
# Entries fetched per query (SQLite's limit on bound parameters is far above).
FETCH_BATCH = 1000
# Diffs of one account running at once (each may hold 16 MB of hashes); up to
# MAX_DIFFS_WAITING more wait their turn, unread (a family's devices syncing at
# the same moment); beyond that RESOURCE_EXHAUSTED.
MAX_DIFFS_PER_USER = 2
MAX_DIFFS_WAITING = 8
# Diffs comparing at once in the whole server; more wait their turn.
MAX_DIFFS_COMPARING = 4


class HeldHashes:
    """The hashes a device says it holds: checked as they arrive, kept packed."""

    def __init__(self, limit: int = MAX_DIFF_HASHES) -> None:
        self._limit = limit
        self._packed = bytearray()

    def __len__(self) -> int:
        return len(self._packed) // HASH_BYTES

    def add(self, hashes: Sequence[bytes]) -> None:
        """Takes one message's hashes; raises before keeping any of a bad or excess batch."""
        received = len(self)
        if received + len(hashes) > self._limit:
            raise ResourceExhausted(
                f"a Diff may name at most {self._limit} hashes (this one sent more than "
                f"{received}); for a larger collection, page through ListFiles instead")
        if set(map(len, hashes)) - {HASH_BYTES}:
            _raise_bad_hash(hashes, received)
        self._packed += b"".join(hashes)

    def runs(self) -> Iterator[set[bytes]]:
        """The distinct hashes held, RUN_HASHES at a time (a hash may recur across runs)."""
        step = RUN_HASHES * HASH_BYTES
        packed = self._packed
        for start in range(0, len(packed), step):
            yield _unpack(packed, start, min(start + step, len(packed)))

    def release(self) -> None:
        """Frees the buffer at once (the call may end long before this object goes)."""
        self._packed = bytearray()


def _raise_bad_hash(hashes: Sequence[bytes], received: int) -> None:
    for index, value in enumerate(hashes):
        if len(value) != HASH_BYTES:
            hint = (" (it looks like hex text: send the raw bytes)"
                    if len(value) == 64 and _is_ascii_hex(value) else "")
            raise InvalidArgument(
                f"hash #{received + index} ({value[:40].hex()}{'...' if len(value) > 40 else ''})"
                f" is {len(value)} bytes; Diff takes SHA-256 values as 32 raw bytes{hint}")


def _unpack(packed: bytes | bytearray, start: int, end: int) -> set[bytes]:
    return {bytes(packed[i:i + HASH_BYTES]) for i in range(start, end, HASH_BYTES)}


def _is_ascii_hex(value: bytes) -> bool:
    try:
        bytes.fromhex(value.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return False
    return True


class PackedHashes(Sequence):
    """A sorted list of hashes kept as one bytes object; slicing gives lists of hashes."""

    def __init__(self, packed: bytes | bytearray = b"") -> None:
        self._packed = packed

    def __len__(self) -> int:
        return len(self._packed) // HASH_BYTES

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                raise ValueError("PackedHashes slices take no step")
            packed = self._packed
            return [bytes(packed[i:i + HASH_BYTES])
                    for i in range(start * HASH_BYTES, max(start, stop) * HASH_BYTES,
                                   HASH_BYTES)]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        start = (index % len(self)) * HASH_BYTES
        return bytes(self._packed[start:start + HASH_BYTES])


@dataclass
class DiffPart:
    """A slice of the answer; the first carries upload and delete, the rest downloads."""

    cursor: int
    upload: Sequence[bytes] = ()
    delete: Sequence[bytes] = ()
    download: list[LibraryEntry] = field(default_factory=list)


class DiffSlots:
    """Bounds the Diffs in progress: per account (a few run, a few more wait their turn
    unread, the rest are refused) and comparing in the whole server (queued)."""

    def __init__(self, per_user: int = MAX_DIFFS_PER_USER,
                 waiting_per_user: int = MAX_DIFFS_WAITING,
                 comparing: int = MAX_DIFFS_COMPARING) -> None:
        self._per_user = per_user
        self._most = per_user + waiting_per_user
        self._users: dict[int, _AccountSlots] = {}
        self.comparing = asyncio.Semaphore(comparing)

    @asynccontextmanager
    async def hold(self, user_id: int):
        account = self._users.get(user_id)
        if account is None:
            account = self._users[user_id] = _AccountSlots(asyncio.Semaphore(self._per_user))
        if account.calls >= self._most:
            raise ResourceExhausted(
                f"{account.calls} Diffs of this account are already running or waiting (at "
                f"most {self._per_user} run at once and {self._most - self._per_user} wait); "
                "wait for them to finish, then try again")
        account.calls += 1
        try:
            async with account.running:
                yield
        finally:
            account.calls -= 1
            if not account.calls:
                del self._users[user_id]


@dataclass
class _AccountSlots:
    running: asyncio.Semaphore
    calls: int = 0  # running and waiting


async def diff(db: Database, user_id: int, held: HeldHashes, cursor: int,
               device_id: str | None = None) -> AsyncIterator[DiffPart]:
    """The answer in parts: one with the upload and delete lists, then downloads."""
    async with db.read() as session:
        state = await feed_state(session, user_id)
        state.check(cursor, zero_means_full=True)
        library = set(await session.scalars(
            select(LibraryEntry.sha256).where(LibraryEntry.user_id == user_id)))
        not_held = set(library)
        unknown_runs: list[bytes] = []
        for run in held.runs():
            not_held.difference_update(run)
            unknown = run - library
            if unknown:
                unknown_runs.append(b"".join(sorted(unknown)))
            del run, unknown
            await asyncio.sleep(0)  # a maximal Diff takes a while: let other calls in
        held.release()
        deleted: set[bytes] = set()
        if unknown_runs and (cursor or await _synced_at_zero(session, user_id, device_id,
                                                              state.pruned_seq)):
            deleted = set(await session.scalars(
                select(Change.sha256).where(Change.user_id == user_id, Change.seq > cursor,
                                            Change.kind == int(ChangeKind.DELETED),
                                            Change.subject == int(Subject.SONG))))
            deleted.update(await session.scalars(  # replaced songs went too
                select(Change.replaces).where(Change.user_id == user_id, Change.seq > cursor,
                                              Change.replaces.is_not(None))))
        upload, delete = _split_unknown(unknown_runs, deleted)
        del unknown_runs, library
        yield DiffPart(state.last_seq, upload=upload, delete=delete)
        del upload, delete
        missing = sorted(not_held)
        del not_held
        for start in range(0, len(missing), FETCH_BATCH):
            batch = missing[start:start + FETCH_BATCH]
            entries = list(await session.scalars(select(LibraryEntry).where(
                LibraryEntry.user_id == user_id, LibraryEntry.sha256.in_(batch))
                .order_by(LibraryEntry.id)))
            yield DiffPart(state.last_seq, download=entries)


async def _synced_at_zero(session, user_id: int, device_id: str | None,
                          pruned_seq: int) -> bool:
    """Whether a device's cursor 0 is one it was given, by a sync while the library had
    no changes yet, rather than a new device's "no cursor".

    A device that synced an empty library holds cursor 0; songs it gets later and
    that are then deleted elsewhere must be deleted on it too, as for any cursor. The
    device's row says which: it exists, at cursor 0, once the device has synced (and
    the feed has not been pruned since, which would have needed the device to pass).
    """
    if device_id is None or pruned_seq:
        return False
    known = await session.scalar(select(Device.cursor).where(
        Device.user_id == user_id, Device.device_id == device_id))
    return known == 0


def _split_unknown(runs: list[bytes], deleted: set[bytes]
                   ) -> tuple[PackedHashes, PackedHashes]:
    """The held hashes the library lacks, sorted and without repeats: (upload, delete)."""
    if len(runs) == 1 and not deleted:  # the common case: nothing to merge or split
        return PackedHashes(runs.pop()), PackedHashes()
    upload, delete = bytearray(), bytearray()
    previous = None
    for sha in heapq.merge(*(_slices(run) for run in runs)):
        if sha != previous:
            (delete if sha in deleted else upload).extend(sha)
            previous = sha
    runs.clear()
    return PackedHashes(upload), PackedHashes(delete)


def _slices(packed: bytes) -> Iterator[bytes]:
    for start in range(0, len(packed), HASH_BYTES):
        yield packed[start:start + HASH_BYTES]
