"""Blobs as objects in an S3 bucket (MinIO, or any S3-compatible server).

    blobs/<sha256>                  a committed blob
    tmp/<stage id>/<part>           a blob being staged, as numbered part objects
    partials/<upload id>/<part>     the partial of a resumable upload, likewise

A staged blob is hashed as it arrives; every ``part_size`` bytes become one
part object and the tail (less than a part) stays in memory, so an upload
holds at most one part whatever the file size. The parts are objects of their
own, not the parts of an open multipart upload, because S3 cannot read those
back before the upload completes, and the audio check needs random access to
the file before it is published (``open_reader``: ranged GETs of the parts,
the tail from memory). ``commit`` publishes under ``blobs/<sha256>`` with one
multipart upload whose parts are server-side copies of the part objects
(UploadPartCopy) and the tail sent from memory, then deletes the parts; a
blob smaller than a part (a typical MP3 or AAC song) is PUT straight to its
final key. Nothing is visible under blobs/ before it is complete and
verified, and a failed commit aborts its multipart upload.

The minio client blocks: its calls run in a small thread pool of the store's
own, each under a deadline (STORAGE_TIMEOUT) on the sockets (urllib3) and on
the await, with few retries. Refused connections, timeouts, 5xx answers and
refusals become ``StorageUnavailable`` naming the bucket, so a caller gets
UNAVAILABLE within about STORAGE_TIMEOUT.

Stale temporary data (stages and multipart uploads of crashed or failed
uploads, older than ``stale_after``) is removed by ``open`` and then hourly.
Only stale data: another process (``musicsync fsck``) may open the same
bucket while a server writes to it.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import itertools
import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import BinaryIO, TypeVar
from urllib.parse import quote

import certifi
import urllib3
from minio import Minio
from minio.commonconfig import CopySource
from minio.datatypes import Part
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, S3Error, ServerError

from ..errors import StorageUnavailable
from ..library.ranged import RangedReader
from ..metrics import NullMetrics
from .base import BlobMissing, is_sha256_hex

log = logging.getLogger(__name__)

MIN_PART_SIZE = 5 * 1024 * 1024  # S3's smallest part, but for the last
# Most MP3 and AAC songs are smaller: published with one PUT, no server-side copy.
PART_SIZE = 8 * 1024 * 1024
READ_BLOCK = 1024 * 1024
STALE_AFTER = 3600.0
PURGE_INTERVAL = 3600.0
WORKERS = 8
COPY_CONCURRENCY = 4
# A call that moves bytes gets the timeout plus the time to move them over a
# link this slow (bytes per second): a part upload must not time out on a slow uplink.
SLOWEST_LINK = 256 * 1024
# S3 answers that callers handle themselves; every other one means the store
# cannot serve (a missing bucket, refused credentials, an internal error...).
_ANSWERS = ("NoSuchKey", "NoSuchUpload", "InvalidRange")
_NO_ANSWER = (urllib3.exceptions.HTTPError, OSError, ServerError, InvalidResponseError)
_T = TypeVar("_T")


class S3BlobStore:
    """Blobs in an S3/MinIO bucket, created if missing."""

    def __init__(self, endpoint: str, access_key: str | None, secret_key: str | None, *,
                 bucket: str = "music", secure: bool = False, timeout: float = 30.0,
                 metrics=None, part_size: int = PART_SIZE,
                 stale_after: float = STALE_AFTER) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"S3 parts must be at least {MIN_PART_SIZE} bytes")
        self.bucket = bucket
        self.description = f"S3 bucket {bucket} at {endpoint}"
        self.timeout = float(timeout)
        self.part_size = part_size
        self.stale_after = stale_after
        self._metrics = metrics or NullMetrics()
        # minio's own pool would wait 5 minutes per socket operation and retry
        # 5 times: an outage would hang every call. Retry only what is safe and
        # quick: connecting (nothing was sent) and one 5xx of an idempotent request.
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=self.timeout, read=self.timeout),
            maxsize=2 * WORKERS,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
            retries=urllib3.Retry(total=2, connect=2, read=0, redirect=0, status=1, other=0,
                                  backoff_factor=0.1, status_forcelist=(500, 502, 503, 504),
                                  respect_retry_after_header=False, raise_on_status=False))
        self._client = Minio(endpoint, access_key=access_key, secret_key=secret_key,
                             secure=secure, http_client=self._http)
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="s3")
        self._purger: asyncio.Task | None = None

    @classmethod
    def from_settings(cls, settings, metrics=None) -> S3BlobStore:
        return cls(settings.s3_endpoint, settings.s3_access_key, settings.s3_secret_key,
                   bucket=settings.s3_bucket, secure=settings.s3_use_ssl,
                   timeout=settings.storage_timeout, metrics=metrics)

    # -- Calls into the client ---------------------------------------------------------

    def _submit(self, func: Callable[..., _T], *args) -> asyncio.Future[_T]:
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._pool, functools.partial(func, *args))

    async def _wait(self, operation: str, work: asyncio.Future[_T], nbytes: int = 0, *,
                    settle: bool = False) -> _T:
        """The result of a client call, or StorageUnavailable if it fails or takes too long.

        ``settle``: if the caller is cancelled, wait for the thread to finish (its
        sockets time out) before the caller's cleanup touches what it works on.
        Otherwise, as after a timeout, the thread is left to finish on its own."""
        deadline = self.timeout + nbytes / SLOWEST_LINK
        work.add_done_callback(_ignore_result)  # for when nobody awaits it any more
        try:
            try:
                async with asyncio.timeout(deadline):
                    return await asyncio.shield(work)
            except asyncio.CancelledError:
                if settle:
                    await asyncio.gather(work, return_exceptions=True)
                raise
        except TimeoutError:
            raise self._unavailable(operation, f"no answer within {deadline:g} s",
                                    timed_out=deadline) from None
        except S3Error as exc:
            if exc.code in _ANSWERS:
                raise
            raise self._unavailable(operation, exc) from None
        except _NO_ANSWER as exc:
            # The sockets' own timeout may fire just before the await's: the same outage.
            raise self._unavailable(operation, exc, timed_out=deadline if _timed_out(exc)
                                    else None) from None

    async def _call(self, operation: str, func: Callable[..., _T], *args, nbytes: int = 0) -> _T:
        return await self._wait(operation, self._submit(func, *args), nbytes)

    def _unavailable(self, operation: str, cause: object, *,
                     timed_out: float | None = None) -> StorageUnavailable:
        self._metrics.storage_error(operation)
        # Probes fail every few seconds during an outage: the server logs the outage once.
        log.log(logging.DEBUG if operation in ("check", "open") else logging.WARNING,
                "%s: %s failed: %s", self.description, operation, cause)
        if timed_out is not None:
            return StorageUnavailable(f"the server's storage ({self.description}) did not "
                                      f"answer within {timed_out:g} seconds; try again later")
        return StorageUnavailable(f"the server's storage ({self.description}) cannot be "
                                  f"reached or refused to {operation}; try again later")

    def _fetch(self, name: str, offset: int, length: int) -> bytes:
        """``length`` bytes of an object from ``offset``; blocking, for any thread."""
        try:
            response = self._client.get_object(self.bucket, name, offset, length)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()
        except S3Error as exc:
            if exc.code == "NoSuchKey":
                raise BlobMissing(name) from None
            raise self._unavailable("read", exc) from None
        except _NO_ANSWER as exc:
            raise self._unavailable("read", exc) from None

    # -- Lifetime -----------------------------------------------------------------------

    async def open(self, *, sweep: bool = True) -> None:
        if not await self._call("open", self._client.bucket_exists, self.bucket):
            try:
                await self._call("open", self._client.make_bucket, self.bucket)
            except StorageUnavailable:  # made by someone else in the meantime?
                if not await self._call("open", self._client.bucket_exists, self.bucket):
                    raise
            log.info("created %s", self.description)
        if not sweep:
            return
        await self._purge(self.stale_after)
        if self._purger is None:
            self._purger = asyncio.create_task(self._purge_forever(), name="s3-purger")

    async def close(self) -> None:
        if self._purger is not None:
            self._purger.cancel()
            await asyncio.gather(self._purger, return_exceptions=True)
            self._purger = None
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.clear()

    async def check(self) -> None:
        if not await self._call("check", self._client.bucket_exists, self.bucket):
            # Gone (a MinIO recreated without its volume?): made again, as a restart
            # would. What it held is lost; `musicsync fsck` tells which songs.
            log.error("%s has vanished; creating it again", self.description)
            await self._call("check", self._client.make_bucket, self.bucket)

    async def _purge_forever(self) -> None:
        """Removes stale temporary data hourly (a sleeping task, not a busy loop)."""
        while True:
            await asyncio.sleep(PURGE_INTERVAL)
            try:
                await self._purge(self.stale_after)
            except StorageUnavailable:
                pass  # logged; next hour

    async def _purge(self, older_than: float) -> None:
        """Removes stages and multipart uploads whose last write is older than ``older_than``."""
        cutoff = datetime.now(timezone.utc) - timedelta(seconds=older_than)
        stages: dict[str, list[str]] = {}
        newest: dict[str, datetime] = {}
        async for obj in self._list("open", "tmp/", recursive=True):
            stage = obj.object_name.split("/")[1]
            stages.setdefault(stage, []).append(obj.object_name)
            if obj.last_modified is not None and obj.last_modified > newest.get(stage, _EPOCH):
                newest[stage] = obj.last_modified
        stale = [name for stage, names in stages.items() if newest.get(stage, _EPOCH) <= cutoff
                 for name in names]
        if stale:
            await self._delete_many("open", stale)
        uploads = await self._call("open", self._uploads_started_before, cutoff)
        for name, upload_id in uploads:
            await self._abort_upload("open", name, upload_id)
        if stale or uploads:
            log.info("%s: removed %d temporary objects and %d multipart uploads of interrupted "
                     "uploads", self.description, len(stale), len(uploads))

    def _uploads_started_before(self, cutoff: datetime) -> list[tuple[str, str]]:
        found = []
        key_marker = upload_id_marker = None
        while True:
            result = self._client._list_multipart_uploads(
                self.bucket, prefix="blobs/", key_marker=key_marker,
                upload_id_marker=upload_id_marker)
            found += [(u.object_name, u.upload_id) for u in result.uploads
                      if u.initiated_time is None or u.initiated_time <= cutoff]
            if not result.is_truncated or not result.uploads:
                return found
            # minio 7.2 drops NextUploadIdMarker: go on from the last upload listed.
            key_marker = result.uploads[-1].object_name
            upload_id_marker = result.uploads[-1].upload_id

    async def _abort_upload(self, operation: str, name: str, upload_id: str) -> None:
        try:
            await self._call(operation, self._client._abort_multipart_upload, self.bucket, name,
                             upload_id)
        except S3Error:  # NoSuchUpload: gone already
            pass

    # -- Writing ------------------------------------------------------------------------

    async def stage(self, expected_sha256: str | None = None) -> _StagedObjects:
        # The declared hash is not used: nothing may appear under blobs/ before the
        # audio check, and that needs the staged bytes readable (see the module doc).
        return _StagedObjects(self, f"tmp/{secrets.token_hex(16)}/", hashlib.sha256())

    async def resume(self, upload_id: str, committed: int) -> _StagedObjects:
        staged = _StagedObjects(self, self._partial_prefix(upload_id), hashlib.sha256())
        await staged._restore(committed)
        return staged

    async def partial_size(self, upload_id: str) -> int:
        held = [(obj.object_name, obj.size) async for obj in
                self._list("resume", self._partial_prefix(upload_id), recursive=True)]
        return _contiguous(sorted(held), self._partial_prefix(upload_id), self.part_size)

    async def drop_partial(self, upload_id: str) -> None:
        prefix = self._partial_prefix(upload_id)
        names = [obj.object_name async for obj in self._list("delete", prefix, recursive=True)]
        if names:
            await self._delete_many("delete", names)

    async def partials(self) -> AsyncIterator[str]:
        async for obj in self._list("list", "partials/", recursive=False):
            if obj.is_dir:
                yield obj.object_name.split("/")[1]

    def _partial_prefix(self, upload_id: str) -> str:
        if not upload_id.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"bad upload id {upload_id!r}")
        return f"partials/{upload_id}/"

    async def _delete_many(self, operation: str, names: list[str]) -> None:
        await self._call(operation, self._delete_now, names)

    def _delete_now(self, names: list[str]) -> None:
        errors = list(self._client.remove_objects(self.bucket, (DeleteObject(n) for n in names)))
        if errors:
            raise ServerError(f"could not delete {errors[0].name}: {errors[0].code} "
                              f"{errors[0].message}", 0)

    # -- Reading and deleting -----------------------------------------------------------

    async def size(self, sha256: str) -> int | None:
        return await self._call("stat", _size_or_none, self, _blob_key(sha256))

    async def read(self, sha256: str, offset: int = 0,
                   length: int | None = None) -> AsyncIterator[bytes]:
        if length == 0:
            return
        try:
            response = await self._call("read", self._client.get_object, self.bucket,
                                        _blob_key(sha256), offset, length or 0)
        except S3Error as exc:
            if exc.code == "InvalidRange":  # offset at the end: nothing to send
                if await self.size(sha256) is not None:
                    return
            raise BlobMissing(sha256) from None
        pending: asyncio.Future | None = None
        try:
            # Fetch the next block while the caller sends the current one.
            pending = asyncio.ensure_future(
                self._call("read", response.read, READ_BLOCK, nbytes=READ_BLOCK))
            while True:
                block = await pending
                pending = None
                if not block:
                    return
                pending = asyncio.ensure_future(
                    self._call("read", response.read, READ_BLOCK, nbytes=READ_BLOCK))
                yield block
        finally:
            if pending is not None:
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)
            response.close()
            response.release_conn()

    async def written_at(self, sha256: str) -> float | None:
        return await self._call("stat", _written_at_or_none, self, _blob_key(sha256))

    async def delete(self, sha256: str) -> None:
        await self._call("delete", self._client.remove_object, self.bucket, _blob_key(sha256))

    async def blobs(self) -> AsyncIterator[tuple[str, int]]:
        async for obj in self._list("list", "blobs/", recursive=True):
            name = obj.object_name.removeprefix("blobs/")
            if is_sha256_hex(name):
                yield name, obj.size

    async def _list(self, operation: str, prefix: str, *, recursive: bool):
        """The objects under ``prefix``, a page (one request) per thread call."""
        objects = self._client.list_objects(self.bucket, prefix=prefix, recursive=recursive)
        while True:
            page = await self._call(operation, _take, objects, 1000)
            for obj in page:
                yield obj
            if len(page) < 1000:
                return


class _StagedObjects:
    """A blob being written as part objects under a prefix, its tail in memory."""

    def __init__(self, store: S3BlobStore, prefix: str, hasher) -> None:
        self._store = store
        self._prefix = prefix
        self._hasher = hasher
        self._part_size = store.part_size
        self._parts = 0  # full part objects written
        self._tail = bytearray()  # the bytes after them
        self._size = 0
        self._durable = 0  # bytes held by objects
        self._touched = False  # objects may exist under the prefix
        self._spent = False  # committed, aborted or suspended
        self._published = False
        self._running: asyncio.Future | None = None  # a call that may outlive its deadline

    @property
    def size(self) -> int:
        return self._size

    @property
    def published(self) -> bool:
        return self._published

    def hexdigest(self) -> str:
        return self._hasher.hexdigest()

    def _name(self, index: int) -> str:
        return f"{self._prefix}{index:05d}"

    async def _run(self, operation: str, func: Callable[..., _T], *args, nbytes: int = 0) -> _T:
        if self._running is not None and not self._running.done():
            # A call that timed out still runs in its thread and changes this blob.
            raise self._store._unavailable(operation, "an earlier call has not returned")
        self._running = self._store._submit(func, *args)
        # A client that goes away mid-write is common: let the write end, so that a
        # resumable upload can still save what it holds.
        return await self._store._wait(operation, self._running, nbytes, settle=True)

    # -- Writing ------------------------------------------------------------------------

    async def write(self, chunks: list[bytes]) -> None:
        total = len(self._tail) + sum(len(chunk) for chunk in chunks)
        await self._run("write", self._append, chunks,
                        nbytes=total // self._part_size * self._part_size)

    def _append(self, chunks: list[bytes]) -> None:
        """Hashes and buffers the chunks, storing each part as it fills (in a worker thread).

        Consistent if a part upload fails: the bytes taken so far are hashed and held."""
        part = self._part_size
        for chunk in chunks:
            view = memoryview(chunk)
            while True:
                if len(self._tail) == part:
                    self._put(self._parts, self._tail)
                    self._parts += 1
                    self._durable = self._parts * part
                    self._tail = bytearray()
                if not view:
                    break
                piece = view[:part - len(self._tail)]
                self._hasher.update(piece)
                try:
                    self._tail += piece
                except BufferError:  # a failed upload's traceback still holds a view of it
                    self._tail = bytearray(self._tail)
                    self._tail += piece
                self._size += len(piece)
                view = view[len(piece):]

    def _put(self, index: int, data) -> None:
        self._touched = True
        store = self._store
        store._client._put_object(store.bucket, self._name(index), data)

    async def flush(self) -> int:
        if self._durable < self._size:
            await self._run("write", self._put, self._parts, memoryview(self._tail),
                            nbytes=len(self._tail))
            self._durable = self._size
        return self._size

    async def suspend(self) -> int:
        size = await self.flush()
        self._tail = bytearray()
        self._spent = True
        return size

    def open_reader(self) -> BinaryIO:
        raw = _StagedReader(self._store, self._name, self._parts, self._part_size,
                            self._tail, self._size)
        return io.BufferedReader(raw, 128 * 1024)

    # -- Publishing and discarding ------------------------------------------------------

    async def commit(self) -> str:
        sha256 = self.hexdigest()
        final = _blob_key(sha256)
        store = self._store
        if await self._run("commit", _size_or_none, store, final) is None:
            if self._parts == 0 and self._tail_stored():
                source = CopySource(store.bucket, self._name(0))
                await self._run("commit", store._client.copy_object, store.bucket, final,
                                source, nbytes=len(self._tail))
            elif self._parts == 0:
                await self._run("commit", store._client._put_object, store.bucket, final,
                                memoryview(self._tail), nbytes=len(self._tail))
            else:
                await self._compose(final)
        self._published = self._spent = True
        self._tail = bytearray()
        if self._touched:
            try:
                await store._delete_many("commit", self._names())
            except StorageUnavailable:  # published all the same; the purge or sweep removes them
                log.warning("%s: parts under %s were left behind", store.description,
                            self._prefix)
        return sha256

    async def _compose(self, final: str) -> None:
        """One multipart upload: the parts copied server-side, then the tail from memory."""
        store = self._store
        client, bucket = store._client, store.bucket
        upload_id = await store._call("commit", client._create_multipart_upload, bucket, final, {})
        limit = asyncio.Semaphore(COPY_CONCURRENCY)

        async def copy(index: int) -> Part:
            headers = {"x-amz-copy-source": quote(f"/{bucket}/{self._name(index)}")}
            async with limit:
                etag, _ = await store._call("commit", client._upload_part_copy, bucket, final,
                                            upload_id, index + 1, headers,
                                            nbytes=self._part_size)
            return Part(index + 1, etag)

        try:
            async with asyncio.TaskGroup() as group:
                copies = [group.create_task(copy(i)) for i in range(self._parts)]
            parts = [task.result() for task in copies]
            if self._tail_stored():
                parts.append(await copy(self._parts))
            elif self._tail:
                etag = await store._call("commit", client._upload_part, bucket, final,
                                         memoryview(self._tail), None, upload_id,
                                         self._parts + 1, nbytes=len(self._tail))
                parts.append(Part(self._parts + 1, etag))
            await store._call("commit", client._complete_multipart_upload, bucket, final,
                              upload_id, parts)
        except BaseException as exc:
            try:
                await store._abort_upload("commit", final, upload_id)
            except StorageUnavailable:
                pass  # the purge aborts it later
            # From the TaskGroup comes a group: its first error will do.
            first = exc.exceptions[0] if isinstance(exc, BaseExceptionGroup) else exc
            if isinstance(first, S3Error):  # a part vanished underneath us
                raise store._unavailable("commit", first) from None
            if first is exc:
                raise
            raise first from None

    def _tail_stored(self) -> bool:
        """Whether the tail is held by an object too (flushed since its last byte):
        commit then copies it server-side instead of sending it again."""
        return bool(self._tail) and self._durable == self._size

    async def abort(self) -> None:
        """Deletes the part objects; if the store does not answer, the purge does later."""
        if self._spent:
            return
        self._spent = True
        self._tail = bytearray()
        if not self._touched:
            return
        try:
            await self._store._delete_many("delete", self._names())
        except StorageUnavailable:
            log.warning("%s: could not remove %s now; they are removed later",
                        self._store.description, self._prefix)

    def _names(self) -> list[str]:
        return [self._name(i) for i in range(self._parts + 1)]

    # -- Resuming -----------------------------------------------------------------------

    async def _restore(self, committed: int) -> None:
        """Takes up the partial's first ``committed`` bytes: hashed again, the tail read back."""
        store = self._store
        part = self._part_size
        held = [(obj.object_name, obj.size)
                async for obj in store._list("resume", self._prefix, recursive=True)]
        held.sort()
        valid = _contiguous(held, self._prefix, part)
        if valid < committed:
            raise BlobMissing(f"partial {self._prefix} holds {valid} bytes, expected {committed}")
        self._touched = bool(held)
        full, rest = divmod(committed, part)
        for index in range(full):
            await self._run("resume", self._rehash, self._name(index), nbytes=part)
        if rest:
            tail = await self._run("resume", store._fetch, self._name(full), 0, rest, nbytes=rest)
            if len(tail) != rest:
                raise BlobMissing(f"partial {self._prefix} ended early")
            self._hasher.update(tail)
            self._tail = bytearray(tail)
        self._parts = full
        self._size = self._durable = committed
        if rest and dict(held).get(self._name(full)) != rest:
            self._durable = full * part  # the object holding the tail holds more: put it again
        # Bytes past what the caller takes up are dropped, with the objects holding them.
        keep = {self._name(index) for index in range(full + (1 if rest else 0))}
        beyond = [name for name, _ in held if name not in keep]
        if beyond:
            await store._delete_many("resume", beyond)

    def _rehash(self, name: str) -> None:
        store = self._store
        try:
            response = store._client.get_object(store.bucket, name)
        except S3Error as exc:
            if exc.code == "NoSuchKey":  # dropped while we listed it
                raise BlobMissing(name) from None
            raise
        try:
            got = 0
            while block := response.read(READ_BLOCK):
                self._hasher.update(block)
                got += len(block)
        finally:
            response.close()
            response.release_conn()
        if got != self._part_size:
            raise BlobMissing(f"part {name} holds {got} bytes, expected {self._part_size}")


class _StagedReader(RangedReader):
    """Random access to a staged blob: ranged GETs of its parts, its tail from memory."""

    def __init__(self, store: S3BlobStore, name_of: Callable[[int], str], parts: int,
                 part_size: int, tail: bytearray, size: int) -> None:
        super().__init__(size)
        self._store = store
        self._name_of = name_of
        self._parts = parts
        self._part_size = part_size
        self._tail = tail

    def _read_at(self, position: int, length: int) -> bytes:
        index, offset = divmod(position, self._part_size)
        if index >= self._parts:
            return self._tail[offset:offset + length]  # a copy of just this piece
        wanted = min(length, self._part_size - offset)
        try:
            data = self._store._fetch(self._name_of(index), offset, wanted)
        except BlobMissing:
            raise self._store._unavailable("read", f"part {index} has vanished") from None
        if len(data) != wanted:
            raise self._store._unavailable("read", f"part {index} is shorter than written")
        return data


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _blob_key(sha256: str) -> str:
    if not is_sha256_hex(sha256):
        raise ValueError(f"not a SHA-256: {sha256!r}")
    return f"blobs/{sha256}"


def _size_or_none(store: S3BlobStore, name: str) -> int | None:
    try:
        return store._client.stat_object(store.bucket, name).size
    except S3Error as exc:
        if exc.code == "NoSuchKey":
            return None
        raise


def _written_at_or_none(store: S3BlobStore, name: str) -> float | None:
    try:
        modified = store._client.stat_object(store.bucket, name).last_modified
    except S3Error as exc:
        if exc.code == "NoSuchKey":
            return None
        raise
    return modified.timestamp() if modified is not None else 0.0


def _timed_out(exc: BaseException) -> bool:
    """Whether a client error is a socket timeout (possibly wrapped by urllib3's retries)."""
    reason = getattr(exc, "reason", None)
    return isinstance(exc, (urllib3.exceptions.TimeoutError, TimeoutError)) or (
        reason is not None and _timed_out(reason))


def _contiguous(held: list[tuple[str, int]], prefix: str, part: int) -> int:
    """The bytes of a partial's part objects (sorted by name) that follow each other
    from the first: numbered from 0 without a gap, each full but the last."""
    valid = 0
    for index, (name, size) in enumerate(held):
        if name != f"{prefix}{index:05d}" or size > part:
            break
        valid += size
        if size < part:
            break
    return valid


def _take(objects: Iterator[_T], n: int) -> list[_T]:
    return list(itertools.islice(objects, n))


def _ignore_result(work: Future) -> None:
    if not work.cancelled():
        work.exception()
