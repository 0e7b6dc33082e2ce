"""`musicsync fsck`, `musicsync gc`, and the files a deleted user leaves: tidying the blob store.

Both run beside a live server, on the same database and blob store, so they
never touch temporary data of uploads in progress (the store is opened
without its start-up sweep), leave blobs younger than a grace period alone,
and remove a blob only inside a write transaction that re-checks that no
library entry lists it. The server checks, inside its own write transaction,
that the blob of a new entry still exists: either side sees the other's
commit, so a blob can never vanish under a fresh library entry.

Cover pictures live in the same store, named by their SHA-256 too: an object
that art_images or art_resized lists is no orphan. A picture no song links any
more (its songs deleted or replaced) is gc's to remove, with its resized copies,
once its record is older than the grace period; an upload that links the same
bytes again checks in its write transaction that they are still stored
(library/files.py). fsck checks pictures as it checks songs; its repair of a
lost or damaged picture unlinks it from its songs (they show no art until they
are uploaded again), and of a resized copy drops it (made again when asked).

`musicsync user delete` removes the deleted user's blobs the same way, at once
(no grace period: those blobs were listed until the user's deletion committed).
An upload of the same content by another user that is publishing right then
finds its blob gone in its own write transaction and answers UNAVAILABLE "send
the file again": nothing is lost, and nothing is left listed without a blob.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy import delete, exists, func, select, update

from ..auth.accounts import LeftBehind
from ..config import Settings
from ..db import Database
from ..db import summaries
from ..db.models import ArtImage, ArtResized, Blob, LibraryEntry
from ..errors import StorageUnavailable
from ..library.entries import blob_is_referenced
from ..library.files import Files
from ..library.resumable import ResumableSessions
from ..storage import BlobMissing, BlobStore, open_blob_store
from ..sync.notifier import ChangeNotifier
from .admin import open_database

DEFAULT_GRACE = 3600  # seconds: a blob stored this recently may be an upload finishing


@dataclass
class Finding:
    """One problem fsck found, and what --repair did about it."""

    # missing | corrupt | size-mismatch | orphan-blob | orphan-row, and for cover
    # pictures and their resized copies: missing-art | corrupt-art | art-size; and
    # stats-totals for the statistics' running totals (``sha256`` then names the table)
    kind: str
    sha256: str
    detail: str
    repaired: str = ""

    def line(self) -> str:
        done = f" -> {self.repaired}" if self.repaired else ""
        return f"{self.kind:14} {self.sha256}  {self.detail}{done}"


@dataclass
class FsckReport:
    entries: int = 0  # library entries checked
    blobs: int = 0  # stored blobs checked
    rehashed_bytes: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.findings


@dataclass
class GcReport:
    blobs: list[tuple[str, int]] = field(default_factory=list)  # (sha256, bytes) removed
    rows: int = 0  # blob records without an entry or a stored object
    sessions: int = 0  # expired upload sessions
    partials: int = 0  # partial files without a session
    art: int = 0  # cover pictures no song linked (their objects are among ``blobs``)

    @property
    def freed(self) -> int:
        return sum(size for _, size in self.blobs)


@dataclass
class Removal:
    """What became of the blobs and partial uploads a deleted user left behind."""

    removed: int = 0  # blobs no other library listed: gone from the store
    shared: int = 0  # blobs another library still lists: kept
    partials: int = 0  # partial data of the user's unfinished resumable uploads: gone
    absent: int = 0  # blobs this store does not hold (other storage settings? lost?): kept
    left: int = 0  # blobs not dealt with because the store failed: `musicsync gc` removes them
    failure: str = ""  # why the store failed ("" when it did not)
    where: str = ""  # the store, for messages


@asynccontextmanager
async def open_stores(settings: Settings) -> AsyncIterator[tuple[Database, BlobStore]]:
    """The server's database and blob store, opened for maintenance beside it."""
    async with open_database(settings) as db:
        store = open_blob_store(settings)
        try:
            await store.open(sweep=False)
            yield db, store
        finally:
            await store.close()


class Maintenance:
    """Checks that the library and the blob store agree, and tidies what nobody needs."""

    def __init__(self, db: Database, store: BlobStore, *, grace: float = DEFAULT_GRACE,
                 clock=time.time) -> None:
        self.db = db
        self.store = store
        self.grace = grace
        self.clock = clock

    def _settled(self, written_at: float | None) -> bool:
        """Stored long enough ago not to be an upload that is finishing right now."""
        return written_at is not None and written_at <= self.clock() - self.grace

    # -- fsck ----------------------------------------------------------------------------

    async def fsck(self, *, repair: bool = False, rehash: bool = True) -> FsckReport:
        report = FsckReport()
        async with self.db.read() as session:
            rows = {sha: (size, bool(corrupt), created) for sha, size, corrupt, created in
                    (await session.execute(select(Blob.sha256, Blob.size, Blob.corrupt,
                                                  Blob.created_at))).all()}
            listed = set((await session.scalars(select(LibraryEntry.sha256).distinct())).all())
            report.entries = await session.scalar(select(func.count()).select_from(LibraryEntry))
            art = await session.run_sync(_art_objects)
        stored: set[bytes] = set()
        async for hex_sha, size in self.store.blobs():
            sha = bytes.fromhex(hex_sha)
            stored.add(sha)
            report.blobs += 1
            if sha in art and sha not in listed and sha not in rows:
                finding = await self._check_art(sha, size, art[sha], rehash, report)
                if finding is not None:
                    if repair:
                        finding.repaired = await self._forget_art_object(sha)
                    report.findings.append(finding)
                continue
            finding = await self._check_blob(sha, size, rows.get(sha), sha in listed, rehash,
                                             report)
            if finding is not None:
                if repair:
                    finding.repaired = await self._repair(finding, sha)
                report.findings.append(finding)
        for sha in sorted(listed - stored):
            finding = Finding("missing", sha.hex(), "listed in a library, not in the store")
            if repair:
                finding.repaired = await self._mark_corrupt(sha)
            report.findings.append(finding)
        for sha in sorted(set(art) - stored):
            finding = Finding("missing-art", sha.hex(), "a cover picture (or a resized copy) "
                              "recorded, not in the store")
            if repair:
                finding.repaired = await self._forget_art_object(sha)
            report.findings.append(finding)
        for sha in sorted(set(rows) - stored - listed):
            if not self._settled(rows[sha][2]):
                continue  # probably an upload between its record and its store commit
            finding = Finding("orphan-row", sha.hex(), "a blob record with no stored object "
                              "and no library entry")
            if repair:
                finding.repaired = await self._forget_row(sha)
            report.findings.append(finding)
        await self._check_totals(repair, report)
        return report

    async def _check_totals(self, repair: bool, report: FsckReport) -> None:
        """The statistics' running totals against the library and its plays."""
        async with self.db.read() as session:
            tables = await session.run_sync(lambda sync: summaries.disagreeing(
                sync.connection()))
        if tables and repair:
            async with self.db.write() as session:
                await session.run_sync(lambda sync: summaries.rebuild(sync.connection()))
        for table in tables:
            report.findings.append(Finding(
                "stats-totals", table, "the statistics' running totals differ from the "
                "library and its plays", "computed afresh" if repair else ""))

    async def _check_blob(self, sha: bytes, size: int, row: tuple[int, bool, int] | None,
                          listed: bool, rehash: bool, report: FsckReport) -> Finding | None:
        if row is None and not listed:
            if not self._settled(await self.store.written_at(sha.hex())):
                return None  # probably an upload between its store commit and its record
            return Finding("orphan-blob", sha.hex(), f"{size} bytes that no library lists")
        if row is not None and row[0] != size:
            return Finding("size-mismatch", sha.hex(),
                           f"stored {size} bytes, recorded as {row[0]}")
        if rehash:
            actual = await self._digest(sha)
            report.rehashed_bytes += size
            if actual is not None and actual != sha.hex():
                already = " (already marked)" if row is not None and row[1] else ""
                return Finding("corrupt", sha.hex(), f"its bytes hash to {actual}{already}")
        return None

    async def _check_art(self, sha: bytes, size: int, recorded: int, rehash: bool,
                         report: FsckReport) -> Finding | None:
        if recorded != size:
            return Finding("art-size", sha.hex(), f"a cover picture stored with {size} "
                           f"bytes, recorded as {recorded}")
        if rehash:
            actual = await self._digest(sha)
            report.rehashed_bytes += size
            if actual is not None and actual != sha.hex():
                return Finding("corrupt-art", sha.hex(), f"a cover picture whose bytes hash "
                               f"to {actual}")
        return None

    async def _forget_art_object(self, sha: bytes) -> str:
        """A lost or damaged picture: unlinked from its songs, its rows and stored copies
        gone; a resized copy: its rows and bytes gone (made again when next asked)."""
        async with self.db.write() as session:
            unlinked = (await session.execute(update(LibraryEntry).where(
                LibraryEntry.art_sha256 == sha).values(art_sha256=None))).rowcount
            objects = await session.run_sync(_drop_art_rows, [sha])
            objects += [sha]
            await session.run_sync(_drop_resized_rows, sha)
            for gone in set(objects):
                if not await session.run_sync(_object_is_referenced, gone):
                    await self.store.delete(gone.hex())
        if unlinked:
            return f"unlinked from {unlinked} songs (no cover art until uploaded again)"
        return "dropped (a resized copy is made again when asked)"

    async def _digest(self, sha: bytes) -> str | None:
        """The SHA-256 of the stored bytes, streamed; None if the blob went meanwhile."""
        hasher = hashlib.sha256()
        try:
            async for block in self.store.read(sha.hex()):
                hasher.update(block)
        except BlobMissing:
            return None
        return hasher.hexdigest()

    async def _repair(self, finding: Finding, sha: bytes) -> str:
        if finding.kind == "orphan-blob":
            return "removed" if await self._remove_if_unreferenced(sha) else "kept: now listed"
        return await self._mark_corrupt(sha)

    async def _mark_corrupt(self, sha: bytes) -> str:
        """Downloads of a damaged or lost blob answer DATA_LOSS until it is uploaded again."""
        async with self.db.write() as session:
            marked = (await session.execute(update(Blob).where(Blob.sha256 == sha)
                                            .values(corrupt=True))).rowcount
            if not marked and await session.run_sync(blob_is_referenced, sha):
                size = await session.scalar(select(LibraryEntry.size).where(
                    LibraryEntry.sha256 == sha).limit(1))
                session.add(Blob(sha256=sha, size=size, created_at=int(self.clock()),
                                 corrupt=True))
                marked = 1
        return "marked corrupt: downloads answer DATA_LOSS until it is uploaded again" \
            if marked else "nothing to mark"

    async def _forget_row(self, sha: bytes) -> str:
        async with self.db.write() as session:
            if await session.run_sync(blob_is_referenced, sha):
                return "kept: now listed"
            await session.execute(delete(Blob).where(Blob.sha256 == sha))
        return "record removed"

    async def _remove_if_unreferenced(self, sha: bytes) -> bool:
        """Deletes the blob and its record unless a library lists it or it is a cover
        picture (checked and done inside one write transaction, which a concurrent
        upload's record waits for)."""
        async with self.db.write() as session:
            if await session.run_sync(_object_is_referenced, sha):
                return False
            await session.execute(delete(Blob).where(Blob.sha256 == sha))
            await self.store.delete(sha.hex())
        return True

    # -- a deleted user's files ---------------------------------------------------------

    async def remove_left_behind(self, left: LeftBehind) -> Removal:
        """Removes the blobs of a deleted user that no library lists any more, and the
        partial data of their unfinished uploads. Stops at the first storage failure,
        with what is left counted (``gc`` removes it later: no library lists it)."""
        report = Removal()
        done = 0
        try:
            for sha in left.blobs:
                if await self.store.size(sha.hex()) is None:
                    # Not here: the command may have been given other storage settings
                    # than the server's (a local folder where the server uses S3). Its
                    # record stays, for `gc` with the right settings.
                    report.absent += 1
                elif await self._remove_if_unreferenced(sha):
                    report.removed += 1
                else:
                    report.shared += 1
                done += 1
            for upload_id in left.uploads:
                await self.store.drop_partial(upload_id)
                report.partials += 1
        except StorageUnavailable as exc:
            report.left = len(left.blobs) - done
            report.failure = exc.message
        return report

    # -- gc ------------------------------------------------------------------------------

    async def gc(self, sessions: ResumableSessions | None = None, *,
                 dry_run: bool = False) -> GcReport:
        """Removes blobs no library lists (older than the grace period) and, with
        ``sessions``, expired upload sessions and their partial data."""
        report = GcReport()
        async with self.db.read() as session:
            unlinked = (await session.execute(select(ArtImage.sha256, ArtImage.created_at)
                                              .where(~exists().where(
                                                  LibraryEntry.art_sha256 == ArtImage.sha256)))
                        ).all()
        for sha, created in unlinked:
            if self._settled(created):
                report.art += 1
                report.blobs += await self._remove_unlinked_art(sha, dry_run)
        async with self.db.read() as session:
            recorded = {sha: created for sha, created in
                        (await session.execute(select(Blob.sha256, Blob.created_at))).all()}
            listed = set((await session.scalars(select(LibraryEntry.sha256).distinct())).all())
            listed |= set(await session.run_sync(_art_objects))
        stored: set[bytes] = set()
        async for hex_sha, size in self.store.blobs():
            sha = bytes.fromhex(hex_sha)
            stored.add(sha)
            if sha in listed or not self._settled(await self.store.written_at(hex_sha)):
                continue
            if dry_run or await self._remove_if_unreferenced(sha):
                report.blobs.append((hex_sha, size))
        for sha, created in recorded.items():
            if sha not in stored and sha not in listed and self._settled(created):
                if dry_run or (await self._forget_row(sha)) == "record removed":
                    report.rows += 1
        if sessions is not None and not dry_run:
            report.sessions, report.partials = await sessions.sweep()
        return report


    async def _remove_unlinked_art(self, sha: bytes, dry_run: bool) -> list[tuple[str, int]]:
        """Removes a cover picture no song links, with its resized copies, unless a song
        links it again meanwhile (checked in the write transaction that removes it).
        Returns the objects removed (or that would be) as (sha256, bytes)."""
        async with self.db.write() as session:
            if await session.scalar(select(LibraryEntry.id).where(
                    LibraryEntry.art_sha256 == sha).limit(1)) is not None:
                return []
            sizes = dict((await session.execute(
                select(ArtResized.sha256, ArtResized.bytes).where(ArtResized.art_sha256 == sha)
                .union_all(select(ArtImage.sha256, ArtImage.size)
                           .where(ArtImage.sha256 == sha)))).all())
            if dry_run:
                return [(gone.hex(), size) for gone, size in sizes.items()]
            await session.run_sync(_drop_art_rows, [sha])
            removed = []
            for gone, size in sizes.items():
                if not await session.run_sync(_object_is_referenced, gone):
                    await self.store.delete(gone.hex())
                    removed.append((gone.hex(), size))
        return removed


def _art_objects(session) -> dict[bytes, int]:
    """Every stored object of cover art, original or resized, with its recorded size."""
    objects = dict(session.execute(select(ArtResized.sha256, ArtResized.bytes)).all())
    objects.update(session.execute(select(ArtImage.sha256, ArtImage.size)).all())
    return objects


def _object_is_referenced(session, sha: bytes) -> bool:
    """Whether a library lists the object, or it is a cover picture or a resized copy."""
    return blob_is_referenced(session, sha) or any(
        session.scalar(select(column).where(column == sha).limit(1)) is not None
        for column in (ArtImage.sha256, ArtResized.sha256))


def _drop_art_rows(session, pictures: list[bytes]) -> list[bytes]:
    """Deletes the records of cover pictures and of their resized copies; returns the
    hashes of those copies."""
    copies = list(session.scalars(select(ArtResized.sha256).where(
        ArtResized.art_sha256.in_(pictures))))
    session.execute(delete(ArtResized).where(ArtResized.art_sha256.in_(pictures)))
    session.execute(delete(ArtImage).where(ArtImage.sha256.in_(pictures)))
    return copies


def _drop_resized_rows(session, copy: bytes) -> None:
    session.execute(delete(ArtResized).where(ArtResized.sha256 == copy))


async def remove_left_behind(settings: Settings, db: Database, left: LeftBehind) -> Removal:
    """Opens the configured blob store beside the server and removes what a deleted
    user left there that nobody else lists (see ``Maintenance.remove_left_behind``)."""
    store = open_blob_store(settings)
    try:
        try:
            await store.open(sweep=False)
        except StorageUnavailable as exc:
            report = Removal(left=len(left.blobs), failure=exc.message)
        else:
            report = await Maintenance(db, store, grace=0).remove_left_behind(left)
        report.where = store.description
        return report
    finally:
        await store.close()


def files_for_gc(settings: Settings, db: Database, store: BlobStore) -> ResumableSessions:
    """The upload sessions of the server's database, to sweep the expired ones."""
    files = Files(db, store, ChangeNotifier())
    return ResumableSessions(files, max_file_size=settings.max_file_size,
                             session_ttl=settings.upload_session_ttl)
