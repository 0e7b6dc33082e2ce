"""A seekable reader over bytes fetched a range at a time.

For parsers such as mutagen that seek around a file which is not a local file:
a staged blob's parts in S3, or the file under check as the audio worker reads
it from the server. Subclasses say how to fetch a range; this class keeps the
position. It imports nothing but ``io``, so the audio worker can use it.
"""

from __future__ import annotations

import io


class RangedReader(io.RawIOBase):
    """Random access to ``size`` bytes that ``_read_at`` fetches a piece at a time."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise OSError(22, "negative seek position")
        self._position = base + offset
        return self._position

    def readinto(self, buffer) -> int:
        length = min(len(buffer), self._size - self._position)
        if length <= 0:
            return 0
        data = self._read_at(self._position, length)
        buffer[:len(data)] = data
        self._position += len(data)
        return len(data)

    def _read_at(self, position: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``position`` (at least one: ``position`` is inside)."""
        raise NotImplementedError
