"""An upload as the upload domain receives it: plain metadata, then the file in chunks.

services/file_service.py decodes an Upload call into this shape (the wire's
FileMetadata message, at most once and first, then the chunk messages), so
that the domain sees no protobuf message and imports no grpc. The metadata is
read through the stream rather than handed over as a value: the upload's idle
limit (uploads.IdleLimit) bounds the wait for the first message too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from ..errors import InvalidArgument, ResourceExhausted

Chunk = bytes | memoryview


@dataclass(frozen=True, slots=True)
class UploadMetadata:
    """What an upload says about its file, as sent: empty values were not sent.

    Unchecked beyond the wire's length limits: the upload domain parses each
    field and names it in its errors as ``metadata.<field>``.
    """

    sha256: str = ""
    size: int | None = None  # None: not declared (0 declares an empty file)
    upload_id: str = ""  # a resumable upload (StartUpload) that the stream continues
    offset: int = 0  # where the stream continues that upload
    path: str = ""
    replaces: str = ""  # the hash of the song this one replaces
    filename: str = ""
    title: str = ""
    artist: str = ""
    album: str = ""
    album_artist: str = ""
    genre: str = ""
    track: int = 0
    disc: int = 0
    year: int = 0
    duration: int = 0  # seconds


NO_METADATA = UploadMetadata()


class UploadStream(Protocol):
    """One upload's stream: its metadata, then its chunks."""

    async def metadata(self) -> UploadMetadata:
        """Read first, once: NO_METADATA if the stream starts with a chunk."""

    def chunks(self) -> AsyncIterator[Chunk]:
        """The file's bytes, after metadata(): ends with the stream."""


def check_size(size: int, max_file_size: int) -> None:
    """A declared file size (metadata.size, StartUpload's size) the server accepts."""
    if size < 0:
        raise InvalidArgument("size must not be negative")
    if size > max_file_size:
        raise ResourceExhausted(f"the file is larger ({size} bytes) than this server "
                                f"accepts ({max_file_size} bytes)")
