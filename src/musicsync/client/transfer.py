"""Moving song bytes: uploads that resume where the server stands, downloads that resume
from their partial file and are verified before they appear.

Both stream in 1 MiB pieces, never holding a whole file, and retry a broken stream a few
times with a growing pause.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from ..proto import file_pb2
from .errors import DownloadCorrupt, FileChanged, NotFound, ServerUnavailable, translate
from .models import DownloadResult, RemoteFile, UploadResult

if TYPE_CHECKING:
    from .api import Client

CHUNK = 1024 * 1024
ATTEMPTS = 5
FIRST_PAUSE = 0.5  # seconds before the second attempt; doubled for each one after
# A stream cut by the network or a restarting server: worth another attempt.
BROKEN = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL})
PARTIAL_SUFFIX = ".musicsync-part"
PRECONDITION_RETRIES = 2
# Files up to this size go in one plain Upload stream, sent whole again if it breaks: a
# resumable session (StartUpload) costs the server a write more than the file's own and
# halved the songs a sync sends per second, to save at most this much of a resend.
SMALL_FILE = 4 * 1024 * 1024

Progress = Callable[[int], None]  # called with the bytes of the file done so far


def hash_file(path: Path) -> tuple[str, int]:
    """The lowercase hex SHA-256 and size of a file, read in pieces (hashlib frees the GIL)."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as source:
        while block := source.read(CHUNK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def partial_path(dest: Path, sha256: str) -> Path:
    """Where a download of ``sha256`` to ``dest`` collects its bytes until they check out.

    Hidden, beside ``dest`` (so the final rename stays on one file system) and named by the
    hash, so that the next attempt finds it and resumes, and another song's does not.
    """
    return dest.with_name(f".{dest.name}.{sha256[:16]}{PARTIAL_SUFFIX}")


async def _pause(attempt: int) -> None:
    await asyncio.sleep(FIRST_PAUSE * 2 ** (attempt - 1))


# -- upload ------------------------------------------------------------------------------

async def upload(client: Client, source: Path, *, path: str | None, replaces: str | None,
                 sha256: str | None, progress: Progress | None, new: bool = False,
                 metadata: dict | None = None) -> UploadResult:
    source = Path(source)
    if sha256 is None:
        sha256, size = await asyncio.to_thread(hash_file, source)
    else:
        sha256, size = sha256.lower(), source.stat().st_size
    name = path.rsplit("/", 1)[-1] if path else source.name
    meta = dict(metadata or {}, filename=name, path=path or "", replaces=replaces or "",
                sha256=sha256, size=size)
    sent = 0
    unauthenticated_retried = False
    refusals = 0
    for attempt in range(1, ATTEMPTS + 1):
        try:
            upload_id, offset, complete = await _start(client, sha256, size, new)
        except ServerUnavailable:
            if attempt == ATTEMPTS:
                raise
            await _pause(attempt)  # the connection is being made again
            continue
        if complete:  # in the library already: only the path and tags go
            response = await client._unary(client._file.Upload, _only_metadata(meta))
            return _uploaded(response, sent, size, attempt)
        stream = _Chunks(client, source, size, offset, progress)
        try:
            response = await client._file.Upload(
                stream.requests(file_pb2.FileMetadata(
                    upload_id=upload_id, offset=offset, **meta)),
                metadata=await client._metadata())
        except grpc.aio.AioRpcError as error:
            sent += stream.sent
            code = error.code()
            if stream.changed or code == grpc.StatusCode.DATA_LOSS:
                raise FileChanged(f"{source} changed while it was being uploaded "
                                  f"({error.details()}); upload it again") from error
            if code == grpc.StatusCode.UNAUTHENTICATED and not unauthenticated_retried:
                unauthenticated_retried = True
                await client._tokens.refresh(client._tokens.tokens)
                continue
            if code in BROKEN and attempt < ATTEMPTS:
                await _pause(attempt)
                continue
            if (code == grpc.StatusCode.FAILED_PRECONDITION and attempt < ATTEMPTS
                    and refusals < PRECONDITION_RETRIES):
                # "continue from byte N" or "already being sent on another stream": the
                # server has not yet wound up a broken stream, or gave bytes back. Ask
                # StartUpload again in a moment; a refusal that stays is final.
                refusals += 1
                await _pause(attempt)
                continue
            raise translate(error, client.target) from error
        sent += stream.sent
        return _uploaded(response, sent, offset, attempt)
    raise AssertionError("unreachable")  # the last attempt returns or raises


async def _start(client: Client, sha256: str, size: int, new: bool
                 ) -> tuple[str, int, bool]:
    """(upload id, offset to send from, whether the library holds the song already).

    A small file is asked about with Stat (a read), or not at all when the caller knows
    it is ``new``, and sent whole without a session."""
    if size <= SMALL_FILE:
        if new:
            return "", 0, False
        found = await client.stat([sha256])
        return "", 0, bool(found.found)
    start = await client._unary(client._file.StartUpload, file_pb2.StartUploadRequest(
        sha256=sha256, size=size))
    return start.upload_id, start.offset, start.complete


def _only_metadata(meta: dict):
    async def requests():
        yield file_pb2.UploadRequest(metadata=file_pb2.FileMetadata(**meta))
    return requests()


def _uploaded(response, sent: int, offset: int, attempts: int) -> UploadResult:
    return UploadResult(hash=response.hash, entry=RemoteFile.from_proto(response.file),
                        duplicate_of_path=response.duplicate_of_path, bytes_sent=sent,
                        resumed_from=offset, attempts=attempts)


class _Chunks:
    """The requests of one Upload stream: the metadata, then the file from ``offset``."""

    def __init__(self, client: Client, source: Path, size: int, offset: int,
                 progress: Progress | None) -> None:
        self.client = client
        self.source = source
        self.size = size
        self.offset = offset
        self.progress = progress
        self.sent = 0
        self.changed = False  # the file ended early: the stream stops, the upload fails

    async def requests(self, meta: file_pb2.FileMetadata):
        yield file_pb2.UploadRequest(metadata=meta)
        if self.progress:
            self.progress(self.offset)
        with open(self.source, "rb") as source:
            source.seek(self.offset)
            left = self.size - self.offset
            while left > 0:
                chunk = await asyncio.to_thread(source.read, min(CHUNK, left))
                if not chunk:
                    self.changed = True  # shorter than when hashed
                    return
                left -= len(chunk)
                yield file_pb2.UploadRequest(chunk=chunk)
                self.sent += len(chunk)
                self.client.bytes_sent += len(chunk)
                if self.progress:
                    self.progress(self.size - left)


# -- download ----------------------------------------------------------------------------

async def download(client: Client, sha256: str, dest: Path, *,
                   progress: Progress | None) -> DownloadResult:
    sha256 = sha256.lower()
    found = await client.stat([sha256])
    if not found.found:
        raise NotFound(f"no song with hash {sha256} in your library")
    size = found.found[0].size
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = partial_path(dest, sha256)
    received = 0
    resumed_from = part.stat().st_size if part.exists() else 0
    if resumed_from > size:  # not this song's beginning, whatever it is
        part.unlink()
        resumed_from = 0
    unauthenticated_retried = False
    for attempt in range(1, ATTEMPTS + 1):
        offset = part.stat().st_size if part.exists() else 0
        if offset >= size:
            break
        try:
            received += await _receive(client, sha256, part, offset, progress, size)
            break
        except _Broken as broken:
            received += broken.received
            error = broken.error
            if error.code() == grpc.StatusCode.UNAUTHENTICATED and not unauthenticated_retried:
                unauthenticated_retried = True
                await client._tokens.refresh(client._tokens.tokens)
                continue
            if error.code() in BROKEN and attempt < ATTEMPTS:
                await _pause(attempt)
                continue
            raise translate(error, client.target) from error
    actual, actual_size = await asyncio.to_thread(hash_file, part)
    if actual != sha256 or actual_size != size:
        part.unlink(missing_ok=True)
        raise DownloadCorrupt(f"the download of {sha256} hashed to {actual} ({actual_size} "
                              f"bytes) instead: the partial file was removed; try again")
    await asyncio.to_thread(_publish, part, dest)
    return DownloadResult(path=str(dest), hash=sha256, size=size, bytes_received=received,
                          resumed_from=resumed_from)


class _Broken(Exception):
    def __init__(self, error: grpc.aio.AioRpcError, received: int) -> None:
        self.error = error
        self.received = received


async def _receive(client: Client, sha256: str, part: Path, offset: int,
                   progress: Progress | None, size: int) -> int:
    """Appends the song from ``offset`` to ``part``; the bytes received."""
    received = 0
    if progress:
        progress(offset)
    with open(part, "ab") as out:
        try:
            call = client._file.Download(
                file_pb2.DownloadRequest(hash=sha256, offset=offset, chunk_size=CHUNK),
                metadata=await client._metadata())
            async for message in call:
                if message.chunk:
                    await asyncio.to_thread(out.write, message.chunk)
                    received += len(message.chunk)
                    client.bytes_received += len(message.chunk)
                    if progress:
                        progress(offset + received)
        except grpc.aio.AioRpcError as error:
            raise _Broken(error, received) from error
        finally:
            out.flush()
            os.fsync(out.fileno())
    return received


def _publish(part: Path, dest: Path) -> None:
    """Renames the verified partial into place and makes the rename durable."""
    os.replace(part, dest)
    if hasattr(os, "O_DIRECTORY"):  # folders cannot be fsynced on Windows
        folder = os.open(dest.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
