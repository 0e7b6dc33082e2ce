"""What an embedded cover picture is, from its first bytes: format and pixel size.

Read from the headers alone (no decoding, a few hundred bytes looked at for a
JPEG's markers at most), so the audio check's worker can refuse a picture
that is not an image, or whose declared size would take hundreds of MiB to
decode (a "decompression bomb"), before anything keeps it. Pure Python, no
imports of the server's: the worker process loads it (see __init__.py).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MiB = 1024 * 1024
MAX_PICTURE_BYTES = 8 * MiB  # a print-size scan of a cover is 2 to 5 MiB
MAX_PICTURE_SIDE = 8192  # pixels, either side
MAX_PICTURE_PIXELS = 32 * 1024 * 1024  # width x height (8192 x 4096; 128 MiB as RGBA)
PICTURE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp"})
_MAX_JPEG_SEGMENTS = 512  # markers walked before the frame header; real files have < 20


@dataclass(frozen=True)
class PictureHeader:
    mime_type: str
    width: int
    height: int


class NotAPicture(Exception):
    """The bytes are not a picture we keep; the text says why (for the server's log)."""


def inspect(data: bytes) -> PictureHeader:
    """The format and size of a JPEG, PNG, GIF, WebP or BMP; NotAPicture otherwise, or
    when it is over MAX_PICTURE_BYTES, MAX_PICTURE_SIDE or MAX_PICTURE_PIXELS."""
    if len(data) > MAX_PICTURE_BYTES:
        raise NotAPicture(f"{len(data):,} bytes, over {MAX_PICTURE_BYTES // MiB} MiB")
    header = _header(data)
    if header is None:
        raise NotAPicture(f"not a JPEG, PNG, GIF, WebP or BMP image (starts {data[:8].hex()})")
    if header.width <= 0 or header.height <= 0:
        raise NotAPicture(f"a {header.mime_type} without a size")
    if max(header.width, header.height) > MAX_PICTURE_SIDE \
            or header.width * header.height > MAX_PICTURE_PIXELS:
        raise NotAPicture(f"a {header.mime_type} of {header.width}x{header.height} pixels, "
                          f"over {MAX_PICTURE_SIDE} a side or {MAX_PICTURE_PIXELS:,} in all")
    return header


def _header(data: bytes) -> PictureHeader | None:
    try:
        if data[:3] == b"\xff\xd8\xff":
            return _jpeg(data)
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            width, height = struct.unpack(">II", data[16:24])
            return PictureHeader("image/png", width, height)
        if data[:6] in (b"GIF87a", b"GIF89a"):
            width, height = struct.unpack("<HH", data[6:10])
            return PictureHeader("image/gif", width, height)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp(data)
        if data[:2] == b"BM":
            width, height = struct.unpack("<ii", data[18:26])
            return PictureHeader("image/bmp", width, abs(height))  # negative: top-down rows
    except struct.error:  # cut short
        return None
    return None


def _jpeg(data: bytes) -> PictureHeader | None:
    """Walks the markers to the first frame header (SOFn), which holds the size."""
    position = 2
    for _ in range(_MAX_JPEG_SEGMENTS):
        while position < len(data) and data[position] == 0xFF:  # fill bytes
            position += 1
        if position >= len(data):
            return None
        marker = data[position]
        position += 1
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            continue
        length = struct.unpack(">H", data[position:position + 2])[0]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB,
                      0xCD, 0xCE, 0xCF):
            height, width = struct.unpack(">HH", data[position + 3:position + 7])
            return PictureHeader("image/jpeg", width, height)
        if marker in (0xD9, 0xDA) or length < 2:  # end of image, or scan data before a frame
            return None
        position += length
    return None


def _webp(data: bytes) -> PictureHeader | None:
    kind = data[12:16]
    if kind == b"VP8X":  # extended: 24-bit sizes minus one
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
    elif kind == b"VP8 ":  # lossy: after a 3-byte frame tag and the start code
        if data[23:26] != b"\x9d\x01\x2a":
            return None
        width, height = (value & 0x3FFF for value in struct.unpack("<HH", data[26:30]))
    elif kind == b"VP8L":  # lossless: 14-bit sizes minus one after a signature byte
        if data[20] != 0x2F:
            return None
        bits = int.from_bytes(data[21:25], "little")
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    else:
        return None
    return PictureHeader("image/webp", width, height)
