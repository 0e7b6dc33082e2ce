"""Resumable upload sessions: their bookkeeping, apart from the streams that fill them.

StartUpload starts a session for (user, hash, size), or finds it again and
answers where it continues; each Upload stream with its upload_id continues
the session's partial (uploads.py receives the stream); the durable offset is
recorded at checkpoints and when a stream stops, and the session ends in the
transaction that lists its song. The rows are upload_sessions.py's; the
partials are the blob store's.

A session continues after every byte its partial holds, which after a crash
may be more than the recorded offset (see _resume_offset). A complete file is
recorded as such before it is published, so that a crash in between is
recovered at the next start (recover). Expired sessions, and partials without
a session, are swept once an hour (sweep_forever).

An account keeps at most MAX_SESSIONS_PER_USER unfinished sessions, each
holding its declared size of the quota until it finishes or expires.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from ..errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from ..storage import BlobMissing, StagedBlob
from . import upload_sessions
from .files import Files, parse_hash, quota_exceeded
from .upload_stream import check_size

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 3600.0
# Unfinished resumable uploads one account may keep at once (each holds its declared
# size of the quota, and its partial data on disk, until it finishes or expires).
MAX_SESSIONS_PER_USER = 16


@dataclass(frozen=True)
class SessionInfo:
    upload_id: str
    offset: int
    expires_at: int
    complete: bool


class ResumableSessions:
    """Starts, finds, records, ends, sweeps and recovers resumable upload sessions."""

    def __init__(self, files: Files, *, max_file_size: int, session_ttl: int,
                 in_flight: Callable[[int], int] = lambda user_id: 0) -> None:
        self.files = files
        self.max_file_size = max_file_size
        self.session_ttl = session_ttl
        # Bytes of a user's plain Upload streams in progress (Uploads.in_flight): they
        # count against the quota that a new session must fit in.
        self._in_flight = in_flight
        self._streaming: set[str] = set()  # sessions with a stream in progress

    async def start(self, user_id: int, sha256_text: str, size: int) -> SessionInfo:
        """Starts, or finds again, the resumable upload of (user, hash, size)."""
        sha256 = parse_hash(sha256_text, "sha256")
        if size <= 0:
            raise InvalidArgument("size must be the file's size in bytes (more than 0)")
        check_size(size, self.max_file_size)
        now = self.files.now()
        expires_at = now + self.session_ttl

        def start(session: Session) -> tuple[SessionInfo, bool, str | None]:
            """(the session, whether it is new, the id of a stale one replaced)."""
            listed = self.files.entry_size_in(session, user_id, sha256)
            if listed is not None:
                return SessionInfo("", listed, 0, complete=True), False, None
            row = upload_sessions.of_content(session, user_id, sha256)
            if row is not None and row.expires_at > now and row.size == size:
                upload_sessions.renew(session, row.id, expires_at)
                return SessionInfo(row.id, row.committed, expires_at, complete=False), False, None
            # Checked in the write transaction: two StartUploads cannot both take the
            # last room.
            self._check_new_session(session, user_id, sha256, size, now)
            stale = None
            if row is not None:  # expired, or the size changed: start over
                stale = row.id
                upload_sessions.end(session, stale)
            upload_id = secrets.token_urlsafe(18)
            upload_sessions.create(session, upload_id, user_id, sha256, size, now, expires_at)
            return SessionInfo(upload_id, 0, expires_at, complete=False), True, stale

        found, new, stale = await self.files.db.grouped_write(start)
        if stale is not None:
            await self.files.store.drop_partial(stale)
        if found.complete or new or found.upload_id in self._streaming:
            return found  # (a stream is adding to it: where it stands now)
        offset = await self._resume_offset(found.upload_id, found.offset, size)
        if offset is None:  # its partial data is lost: from the start again
            await self.record_offset(found.upload_id, 0)
            await self.files.store.drop_partial(found.upload_id)
            offset = 0
        return SessionInfo(found.upload_id, offset, found.expires_at, complete=False)

    def _check_new_session(self, session: Session, user_id: int, sha256: bytes, size: int,
                           now: int) -> None:
        """ResourceExhausted if the user may not open another session of ``size`` bytes."""
        open_sessions = upload_sessions.count_others(session, user_id, sha256, now)
        if open_sessions >= MAX_SESSIONS_PER_USER:
            raise ResourceExhausted(
                f"this account has {open_sessions} unfinished resumable uploads, the most "
                f"it may keep at once ({MAX_SESSIONS_PER_USER}); finish one first (or wait "
                f"until one expires, {_duration(self.session_ttl)} after its last progress)")
        usage = self.files.usage_in(session, user_id, excluding=sha256)
        if usage.quota is not None:
            left = usage.left - self._in_flight(user_id)
            if size > left:
                raise quota_exceeded(size, left)

    async def _resume_offset(self, upload_id: str, committed: int, size: int) -> int | None:
        """Where a session continues: after every byte its partial holds, which is at least
        the recorded offset ``committed`` (None if it holds less: the data was lost).

        The recorded offset is only updated at checkpoints and when a stream stops;
        after a crash the partial holds more, and those bytes are taken up too (a
        torn tail is caught by the final hash check, see Uploads._continue)."""
        held = await self.files.store.partial_size(upload_id)
        if held < committed:
            return None
        return min(held, size)

    # -- A stream continuing a session ----------------------------------------------------

    async def find(self, user_id: int, upload_id: str, path: str | None
                   ) -> tuple[Row, bytes | None]:
        """The user's unexpired session ``upload_id`` (upload_sessions' columns), and the
        hash of the song holding ``path`` when the session's content is new to the
        library (content it has stays where it is: put_entry reports its path; the
        commit checks the path again)."""
        def look_up(session: Session) -> tuple[Row | None, bytes | None]:
            row = upload_sessions.by_id(session, user_id, upload_id)
            if row is None or path is None or self.files.entry_size_in(
                    session, user_id, row.sha256) is not None:
                return row, None
            return row, self.files.path_holder_in(session, user_id, path)

        row, holder = await self.files.db.quick_read(look_up)
        if row is None or row.expires_at <= self.files.now():
            raise NotFound("unknown or expired upload session; call StartUpload again")
        return row, holder

    @contextmanager
    def streaming(self, upload_id: str) -> Iterator[None]:
        """The session's one stream, for the duration of the block."""
        if upload_id in self._streaming:
            raise FailedPrecondition("this upload is already being sent on another stream")
        self._streaming.add(upload_id)
        try:
            yield
        finally:
            self._streaming.discard(upload_id)

    async def resume(self, row: Row, offset: int) -> StagedBlob:
        """The session's partial, open to continue at ``offset`` (which must be where
        the session continues)."""
        upload_id = row.id
        continues_at = await self._resume_offset(upload_id, row.committed, row.size)
        if continues_at is not None and offset != continues_at:
            raise FailedPrecondition(f"this upload continues at byte {continues_at}, not "
                                     f"{offset}: send the file from byte {continues_at}")
        try:
            if continues_at is None:
                raise BlobMissing(upload_id)
            return await self.files.store.resume(upload_id, continues_at)
        except BlobMissing:
            await self.end(upload_id)
            raise FailedPrecondition("the server lost this upload's partial data; call "
                                     "StartUpload and send the file from byte 0") from None

    async def rewind(self, row: Row, staged: StagedBlob) -> None:
        """Cuts the partial back to the session's recorded (durable) offset."""
        await staged.suspend()
        again = await self.files.store.resume(row.id, row.committed)
        await self.record_offset(row.id, await again.suspend())

    async def suspend(self, upload_id: str, staged: StagedBlob) -> None:
        """Makes the partial durable and records its offset (logged if that fails)."""
        try:
            await self.record_offset(upload_id, await staged.suspend())
        except Exception:  # noqa: BLE001 - the session stays at its last checkpoint
            log.exception("could not save the progress of upload %s", upload_id)

    async def record_offset(self, upload_id: str, committed: int) -> None:
        expires_at = self.files.now() + self.session_ttl
        await self.files.db.grouped_write(lambda session: upload_sessions.record_offset(
            session, upload_id, committed, expires_at))

    def completion(self, upload_id: str, size: int
                   ) -> tuple[Callable[[Session], None], Callable[[Session], None]]:
        """What Files.publish writes for a session's complete file: the complete offset
        with the blob's record (with_record), the session's end with its listing
        (with_listing)."""
        expires_at = self.files.now() + self.session_ttl
        return (lambda session: upload_sessions.record_offset(session, upload_id, size,
                                                              expires_at),
                lambda session: upload_sessions.end(session, upload_id))

    async def end(self, upload_id: str, *, drop_partial: bool = True) -> None:
        await self.files.db.grouped_write(lambda session: upload_sessions.end(session, upload_id))
        if drop_partial:
            await self.files.store.drop_partial(upload_id)

    # -- Recovery and expiry --------------------------------------------------------------

    async def recover(self) -> int:
        """Takes back the blobs of sessions that a crash stopped while publishing them.

        A session's file is recorded as complete (offset = size) before its blob is
        published, and the session ends in the transaction that lists it: a session
        still complete, with its blob in the store but no library listing it, was
        stopped in between. Its blob goes back to being the session's partial, so
        that StartUpload answers its size and an Upload with no chunks (bringing the
        client's filename and tags) finishes it, and nothing is left unlisted in the
        store. Run at start-up; returns how many sessions it took back.
        """
        rows = await self.files.db.quick_read(upload_sessions.complete)
        recovered = 0
        for row in rows:
            if row.id in self._streaming:
                continue
            async with self.files.locks.hold(row.sha256):
                if await self.files.entry(row.user_id, row.sha256) is not None:
                    await self.end(row.id)  # it was listed: the session is done
                    continue
                hex_sha = row.sha256.hex()
                if await self.files.store.size(hex_sha) != row.size:
                    continue  # not published: the partial holds the file
                if await self.files.store.partial_size(row.id) < row.size:
                    try:
                        await self._unpublish(row, hex_sha)
                    except BlobMissing as exc:  # the client sends the file again
                        log.warning("upload %s starts again: %s", row.id, exc)
                        await self.record_offset(row.id, 0)
                await self.files.retire_if_unreferenced(row.sha256)
                recovered += 1
        if recovered:
            log.info("took back %d uploads that a crash stopped while being published; their "
                     "clients finish them", recovered)
        return recovered

    async def _unpublish(self, row: Row, hex_sha: str) -> None:
        """Copies a published blob back into the session's partial."""
        staged = await self.files.store.resume(row.id, 0)
        try:
            async for block in self.files.store.read(hex_sha):
                await staged.write([block])
            if staged.hexdigest() != hex_sha:
                raise BlobMissing(f"the stored {hex_sha} is damaged")
            await staged.suspend()
        except BaseException:
            await staged.abort()
            raise

    async def sweep(self) -> tuple[int, int]:
        """Drops expired sessions and partials without a session; returns how many of each."""
        now = self.files.now()
        expired, live = await self.files.db.grouped_write(
            lambda session: upload_sessions.end_expired(session, now))
        dropped = 0
        async for upload_id in self.files.store.partials():
            if upload_id not in live and upload_id not in self._streaming:
                await self.files.store.drop_partial(upload_id)
                dropped += 1
        if expired or dropped:
            log.info("dropped %d expired upload sessions and %d partial files",
                     expired, dropped)
        return expired, dropped

    async def sweep_forever(self) -> None:
        """Sweeps once an hour (a sleeping task, not a busy loop)."""
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            try:
                await self.sweep()
            except Exception:  # noqa: BLE001 - try again next hour
                log.exception("sweeping upload sessions failed")


def _duration(seconds: int) -> str:
    return f"{seconds // 3600} h" if seconds >= 3600 else f"{max(seconds // 60, 1)} min"
