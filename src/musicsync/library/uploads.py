"""Upload streams, plain or continuing a resumable upload session.

An upload is its metadata followed by chunks (upload_stream.py; the wire is
decoded in services/file_service.py). The bytes go straight into a staged
blob while they are hashed (in a worker thread, a batch at a time, the next
batch arriving while the last is written), so memory stays flat whatever the
file size and nothing is written twice. When the stream ends the file is
verified (declared size and hash, audio format via mutagen), tagged, and only
then published.

Without an upload session, an interrupted stream leaves nothing behind. With
one (StartUpload; the sessions' bookkeeping is resumable.py's), the bytes
received are kept as the session's partial: made durable every
CHECKPOINT_BYTES and when the stream stops for any reason (a server stop
included), with the durable offset recorded in the session.

The user's quota counts the library, every unfinished session at its declared
size and the plain streams in progress (Files.usage, _Allowance).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sqlalchemy.engine import Row

from ..db.models import LibraryEntry
from ..errors import (
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    ResourceExhausted,
    StorageFull,
    StorageUnavailable,
)
from ..storage import StagedBlob
from .audio import NOT_AUDIO, SNIFF_BYTES, looks_like_audio
from .audio_check.checker import AudioChecker
from .entries import Placement, Stored, Tags, path_taken
from .filenames import default_filename, sanitize_filename
from .files import Files, parse_hash, quota_exceeded, tags_with_overrides
from .paths import normalise_path
from .resumable import MAX_SESSIONS_PER_USER, ResumableSessions, SessionInfo
from .upload_stream import Chunk, UploadMetadata, UploadStream, check_size

__all__ = ["MAX_SESSIONS_PER_USER", "IdleLimit", "SessionInfo", "Uploads"]

MAX_CHUNK_BYTES = 4 * 1024 * 1024
# Chunks are handed to the writer thread in batches of about this size: fewer
# thread hops than one per 64 KiB chunk, and big enough for hashing to pay off.
BATCH_BYTES = 256 * 1024
CHECKPOINT_BYTES = 16 * 1024 * 1024


class Uploads:
    """Receives upload streams, into the library or into a resumable session."""

    def __init__(self, files: Files, *, max_file_size: int, idle_timeout: float,
                 session_ttl: int, audio: AudioChecker | None = None) -> None:
        self.files = files
        self.audio = audio or AudioChecker()  # the server passes (and closes) its own
        self.max_file_size = max_file_size
        self.idle_timeout = idle_timeout
        # Bytes of each user's plain Upload streams in progress (declared, or received so
        # far): counted against the quota along with the library and the sessions.
        self._in_flight: dict[int, int] = {}
        self.sessions = ResumableSessions(files, max_file_size=max_file_size,
                                          session_ttl=session_ttl, in_flight=self.in_flight)

    def in_flight(self, user_id: int) -> int:
        """Bytes of the user's plain Upload streams in progress, as counted against the quota."""
        return self._in_flight.get(user_id, 0)

    # The resumable sessions' calls that the server and the File service make.

    async def start_session(self, user_id: int, sha256_text: str, size: int) -> SessionInfo:
        """StartUpload (ResumableSessions.start)."""
        return await self.sessions.start(user_id, sha256_text, size)

    async def recover(self) -> int:
        """At start-up (ResumableSessions.recover)."""
        return await self.sessions.recover()

    async def sweep(self) -> tuple[int, int]:
        """Expired sessions and stray partials (ResumableSessions.sweep)."""
        return await self.sessions.sweep()

    async def sweep_forever(self) -> None:
        await self.sessions.sweep_forever()

    # -- Upload streams -------------------------------------------------------------

    async def receive(self, user_id: int, upload: UploadStream) -> Stored:
        """Takes one upload stream to its end and returns what it stored (see put_entry)."""
        stream = IdleLimit(upload, self.idle_timeout)
        try:
            return await self._receive(user_id, stream)
        finally:
            stream.close()

    async def _receive(self, user_id: int, stream: IdleLimit) -> Stored:
        meta = await stream.metadata()
        declared_sha = parse_hash(meta.sha256, "metadata.sha256") if meta.sha256 else None
        declared_size = meta.size
        if declared_size is not None:
            check_size(declared_size, self.max_file_size)
        placement = _placement(meta)
        if meta.upload_id:
            return await self._receive_resumable(user_id, meta, placement, declared_sha,
                                                 declared_size, stream)
        if meta.offset:
            raise InvalidArgument("metadata.offset needs metadata.upload_id (see StartUpload)")
        # The path is worth checking only for a known hash (an idempotent re-upload of a
        # song to its own path is fine), and the commit checks it again.
        asked_path = placement.path if declared_sha is not None else None
        existing, usage, holder = await self.files.entry_and_usage(user_id, declared_sha,
                                                                   asked_path)
        if existing is not None:  # the caller's own copy: no need for the bytes
            if declared_size is not None and declared_size != existing.size:
                raise InvalidArgument(f"metadata.size {declared_size} does not match the "
                                      f"file with this hash ({existing.size} bytes)")
            return await self._retag(user_id, existing, meta, placement)
        if holder is not None and holder not in (declared_sha, placement.replaces):
            raise path_taken(placement.path, holder)  # before any byte is taken
        allowance = None
        if usage.quota is not None:
            # A declared hash is known not to be in the library (see above), so it must
            # fit in what is left (with what a replace frees); without one it might be a
            # copy already counted.
            room = usage.quota - usage.reserved
            if declared_sha is not None:
                replaced = (await self.files.entry(user_id, placement.replaces)
                            if placement.replaces is not None else None)
                room = usage.left + (replaced.size if replaced is not None else 0)
            allowance = _Allowance(self._in_flight, user_id, room)
        try:
            if allowance is not None and declared_size is not None:
                allowance.take(declared_size)
            return await self._receive_plain(user_id, meta, placement, declared_sha,
                                             declared_size, stream, allowance)
        finally:
            if allowance is not None:
                allowance.release()

    async def _receive_plain(self, user_id: int, meta: UploadMetadata, placement: Placement,
                             declared_sha: bytes | None, declared_size: int | None,
                             stream: IdleLimit, allowance: _Allowance | None) -> Stored:
        staged = await self.files.store.stage(declared_sha.hex() if declared_sha else None)
        try:
            # While streaming, the quota bounds the file by what is left beside the
            # sessions and the user's other streams: the exact check, which knows whether
            # the content is already counted, comes at publication.
            await self._pump(staged, stream, total=declared_size, quota=allowance)
            if declared_size is not None and staged.size != declared_size:
                raise InvalidArgument(f"received {staged.size} bytes but metadata.size "
                                      f"declared {declared_size}; nothing was stored")
            if declared_sha is not None and staged.hexdigest() != declared_sha.hex():
                raise DataLoss(f"the bytes received hash to {staged.hexdigest()}, not to the "
                               f"declared {declared_sha.hex()}; nothing was stored, send the "
                               "file again")
            return await self._publish(user_id, staged, meta, placement)
        finally:
            await staged.abort()  # a no-op once published

    async def _publish(self, user_id: int, staged: StagedBlob, meta: UploadMetadata,
                       placement: Placement,
                       *, upload_id: str | None = None) -> Stored:
        """Checks, tags and publishes a verified blob; ``upload_id``: the resumable
        upload it completes (recorded as complete with the blob's record, ended with
        its listing: see Files.publish)."""
        if staged.size == 0:
            raise InvalidArgument("the upload carried no file data")
        info = await self.audio.check(staged)  # bounded in time and memory
        if info is None:
            raise InvalidArgument(NOT_AUDIO)
        tags = tags_with_overrides(
            info.tags, title=meta.title, artist=meta.artist, album=meta.album,
            album_artist=meta.album_artist, genre=meta.genre, track=max(meta.track, 0),
            disc=max(meta.disc, 0), year=max(meta.year, 0),
            duration_ms=0 if info.tags.duration_ms else max(meta.duration, 0) * 1000)
        filename = sanitize_filename(meta.filename) or default_filename(
            tags.artist, tags.title, staged.hexdigest(), info.extension)
        self.files.metrics.bytes_received(staged.size)
        if upload_id is None:
            return await self.files.publish(user_id, staged,
                                            _with_filename(placement, filename), tags,
                                            art=info.picture)
        with_record, with_listing = self.sessions.completion(upload_id, staged.size)
        return await self.files.publish(user_id, staged, _with_filename(placement, filename),
                                        tags, with_record=with_record,
                                        with_listing=with_listing, art=info.picture)

    async def _retag(self, user_id: int, entry: LibraryEntry, meta: UploadMetadata,
                     placement: Placement) -> Stored:
        """An upload of a file the caller has: apply the filename and tags it sent."""
        current = {key: getattr(entry, key) for key in (
            "title", "artist", "album", "album_artist", "genre", "track", "disc", "year",
            "duration_ms", "bitrate", "sample_rate", "channels", "codec")}
        tags = tags_with_overrides(
            Tags(**current), title=meta.title, artist=meta.artist, album=meta.album,
            album_artist=meta.album_artist, genre=meta.genre, track=max(meta.track, 0),
            disc=max(meta.disc, 0), year=max(meta.year, 0))
        filename = sanitize_filename(meta.filename) or entry.filename
        return await self.files.update_entry(user_id, entry,
                                             _with_filename(placement, filename), tags)

    async def _pump(self, staged: StagedBlob, stream: IdleLimit, *,
                    total: int | None, quota: _Allowance | None,
                    checkpoint: Callable[[], Awaitable[None]] | None = None) -> None:
        """Moves the stream's chunks into ``staged`` until the stream ends.

        ``total``: the file's declared size (the stream must not go beyond it).
        ``quota``: what the stream may take of the user's quota (None: no bound).
        ``checkpoint``: called after about every CHECKPOINT_BYTES written.
        """
        limit = total if total is not None else self.max_file_size
        head = b"" if staged.size == 0 else None  # sniff only from the file's first byte
        batch: list[bytes] = []
        batch_bytes = 0
        received = staged.size
        since_checkpoint = 0
        writing: asyncio.Future | None = None
        next_chunk = stream.next_chunk
        try:
            while (chunk := await next_chunk()) is not None:
                size = len(chunk)
                if size > MAX_CHUNK_BYTES:
                    raise InvalidArgument(f"chunks may be at most 4 MiB (got {size} bytes)")
                received += size
                if received > limit:
                    if total is not None:
                        raise InvalidArgument(f"the stream is longer than the declared size "
                                              f"of {total} bytes")
                    raise ResourceExhausted(f"the file is larger than this server accepts "
                                            f"({self.max_file_size} bytes)")
                if quota is not None:
                    quota.take(received)
                if head is not None:
                    head += chunk[:SNIFF_BYTES - len(head)]
                    if len(head) >= SNIFF_BYTES:
                        if not looks_like_audio(head):
                            raise InvalidArgument(NOT_AUDIO)
                        head = None
                if size:
                    batch.append(chunk)
                    batch_bytes += size
                if batch_bytes >= BATCH_BYTES:
                    if writing is not None:
                        await writing
                    writing = asyncio.ensure_future(staged.write(batch))
                    since_checkpoint += batch_bytes
                    batch, batch_bytes = [], 0
                    if checkpoint is not None and since_checkpoint >= CHECKPOINT_BYTES:
                        await writing
                        writing = None
                        await checkpoint()
                        since_checkpoint = 0
            if head and not looks_like_audio(head):  # a file shorter than SNIFF_BYTES
                raise InvalidArgument(NOT_AUDIO)
            if writing is not None:
                await writing
                writing = None
            if batch:
                last, batch = batch, []  # cleared first: a cancellation may hit mid-write
                await staged.write(last)
        finally:
            if writing is not None:  # never leave a write running under an abort
                await asyncio.gather(writing, return_exceptions=True)
            if batch and checkpoint is not None:
                # A resumable upload keeps every chunk that arrived, even when the
                # stream broke before the batch filled up.
                await asyncio.gather(staged.write(batch), return_exceptions=True)

    async def _receive_resumable(self, user_id: int, meta: UploadMetadata,
                                 placement: Placement, declared_sha: bytes | None,
                                 declared_size: int | None, stream: IdleLimit) -> Stored:
        row, holder = await self.sessions.find(user_id, meta.upload_id, placement.path)
        if declared_sha is not None and declared_sha != row.sha256:
            raise InvalidArgument("metadata.sha256 differs from the upload session's hash")
        if declared_size is not None and declared_size != row.size:
            raise InvalidArgument("metadata.size differs from the upload session's size")
        if holder is not None and holder not in (row.sha256, placement.replaces):
            raise path_taken(placement.path, holder)
        with self.sessions.streaming(row.id):
            staged = await self.sessions.resume(row, meta.offset)
            return await self._continue(user_id, row, staged, meta, placement, stream)

    async def _continue(self, user_id: int, row: Row, staged: StagedBlob,
                        meta: UploadMetadata, placement: Placement,
                        stream: IdleLimit) -> Stored:
        async def checkpoint() -> None:
            await self.sessions.record_offset(row.id, await staged.flush())

        # Bytes taken up from the partial beyond the recorded offset: held by the
        # partial after a crash, not known to be durable (see ResumableSessions.resume).
        unchecked = staged.size > row.committed
        # What arrived is kept (even when the client vanished mid-stream), unless the file
        # is complete and then turns out bad or is published.
        keep = True
        rewound = False  # kept up to the recorded offset only
        try:
            # The session holds its whole size of the quota since StartUpload: the
            # stream cannot go past it (total), and publication checks it exactly.
            await self._pump(staged, stream, total=row.size, quota=None,
                             checkpoint=checkpoint)
            if staged.size < row.size:
                raise FailedPrecondition(
                    f"the stream ended after {staged.size} of {row.size} bytes; they are kept: "
                    f"continue from byte {staged.size}")
            if staged.hexdigest() != row.sha256.hex():
                keep = False
                if unchecked:
                    rewound = True
                    await self.sessions.rewind(row, staged)
                    raise FailedPrecondition(
                        f"the file does not hash to the session's {row.sha256.hex()}: the "
                        f"bytes after byte {row.committed}, kept through a server crash, may "
                        f"be damaged and were dropped; continue from byte {row.committed}")
                raise DataLoss(f"the bytes received hash to {staged.hexdigest()}, not to the "
                               f"session's {row.sha256.hex()}; the upload was discarded, "
                               "start it again")
            # Verified: made durable, then recorded as complete (in the publish's first
            # transaction) before the blob is published, so that a crash between the
            # store's publish and the library's commit leaves a session that sessions.recover()
            # completes at the next start. The session ends in the transaction that
            # lists the song.
            await staged.flush()
            keep = False
            try:
                stored = await self._publish(user_id, staged, meta, placement,
                                             upload_id=row.id)
            except (StorageUnavailable, StorageFull) as exc:
                if staged.published:
                    raise
                # Verified bytes the storage could not take now: worth keeping for a retry.
                keep = True
                raise type(exc)(f"{exc.message}. The whole file arrived and is kept as far as "
                                f"the storage allows: when the server is back, call StartUpload "
                                f"again and continue from the offset it answers (at "
                                f"{staged.size}, the end, send an Upload with no chunks)") from None
            return stored
        except BaseException:
            if not keep and not rewound:  # complete but bad: nothing of it is worth keeping
                await staged.abort()
                await self.sessions.end(row.id, drop_partial=not staged.published)
            raise
        finally:
            if keep:
                await _unstoppable(self.sessions.suspend(row.id, staged))

def _placement(meta: UploadMetadata) -> Placement:
    """Where the upload's metadata asks the song to go (its filename comes later)."""
    return Placement(
        path=normalise_path(meta.path, "metadata.path") if meta.path else None,
        replaces=parse_hash(meta.replaces, "metadata.replaces") if meta.replaces else None)


def _with_filename(placement: Placement, filename: str) -> Placement:
    return Placement(placement.path, filename, placement.replaces)


class _Allowance:
    """What one plain Upload stream may take of its user's quota, shared with the user's
    other plain streams in progress through ``tally`` (user id -> bytes)."""

    def __init__(self, tally: dict[int, int], user_id: int, room: int) -> None:
        self._tally = tally
        self._user_id = user_id
        self._room = room  # beside the library (or not, see _receive) and the sessions
        self._mine = 0

    def take(self, size: int) -> None:
        """Counts the stream at ``size`` bytes; quota exceeded if that does not fit."""
        if size <= self._mine:
            return
        others = self._tally.get(self._user_id, 0) - self._mine
        if size > self._room - others:
            raise quota_exceeded(size, self._room - others)
        self._tally[self._user_id] = others + size
        self._mine = size

    def release(self) -> None:
        left = self._tally.get(self._user_id, 0) - self._mine
        if left > 0:
            self._tally[self._user_id] = left
        else:
            self._tally.pop(self._user_id, None)
        self._mine = 0


class IdleLimit:
    """An upload stream, read with a bound: a read waiting longer than ``seconds``
    aborts the upload.

    One timer for the whole stream, moved on only when it fires: ``asyncio.timeout``
    around each read armed and cancelled a timer per 64 KiB chunk, a sixth of an
    upload's time on the event loop.
    """

    def __init__(self, upload: UploadStream, seconds: float) -> None:
        self._upload = upload
        self._next: Callable[[], Awaitable[Chunk]] = _before_metadata
        self._seconds = seconds
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._reading_since: float | None = None
        self._expired = False
        self._timer = self._loop.call_later(seconds, self._check)

    async def metadata(self) -> UploadMetadata:
        """The upload's metadata (see UploadStream.metadata)."""
        self._reading_since = self._loop.time()
        try:
            meta = await self._upload.metadata()
            self._next = aiter(self._upload.chunks()).__anext__
            return meta
        except asyncio.CancelledError:
            self._raise_if_expired()
            raise
        finally:
            self._reading_since = None

    async def next_chunk(self) -> Chunk | None:
        """The stream's next chunk; None when it has ended."""
        self._reading_since = self._loop.time()
        try:
            return await self._next()
        except StopAsyncIteration:
            return None
        except asyncio.CancelledError:
            self._raise_if_expired()
            raise
        finally:
            self._reading_since = None

    def _raise_if_expired(self) -> None:
        """DeadlineExceeded if the cancellation is the limit's own."""
        if self._expired and self._task.uncancel() == 0:
            raise DeadlineExceeded(
                f"the upload sent nothing for {self._seconds:g} seconds and was aborted; "
                "nothing was stored") from None

    def _check(self) -> None:
        now, since = self._loop.time(), self._reading_since
        if since is not None and now - since >= self._seconds:
            self._expired = True
            self._task.cancel()
        else:
            self._timer = self._loop.call_at((now if since is None else since) + self._seconds,
                                             self._check)

    def close(self) -> None:
        self._timer.cancel()


async def _before_metadata() -> Chunk:
    raise RuntimeError("an upload's chunks are read after its metadata")


async def _unstoppable(work: Awaitable[None]) -> None:
    """Runs ``work`` to its end even if the caller is cancelled, once or more, meanwhile.

    Saving an interrupted upload's progress must outlive the cancellation that
    interrupted it: at a server stop grpc cancels the handler, and a handler that
    returned early (asyncio.shield alone lets a second cancellation through) would
    let the shutdown close the database before the offset is recorded. The
    cancellation is passed on once the work is done.
    """
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    task.result()

