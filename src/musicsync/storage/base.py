"""The BlobStore interface.

A blob is an immutable byte string named by the lowercase hex SHA-256 of its
content. A new blob is *staged* (written while hashing, invisible to readers)
and then either *committed* (published atomically under its hash; if a blob of
that name exists already, the staged copy is simply dropped) or *aborted*
(every byte of it removed). Readers therefore never see a partial blob.

Resumable uploads keep their bytes as a *partial* under an upload id between
calls: ``resume`` reopens it (re-hashing what it holds) and the staged blob
grows from there; ``flush`` makes the bytes so far durable.

Every method may raise ``errors.StorageUnavailable`` when the backend cannot
be reached or does not answer in time. No method exposes where or how bytes
are kept: callers see names, sizes and byte streams only.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import BinaryIO, Protocol

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def is_sha256_hex(text: str) -> bool:
    return _SHA256_HEX.fullmatch(text) is not None


class BlobMissing(Exception):
    """A blob that should exist does not (lost, or deleted underneath us)."""


class StagedBlob(Protocol):
    """A blob being written: hashed as it grows, invisible until committed."""

    @property
    def size(self) -> int:
        """Bytes written so far (including a resumed partial's prefix)."""

    def hexdigest(self) -> str:
        """SHA-256 of the bytes written so far."""

    @property
    def published(self) -> bool:
        """Whether commit succeeded: the bytes are the blob now, no longer staged."""

    async def write(self, chunks: list[bytes | memoryview]) -> None:
        """Appends the chunks (bytes or memoryviews, which stay valid), hashing them."""

    async def flush(self) -> int:
        """Makes every byte written so far durable; returns how many that is."""

    def open_reader(self) -> BinaryIO:
        """A seekable synchronous reader over the bytes written so far.

        For parsers such as mutagen that need random access: use it from a
        worker thread, and close it before commit or abort.
        """

    async def commit(self) -> str:
        """Publishes the bytes under their SHA-256 (returned); the staged blob is then spent."""

    async def abort(self) -> None:
        """Removes every byte of the staged blob (for a resumed partial: the partial too).

        A no-op after a successful commit, so callers may abort in a `finally`."""

    async def suspend(self) -> int:
        """Resumable only: flushes, keeps the partial for a later resume, returns its size."""


class BlobStore(Protocol):
    """Where songs are kept, by content."""

    description: str  # for messages: "local folder /data/blobs", "S3 bucket music at host:9000"

    async def open(self, *, sweep: bool = True) -> None:
        """Prepares the store and removes temporary data left by crashed uploads.

        ``sweep=False`` leaves temporary data alone: for maintenance commands that
        run beside a server, whose uploads in progress live there."""

    async def close(self) -> None: ...

    async def check(self) -> None:
        """A cheap probe: returns if the store answers, raises StorageUnavailable if not."""

    async def stage(self, expected_sha256: str | None = None) -> StagedBlob:
        """Starts a new blob. ``expected_sha256``, when the client declared it, lets a
        backend write straight to the final place; commit still verifies it."""

    async def resume(self, upload_id: str, committed: int) -> StagedBlob:
        """Reopens (or starts) the partial of a resumable upload, cut to ``committed`` bytes."""

    async def partial_size(self, upload_id: str) -> int:
        """How many bytes the partial holds that ``resume`` can take up (0: none).

        Every byte that was written before the server stopped, however it stopped,
        as far as the backend keeps it: a local file holds every byte written to it
        (the kernel keeps them across a crash of the process), S3 the part objects
        stored whole. Bytes not yet flushed may be damaged by a crash of the machine:
        the upload's final SHA-256 check finds them."""

    async def drop_partial(self, upload_id: str) -> None: ...

    def partials(self) -> AsyncIterator[str]:
        """Upload ids that have partial data."""

    async def size(self, sha256: str) -> int | None:
        """The blob's size, or None if there is no such blob."""

    async def written_at(self, sha256: str) -> float | None:
        """When the blob was stored (Unix seconds), or None if there is no such blob."""

    def read(self, sha256: str, offset: int = 0,
             length: int | None = None) -> AsyncIterator[bytes]:
        """The blob's bytes from ``offset``, ``length`` of them (None: to the end), in
        blocks of up to about 1 MiB. Raises BlobMissing if the blob does not exist."""

    async def delete(self, sha256: str) -> None:
        """Removes the blob; no error if it is already gone."""

    def blobs(self) -> AsyncIterator[tuple[str, int]]:
        """Every committed blob as (sha256, size)."""
