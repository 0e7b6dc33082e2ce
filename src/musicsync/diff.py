"""Diff: what a device must upload, download and delete to match the library.

The device sends every hash it holds and the cursor of its last completed
sync. In one read snapshot the server compares that set with the library:

- held by the device, not in the library, deleted after the cursor: the
  device missed a deletion, so it deletes its copy (without a cursor, or if
  the deletion came before it, the device added the song since: upload);
- held by the device, not in the library otherwise: upload;
- in the library, not held by the device: download.

Only hashes are compared, so the work is a set difference over the library's
hashes; full entries are read only for the songs to download.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

from sqlalchemy import select

from .db import Database
from .db.models import Change, LibraryEntry
from .errors import InvalidArgument, ResourceExhausted
from .feed import feed_state
from .library import ChangeKind

# 32 bytes of hash plus Python's set overhead: ~100 bytes each, ~50 MiB at most.
MAX_DIFF_HASHES = 500_000
# Entries fetched per query (SQLite's limit on bound parameters is far above).
FETCH_BATCH = 1000


class HeldHashes:
    """The set of hashes a device says it holds, checked as they arrive."""

    def __init__(self) -> None:
        self.hashes: set[bytes] = set()
        self._received = 0

    def add(self, hashes: Iterable[bytes]) -> None:
        batch = list(hashes)
        for index, value in enumerate(batch):
            if len(value) != 32:
                number = self._received + index
                hint = (" (it looks like hex text: send the raw bytes)"
                        if len(value) == 64 and _is_ascii_hex(value) else "")
                raise InvalidArgument(
                    f"hash #{number} ({value[:40].hex()}{'...' if len(value) > 40 else ''}) "
                    f"is {len(value)} bytes; Diff takes SHA-256 values as 32 raw bytes{hint}")
        self._received += len(batch)
        self.hashes.update(batch)
        if len(self.hashes) > MAX_DIFF_HASHES:
            raise ResourceExhausted(
                f"a Diff may name at most {MAX_DIFF_HASHES} distinct hashes; for a larger "
                "collection, page through ListFiles instead")


def _is_ascii_hex(value: bytes) -> bool:
    try:
        bytes.fromhex(value.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return False
    return True


@dataclass
class DiffPart:
    """A slice of the answer; the first carries upload and delete, the rest downloads."""

    cursor: int
    upload: list[bytes] = field(default_factory=list)
    delete: list[bytes] = field(default_factory=list)
    download: list[LibraryEntry] = field(default_factory=list)


async def diff(db: Database, user_id: int, held: set[bytes], cursor: int
               ) -> AsyncIterator[DiffPart]:
    """The answer in parts: one with the upload and delete lists, then downloads."""
    async with db.read() as session:
        state = await feed_state(session, user_id)
        state.check(cursor, zero_means_full=True)
        library = {sha for (sha,) in await session.execute(
            select(LibraryEntry.sha256).where(LibraryEntry.user_id == user_id))}
        unknown_here = held - library
        deleted: set[bytes] = set()
        if cursor and unknown_here:
            deleted = {sha for (sha,) in await session.execute(
                select(Change.sha256).where(Change.user_id == user_id, Change.seq > cursor,
                                            Change.kind == int(ChangeKind.DELETED)))}
        delete = unknown_here & deleted
        yield DiffPart(state.last_seq, upload=sorted(unknown_here - delete),
                       delete=sorted(delete))
        missing = sorted(library - held)
        for start in range(0, len(missing), FETCH_BATCH):
            batch = missing[start:start + FETCH_BATCH]
            entries = list(await session.scalars(select(LibraryEntry).where(
                LibraryEntry.user_id == user_id, LibraryEntry.sha256.in_(batch))
                .order_by(LibraryEntry.id)))
            yield DiffPart(state.last_seq, download=entries)
