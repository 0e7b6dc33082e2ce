"""The song bytes on the wire: UploadRequest chunks in, DownloadResponse chunks out.

A song crosses the File service as thousands of messages that each hold one
``bytes`` field. Through protobuf, every chunk is copied twice on the way in
(parsing into the message, then reading ``.chunk``) and twice on the way out
(building the message, then serializing it); and protobuf ``bytes`` fields
take no memoryview, so a slice of a larger read is one more copy. For these
two messages only, this module does the framing itself:

- ``upload_request``: a message that holds nothing but ``chunk`` (field 2,
  length-delimited) -- every chunk message a client sends -- comes back as a
  memoryview of the received bytes, without a copy. Anything else (metadata,
  an empty message, unknown fields, several fields) goes through protobuf, so
  every valid encoding still means what it did.
- ``download_response``: a ``Chunk`` (bytes or a memoryview, and the total
  size for the first message) becomes the encoded message with one copy;
  DownloadResponse messages are still serialized by protobuf.

The framing is protobuf's: a tag (field number << 3 | wire type), then for
length-delimited fields a varint length and the bytes, and for int64 fields a
varint value. tests/test_wire.py checks both directions against protobuf.
"""

from __future__ import annotations

from typing import NamedTuple

from ..proto import file_pb2

_CHUNK_TAG_IN = 2 << 3 | 2  # UploadRequest.chunk: field 2, length-delimited
_CHUNK_TAG_OUT = bytes([1 << 3 | 2])  # DownloadResponse.chunk: field 1, length-delimited
_TOTAL_TAG_OUT = bytes([2 << 3 | 0])  # DownloadResponse.total_size: field 2, varint
_MAX_VARINT_BYTES = 10


class Chunk(NamedTuple):
    """A DownloadResponse to encode without copying ``data`` into a message first."""

    data: bytes | memoryview
    total_size: int = 0


def upload_request(data: bytes) -> file_pb2.UploadRequest | memoryview:
    """An UploadRequest from the wire: a chunk-only message as a view of its chunk."""
    if data[:1] == b"\x12":  # _CHUNK_TAG_IN
        length, start = _read_varint(data, 1)
        if length >= 0 and start + length == len(data):
            return memoryview(data)[start:]
    return file_pb2.UploadRequest.FromString(data)


def download_response(message: Chunk | file_pb2.DownloadResponse) -> bytes:
    """The encoded DownloadResponse."""
    if not isinstance(message, Chunk):
        return message.SerializeToString()
    data, total_size = message
    parts = [_CHUNK_TAG_OUT, _varint(len(data)), data] if len(data) else []
    if total_size:
        parts += [_TOTAL_TAG_OUT, _varint(total_size)]
    return b"".join(parts)


def _read_varint(data: bytes, position: int) -> tuple[int, int]:
    """The varint at ``position`` and the position after it; (-1, 0) if malformed."""
    value = shift = 0
    for index in range(position, min(position + _MAX_VARINT_BYTES, len(data))):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, index + 1
        shift += 7
    return -1, 0


def _varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
