"""The songs of a library and the blobs behind them: publish, read, delete, look up.

One content is stored once, however many libraries hold it. A blob is deleted
when the last library entry pointing at it goes. Publishing a blob (commit +
library insert) and retiring it (library delete + blob delete) for the same
hash run under one per-hash lock in the file service's process, so a delete
can never remove a blob that a concurrent upload of the same content has just
re-used. Other processes (`musicsync gc`) only remove blobs that no entry
references and that are older than a grace period, which an upload finishes
well within.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass

from sqlalchemy import bindparam, delete, exists, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from ..db import Database
from ..db.dialect import PerDialect
from ..db.engine import await_in_work
from ..db.models import ArtImage, Blob, LibraryEntry, UploadSession, User
from ..errors import (DataLoss, InvalidArgument, MusicsyncError, NotFound, ResourceExhausted,
                     StorageFull, StorageUnavailable, Unavailable)
from ..metrics import NullMetrics
from ..storage import BlobMissing, BlobStore, StagedBlob, is_sha256_hex
from ..sync.notifier import ChangeNotifier
from .audio import CoverPicture
from .entries import (Placement, Stored, Tags, blob_is_referenced, ensure_blob, move_entry,
                      put_entry, record_blob_to_come, remove_entry)
from .paths import normalise_path

log = logging.getLogger(__name__)

MAX_STAT_HASHES = 10_000
# Run by every upload (see library.py on prebuilt statements).
_USER_QUOTA = select(User.__table__.c.quota_bytes).where(User.__table__.c.id == bindparam("id"))
_BLOB_CORRUPT = select(Blob.__table__.c.corrupt).where(
    Blob.__table__.c.sha256 == bindparam("sha256"))
_ENTRY_SIZE = select(LibraryEntry.__table__.c.size).where(
    LibraryEntry.__table__.c.user_id == bindparam("user_id"),
    LibraryEntry.__table__.c.sha256 == bindparam("sha256"))
_PATH_HOLDER = select(LibraryEntry.__table__.c.sha256).where(
    LibraryEntry.__table__.c.user_id == bindparam("user_id"),
    LibraryEntry.__table__.c.path == bindparam("path"))
NOT_IN_LIBRARY = "no file with this hash in your library"


def parse_hash(text: str, what: str = "hash") -> bytes:
    """32 raw bytes from lowercase (or uppercase) hex; InvalidArgument otherwise."""
    lowered = text.strip().lower()
    if not is_sha256_hex(lowered):
        raise InvalidArgument(
            f"{what} must be the 64 hex characters of a SHA-256 (got {text[:80]!r})")
    return bytes.fromhex(lowered)


@dataclass(frozen=True)
class Usage:
    """A user's quota (None: no limit) and the bytes counted against it: the library's
    songs, and the declared sizes of unfinished resumable uploads (``reserved``)."""

    quota: int | None
    library: int
    reserved: int

    @property
    def left(self) -> int:
        """Bytes a new song may take (meaningless without a quota)."""
        return (self.quota or 0) - self.library - self.reserved


class HashLocks:
    """One lock per content hash: an asyncio lock, dropped when nobody holds or waits for
    it, then the database's lock of that content (other replicas' holders of the hash,
    on PostgreSQL). Held from a blob's record to its listing, and from the check that a
    blob is unreferenced to its deletion, so neither can slip between the other's steps."""

    def __init__(self, db: Database | None = None) -> None:
        self._db = db
        self._locks: dict[bytes, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, sha256: bytes):
        lock, users = self._locks.get(sha256, (asyncio.Lock(), 0))
        self._locks[sha256] = (lock, users + 1)
        try:
            async with lock:
                if self._db is None:
                    yield
                else:
                    async with self._db.content_lock(sha256):
                        yield
        finally:
            lock, users = self._locks[sha256]
            if users == 1:
                del self._locks[sha256]
            else:
                self._locks[sha256] = (lock, users - 1)

    @asynccontextmanager
    async def hold_all(self, *hashes: bytes | None):
        """The locks of several hashes (None and repeats skipped), always taken in the
        same order, so two tasks holding some of the same hashes cannot deadlock."""
        async with AsyncExitStack() as stack:
            for sha256 in sorted({sha for sha in hashes if sha is not None}):
                await stack.enter_async_context(self.hold(sha256))
            yield


class Files:
    """A user's songs: the library rows and the blob store, kept consistent."""

    def __init__(self, db: Database, store: BlobStore, notifier: ChangeNotifier, *,
                 user_quota: int = 0, metrics=None, clock=time.time) -> None:
        self.db = db
        self.store = store
        self.notifier = notifier
        self.user_quota = user_quota
        self.metrics = metrics or NullMetrics()
        self.clock = clock
        self.locks = HashLocks(db)

    def now(self) -> int:
        return int(self.clock())

    # -- Looking up -----------------------------------------------------------------

    async def entry(self, user_id: int, sha256: bytes) -> LibraryEntry | None:
        return await self.db.quick_read(lambda session: session.scalar(select(LibraryEntry).where(
            LibraryEntry.user_id == user_id, LibraryEntry.sha256 == sha256)))

    async def entry_and_usage(self, user_id: int, sha256: bytes | None,
                              path: str | None = None
                              ) -> tuple[LibraryEntry | None, Usage, bytes | None]:
        """The user's entry of ``sha256`` (None: none, or no hash), usage(), and the hash
        of the song at ``path`` (None: free, or no path), in one read: what every upload
        asks before it takes any byte."""
        def read(session: Session) -> tuple[LibraryEntry | None, Usage, bytes | None]:
            entry = None if sha256 is None else session.scalar(select(LibraryEntry).where(
                LibraryEntry.user_id == user_id, LibraryEntry.sha256 == sha256))
            holder = None if path is None else self.path_holder_in(session, user_id, path)
            return entry, self.usage_in(session, user_id), holder
        return await self.db.quick_read(read)

    def entry_size_in(self, session: Session, user_id: int, sha256: bytes) -> int | None:
        """The size of the user's entry of ``sha256`` (None: not in the library), in a
        sync session."""
        return session.connection().execute(_ENTRY_SIZE, {"user_id": user_id,
                                                          "sha256": sha256}).scalar()

    def path_holder_in(self, session: Session, user_id: int, path: str) -> bytes | None:
        """The hash of the user's song at ``path`` (None: free), in a sync session."""
        return session.connection().execute(_PATH_HOLDER, {"user_id": user_id,
                                                           "path": path}).scalar()

    async def stat(self, user_id: int, hashes: Iterable[str]) -> tuple[list[LibraryEntry], list[str]]:
        """The caller's entries among ``hashes``, and the hashes they do not have."""
        wanted = list(hashes)
        if len(wanted) > MAX_STAT_HASHES:
            raise InvalidArgument(f"ask for at most {MAX_STAT_HASHES} hashes per Stat call "
                                  f"(got {len(wanted)})")
        parsed = [parse_hash(text, f"hashes[{index}]") for index, text in enumerate(wanted)]
        found: dict[bytes, LibraryEntry] = {}
        async with self.db.read() as session:
            for start in range(0, len(parsed), 500):
                batch = parsed[start:start + 500]
                for entry in await session.scalars(select(LibraryEntry).where(
                        LibraryEntry.user_id == user_id, LibraryEntry.sha256.in_(batch))):
                    found[entry.sha256] = entry
        entries, missing, seen = [], [], set()
        for sha, text in zip(parsed, wanted):
            if sha in seen:
                continue
            seen.add(sha)
            if sha in found:
                entries.append(found[sha])
            else:
                missing.append(sha.hex())
        return entries, missing

    async def usage(self, user_id: int, session=None, *,
                    excluding: bytes | None = None) -> Usage:
        """The user's quota and what counts against it (see Usage), read in ``session``
        (an AsyncSession) or on its own.

        ``excluding``: a content whose own upload session is not counted (the one
        being checked: its bytes are the ones asked about)."""
        if session is None:
            return await self.db.quick_read(
                lambda own: self.usage_in(own, user_id, excluding=excluding))
        return await session.run_sync(self.usage_in, user_id, excluding=excluding)

    def usage_in(self, session: Session, user_id: int, *,
                 excluding: bytes | None = None) -> Usage:
        """usage() in a sync session."""
        user_quota = session.connection().execute(_USER_QUOTA, {"id": user_id}).scalar()
        quota = user_quota if user_quota is not None else self.user_quota
        if not quota:
            return Usage(None, 0, 0)
        library = session.scalar(select(func.coalesce(func.sum(LibraryEntry.size), 0))
                                 .where(LibraryEntry.user_id == user_id))
        # An unexpired session holds its declared size: its partial grows to it, and
        # counting only the bytes received would let unfinished uploads escape the quota.
        reserved = select(func.coalesce(func.sum(UploadSession.size), 0)).where(
            UploadSession.user_id == user_id, UploadSession.expires_at > self.now(),
            ~exists().where(LibraryEntry.user_id == user_id,
                            LibraryEntry.sha256 == UploadSession.sha256))
        if excluding is not None:
            reserved = reserved.where(UploadSession.sha256 != excluding)
        return Usage(quota, library, session.scalar(reserved))

    # -- Publishing ---------------------------------------------------------------------

    async def publish(self, user_id: int, staged: StagedBlob, placement: Placement,
                      tags: Tags, *, with_record: Callable[[Session], None] | None = None,
                      with_listing: Callable[[Session], None] | None = None,
                      art: CoverPicture | None = None) -> Stored:
        """Commits a verified staged blob and lists it in the user's library (put_entry).

        A replaced entry's blob goes with its last reference, as after a Delete.
        ``with_record`` runs in the transaction that records the blob before the
        store's commit, ``with_listing`` in the one that lists it (a resumable
        upload's session: recorded as complete, then ended). ``art``: the song's
        cover picture, stored once by its hash and linked to the entry (see
        store_art); the entry of a song without one (a replace) is linked to none."""
        sha256 = bytes.fromhex(staged.hexdigest())
        size = staged.size
        now = self.now()
        loop = asyncio.get_running_loop()
        art_sha = await self.store_art(art) if art is not None else None

        def record(session: Session) -> bool:
            record_blob_to_come(session, sha256, size, now)
            if with_record is not None:
                with_record(session)
            return bool(session.connection().execute(_BLOB_CORRUPT, {"sha256": sha256}).scalar())

        def list_it(session: Session) -> Stored:
            # `musicsync gc` (another process) removes blobs inside its own write
            # transaction: checked in ours, the blob cannot vanish unseen.
            if await_in_work(self.store.size(sha256.hex()), loop) is None:
                raise Unavailable("the stored copy of this file was removed by maintenance "
                                  "while it was being uploaded; send the file again")
            self._check_quota(session, user_id, sha256, size, placement.replaces)
            ensure_blob(session, sha256, size, now)
            stored = put_entry(session, user_id, sha256, size, placement, tags, now)
            linked = art_sha
            if linked is not None and await_in_work(self.store.size(linked.hex()),
                                                    loop) is None:
                # `musicsync gc` took an unlinked picture of the same bytes meanwhile.
                log.warning("cover art %s was removed by maintenance during an upload; the "
                            "song is stored without it", linked.hex())
                linked = None
            if linked is not None:
                record_art(session, linked, art, now)
            if linked is not None or stored.replaced is not None:
                link_art(session, stored.entry, linked)
            if with_listing is not None:
                with_listing(session)
            return stored

        async with self.locks.hold_all(sha256, placement.replaces):
            # Recorded first: a crash after the store's commit and before the listing
            # leaves a record that no entry lists, which recover() finds at start-up.
            # Both writes are grouped with other uploads' (Database.grouped_write).
            if await self.db.grouped_write(record):
                # fsck found the stored copy damaged: these verified bytes replace it.
                await self.store.delete(sha256.hex())
            await staged.commit()
            try:
                stored = await self.db.grouped_write(list_it)
            except BaseException:
                await self.retire_if_unreferenced(sha256)
                raise
            if stored.replaced is not None:
                # Unlisted now, as after a Delete (see retire_if_unreferenced).
                await self.retire_if_unreferenced(stored.replaced)
        if stored.change is not None:
            await self.notifier.published(user_id, stored.entry.seq)
        return stored

    async def store_art(self, picture: CoverPicture) -> bytes | None:
        """Puts a song's cover picture in the blob store, once (named by its SHA-256, as
        songs are): its hash, or None (logged) if the store would not take it, as the
        song may still fit. Its art_images row comes with the song's listing (publish):
        until then, `musicsync gc` leaves it alone for its grace period, as it does
        a song's blob before its record."""
        sha = hashlib.sha256(picture.data).digest()
        try:
            if await self.store.size(sha.hex()) == len(picture.data):
                return sha
            staged = await self.store.stage(sha.hex())
            try:
                await staged.write([picture.data])
                await staged.commit()
            finally:
                await staged.abort()
        except (StorageUnavailable, StorageFull, DataLoss) as exc:
            log.warning("could not store an upload's cover picture %s: %s", sha.hex(), exc)
            return None
        return sha

    async def recover(self) -> int:
        """Undoes the publishes a crash interrupted; returns how many.

        A blob recorded (see publish) but listed by no library entry was being
        published when the server stopped, before its upload was acknowledged: it
        is removed from the store with its record. Run at start-up, after
        Uploads.recover has taken back the blobs of resumable uploads."""
        async with self.db.read() as session:
            unlisted = (await session.scalars(select(Blob.sha256).where(
                ~exists().where(LibraryEntry.sha256 == Blob.sha256)))).all()
        for sha256 in unlisted:
            async with self.locks.hold(sha256):
                await self.retire_if_unreferenced(sha256)
        if unlisted:
            log.info("removed %d blobs whose upload a crash interrupted before it was "
                     "acknowledged", len(unlisted))
        return len(unlisted)

    async def update_entry(self, user_id: int, entry: LibraryEntry, placement: Placement,
                           tags: Tags) -> Stored:
        """Renames or re-tags an entry the user already has (no bytes involved)."""
        now = self.now()

        def update(session: Session) -> Stored:
            if session.scalar(select(Blob.sha256).where(Blob.sha256 == entry.sha256)) is None:
                raise NotFound(NOT_IN_LIBRARY)
            return put_entry(session, user_id, entry.sha256, entry.size, placement, tags, now)

        async with self.locks.hold(entry.sha256):
            stored = await self.db.grouped_write(update)
        if stored.change is not None:
            await self.notifier.published(user_id, stored.entry.seq)
        return stored

    async def move(self, user_id: int, hash_text: str, path_text: str) -> LibraryEntry:
        """Gives a song of the user's library a new path (one UPDATED change, no bytes)."""
        sha256 = parse_hash(hash_text)
        path = normalise_path(path_text)
        now = self.now()
        entry, moved = await self.db.grouped_write(
            lambda session: move_entry(session, user_id, sha256, path, now))
        if entry is None:
            raise NotFound(NOT_IN_LIBRARY)
        if moved:
            await self.notifier.published(user_id, entry.seq)
        return entry

    def _check_quota(self, session: Session, user_id: int, sha256: bytes, size: int,
                     replaces: bytes | None = None) -> None:
        usage = self.usage_in(session, user_id, excluding=sha256)
        if usage.quota is None:
            return
        already = session.scalar(select(LibraryEntry.size).where(
            LibraryEntry.user_id == user_id, LibraryEntry.sha256 == sha256))
        if already is not None:
            return
        # A replace frees the replaced song's bytes in the same step.
        freed = 0 if replaces is None else session.scalar(select(LibraryEntry.size).where(
            LibraryEntry.user_id == user_id, LibraryEntry.sha256 == replaces)) or 0
        if size > usage.left + freed:
            raise quota_exceeded(size, usage.left + freed)

    async def retire_if_unreferenced(self, sha256: bytes) -> None:
        """Deletes a blob nobody lists, then its record (call with the hash's lock held).

        The record goes last: a crash after the blob's deletion leaves a record
        without an entry, which recover() clears at the next start, never a
        blob that no record or entry knows."""
        if await self.db.quick_read(lambda session: blob_is_referenced(session, sha256)):
            return
        if not await self._delete_blob(sha256):
            return  # the record stays: recover() or `musicsync gc` try again

        def forget(session: Session) -> None:
            if not blob_is_referenced(session, sha256):
                session.execute(delete(Blob).where(Blob.sha256 == sha256))
        await self.db.grouped_write(forget)

    async def _delete_blob(self, sha256: bytes) -> bool:
        try:
            await self.store.delete(sha256.hex())
        except StorageUnavailable:
            # The library no longer lists it; `musicsync gc` removes the orphan later.
            log.warning("could not delete unreferenced blob %s now; `musicsync gc` will",
                        sha256.hex())
            return False
        return True

    # -- Reading ----------------------------------------------------------------------

    async def open_download(self, user_id: int, hash_text: str, offset: int,
                            length: int) -> tuple[int, AsyncIterator[bytes]]:
        """The file's total size and its bytes in [offset, offset + length)."""
        sha256 = parse_hash(hash_text)
        if offset < 0 or length < 0:
            raise InvalidArgument("offset and length must not be negative")
        listed = await self.db.quick_read(lambda session: session.execute(  # every download's
            select(LibraryEntry.sha256, Blob.corrupt)
            .outerjoin(Blob, Blob.sha256 == LibraryEntry.sha256)
            .where(LibraryEntry.user_id == user_id, LibraryEntry.sha256 == sha256)).first())
        if listed is None:
            raise NotFound(NOT_IN_LIBRARY)
        if listed.corrupt:
            raise DataLoss("the server's copy of this file is damaged (found by `musicsync "
                           "fsck`); upload the file again to repair it")
        size = await self.store.size(sha256.hex())
        if size is None:
            raise await self._missing(user_id, sha256)
        if offset > size:
            raise InvalidArgument(f"offset {offset} is beyond the end of the file ({size} bytes)")
        wanted = size - offset if length == 0 else min(length, size - offset)
        return size, self._read(user_id, sha256, offset, wanted)

    async def _read(self, user_id: int, sha256: bytes, offset: int,
                    length: int) -> AsyncIterator[bytes]:
        if length == 0:
            return
        try:
            async for block in self.store.read(sha256.hex(), offset, length):
                yield block
        except BlobMissing:
            raise await self._missing(user_id, sha256) from None

    async def _missing(self, user_id: int, sha256: bytes) -> MusicsyncError:
        """Why a listed blob could not be read: deleted meanwhile, or lost."""
        if await self.entry(user_id, sha256) is None:
            # Another device deleted the song (and with it the last reference) while
            # this download started: the same answer as if it had been asked later.
            return NotFound(NOT_IN_LIBRARY)
        log.error("blob %s of a library entry of user %d is missing from %s; run "
                  "`musicsync fsck`", sha256.hex(), user_id, self.store.description)
        return DataLoss("the server has lost the contents of this file; upload it again")

    # -- Deleting -----------------------------------------------------------------------

    async def delete(self, user_id: int, hash_text: str) -> bool:
        """Removes the song from the user's library (with a tombstone); False if absent."""
        sha256 = parse_hash(hash_text)
        now = self.now()

        def remove(session: Session) -> int | None:
            if not remove_entry(session, user_id, sha256, now):
                return None
            return session.scalar(select(User.last_seq).where(User.id == user_id))

        async with self.locks.hold(sha256):
            seq = await self.db.grouped_write(remove)
            if seq is None:
                return False
            # Unlisted now, the blob is deleted before its record (see retire_if_unreferenced).
            await self.retire_if_unreferenced(sha256)
        await self.notifier.published(user_id, seq)
        return True


_RECORD_ART = PerDialect(lambda insert: insert(ArtImage.__table__).values(
    sha256=bindparam("sha256"), mime_type=bindparam("mime_type"), width=bindparam("width"),
    height=bindparam("height"), size=bindparam("size"), created_at=bindparam("now"))
    .on_conflict_do_nothing(index_elements=[ArtImage.__table__.c.sha256]))
_LINK_ART = (update(LibraryEntry.__table__)
             .where(LibraryEntry.__table__.c.id == bindparam("entry_id"))
             .values(art_sha256=bindparam("art")))


def record_art(session: Session, sha256: bytes, picture: CoverPicture, now: int) -> None:
    """Records a stored cover picture (kept as it is if recorded)."""
    connection = session.connection()
    connection.execute(_RECORD_ART.on(connection), {
        "sha256": sha256, "mime_type": picture.mime_type, "width": picture.width,
        "height": picture.height, "size": len(picture.data), "now": now})


def link_art(session: Session, entry: LibraryEntry, art_sha256: bytes | None) -> None:
    """Points the entry at its cover picture (None: it has none)."""
    session.connection().execute(_LINK_ART, {"entry_id": entry.id, "art": art_sha256})
    set_committed_value(entry, "art_sha256", art_sha256)  # the row says so already


def tags_with_overrides(read: Tags, **client: object) -> Tags:
    """The tags read from the file, with each non-empty value the client sent winning."""
    values = asdict(read)
    for key, value in client.items():
        if value:
            values[key] = value
    return Tags(**values)


def quota_exceeded(size: int, left: int) -> ResourceExhausted:
    return ResourceExhausted(
        f"storage quota exceeded: the file needs {size} bytes and {max(left, 0)} are left "
        "(unfinished resumable uploads count with their whole size until they finish or "
        "expire); delete songs or ask the operator for more space")
