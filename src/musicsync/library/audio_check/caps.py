"""Cheap bounds on a file's structure, checked before mutagen parses it.

mutagen's cost grows with the number of frames, blocks, chunks and atoms a
file declares, and for ID3 with their number times the tag's size (it copies
the rest of the tag after every frame). These walks only read headers and
skip bodies, stop at the first bound crossed, and so take a few hundred reads
at most whatever the file holds. A file over a bound is refused as "too large
or complex to check"; honest songs stay far below every bound (see LIMITS).

The worker process's time and memory limits (see checker.py) remain the
safety net for whatever these walks do not model.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

MiB = 1024 * 1024
# Bytes of tags: an ID3v2 tag (all stacked tags together), FLAC metadata, an
# MP4 moov atom, or the chunks of a WAV file other than its audio data. A
# large cover picture is a few MiB; 16 MiB leaves room for a print-size one.
MAX_TAG_BYTES = 16 * MiB
# ID3v2 frames: a well-tagged song has 20 to 60 (MusicBrainz Picard writes the
# most); mutagen's work grows with frames times tag size.
MAX_ID3_FRAMES = 512
# FLAC metadata blocks: STREAMINFO, SEEKTABLE, VORBIS_COMMENT, PADDING and a
# few PICTUREs in an honest file.
MAX_FLAC_BLOCKS = 256
# RIFF chunks of a WAV file, LIST sub-chunks included: fmt, data, LIST/INFO and
# its texts, id3, bext, cue, JUNK...
MAX_RIFF_CHUNKS = 512
# MP4 atoms in the containers mutagen walks (moov, trak, udta, ilst...): a song
# has 50 to 150, a chaptered audiobook a few hundred.
MAX_MP4_ATOMS = 4096
# Objects in an ASF (WMA) header: about ten.
MAX_ASF_OBJECTS = 256
# Comments in a Vorbis comment block (FLAC): one per tag value.
MAX_VORBIS_COMMENTS = 4096

LIMITS = {
    "tag bytes": MAX_TAG_BYTES, "ID3 frames": MAX_ID3_FRAMES,
    "FLAC metadata blocks": MAX_FLAC_BLOCKS, "WAV chunks": MAX_RIFF_CHUNKS,
    "MP4 atoms": MAX_MP4_ATOMS, "WMA header objects": MAX_ASF_OBJECTS,
    "Vorbis comments": MAX_VORBIS_COMMENTS,
}

_MAX_STACKED_ID3 = 8
_MP4_CONTAINERS = {b"moov", b"udta", b"trak", b"mdia", b"meta", b"ilst", b"stbl", b"minf",
                   b"moof", b"traf"}  # the atoms mutagen descends into (mutagen.mp4._atom)


class TooComplex(Exception):
    """The file declares more structure than the check will parse; the text says what."""


def check_structure(fileobj: BinaryIO, size: int) -> None:
    """Raises TooComplex if the file (``size`` bytes) is over one of the bounds."""
    offset = _id3_tags(fileobj, 0, size)
    fileobj.seek(offset)
    head = fileobj.read(16)
    if head[:4] == b"fLaC":
        _flac(fileobj, offset + 4, size)
    elif head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        _riff(fileobj, offset + 12, size)
    elif head[4:8] == b"ftyp":
        _mp4(fileobj, offset, size)
    elif head[:4] == bytes.fromhex("3026b275"):  # the ASF header GUID's first bytes
        _asf(fileobj, offset, size)


def _too_many(what: str, limit: int) -> TooComplex:
    return TooComplex(f"more than {limit:,} {what}")


def _tag_bytes(total: int, where: str) -> None:
    if total > MAX_TAG_BYTES:
        raise TooComplex(f"{total:,} bytes of tags in {where}, over this server's "
                         f"{MAX_TAG_BYTES // MiB} MiB")


def _syncsafe(raw: bytes) -> int:
    value = 0
    for byte in raw:
        value = value << 7 | byte & 0x7F
    return value


def _id3_tags(fileobj: BinaryIO, offset: int, end: int) -> int:
    """Checks the ID3v2 tags at ``offset`` (stacked ones too); returns where they end."""
    total = 0
    for _ in range(_MAX_STACKED_ID3):
        fileobj.seek(offset)
        header = fileobj.read(10)
        if len(header) < 10 or header[:3] != b"ID3":
            break
        body = _syncsafe(header[6:10])
        total += min(body, end - offset - 10)  # what the file holds, whatever it declares
        _tag_bytes(total, "the ID3 tag")
        _id3_frames(fileobj.read(min(body, end - offset)), header[3], header[5])
        offset += 10 + body + (10 if header[5] & 0x10 else 0)
    return offset


def _id3_frames(body: bytes, version: int, flags: int) -> None:
    """Counts the frames of one ID3v2 tag body, both ways mutagen may read their sizes."""
    if version < 4 and flags & 0x80:  # unsynchronised as a whole: frames are read undone
        body = body.replace(b"\xff\x00", b"\xff")
    if flags & 0x40 and len(body) >= 4 and not body[:4].isalnum():  # an extended header
        # (mutagen takes a frame name there for a header that is missing, as here)
        skip = _syncsafe(body[:4]) if version >= 4 else 4 + int.from_bytes(body[:4], "big")
        body = body[skip:]
    if version == 2:
        walks = [(6, lambda raw: int.from_bytes(raw[3:6], "big"))]
    else:
        # v2.4 sizes are syncsafe, but some taggers write plain ones and mutagen guesses.
        walks = [(10, lambda raw: _syncsafe(raw[4:8])),
                 (10, lambda raw: int.from_bytes(raw[4:8], "big"))]
    for header_size, size_of in walks:
        position = count = 0
        while position + header_size <= len(body):
            raw = body[position:position + header_size]
            if raw[:3].strip(b"\0") == b"":
                break  # padding
            count += 1
            if count > MAX_ID3_FRAMES:
                raise _too_many("frames in the ID3 tag", MAX_ID3_FRAMES)
            position += header_size + size_of(raw)


def _flac(fileobj: BinaryIO, offset: int, end: int) -> None:
    total = 0
    for count in range(1, MAX_FLAC_BLOCKS + 2):
        if count > MAX_FLAC_BLOCKS:
            raise _too_many("FLAC metadata blocks", MAX_FLAC_BLOCKS)
        fileobj.seek(offset)
        header = fileobj.read(4)
        if len(header) < 4:
            return
        kind, length = header[0] & 0x7F, int.from_bytes(header[1:4], "big")
        if kind != 1:  # PADDING is skipped unread
            total += min(length, end - offset - 4)
            _tag_bytes(total, "the FLAC metadata")
        if kind == 4:
            _vorbis_comments(fileobj.read(min(length, 8 + 65536)), length)
        offset += 4 + length
        if header[0] & 0x80 or offset >= end:  # the last block
            return


def _vorbis_comments(start: bytes, length: int) -> None:
    if len(start) < 4:
        return
    vendor = struct.unpack("<I", start[:4])[0]
    if len(start) >= 8 + vendor:
        count = struct.unpack("<I", start[4 + vendor:8 + vendor])[0]
        # Each comment takes 4 bytes or more: a larger count fails to parse, early.
        if min(count, length // 4) > MAX_VORBIS_COMMENTS:
            raise _too_many("Vorbis comments", MAX_VORBIS_COMMENTS)


def _riff(fileobj: BinaryIO, offset: int, end: int) -> None:
    """Walks a WAV file's chunks, and those in its LIST chunks (mutagen reads both)."""
    count = tags = 0
    stack = [end]  # where the chunks being walked end: the file, then enclosing LISTs
    while stack:
        if offset + 8 > stack[-1]:
            offset = stack.pop()
            continue
        fileobj.seek(offset)
        header = fileobj.read(12)
        if len(header) < 8:
            return
        kind, length = header[:4], struct.unpack("<I", header[4:8])[0]
        count += 1
        if count > MAX_RIFF_CHUNKS:
            raise _too_many("chunks in the WAV file", MAX_RIFF_CHUNKS)
        if kind.lower() == b"id3 ":
            _id3_tags(fileobj, offset + 8, min(offset + 8 + length, end))
        if kind != b"data":
            tags += min(length, end - offset - 8)
            _tag_bytes(tags, "the WAV file's chunks")
        following = offset + 8 + length + (length & 1)
        if kind == b"LIST" and length >= 4:
            stack.append(min(following, stack[-1]))
            offset += 12
        else:
            offset = following


def _mp4(fileobj: BinaryIO, offset: int, end: int) -> None:
    """Walks the atoms mutagen reads: top-level ones and those inside its containers."""
    count = 0
    stack = [end]
    while stack:
        if offset + 8 > stack[-1]:
            offset = stack.pop()
            continue
        fileobj.seek(offset)
        header = fileobj.read(16)
        if len(header) < 8:
            return
        length, kind = struct.unpack(">I4s", header[:8])
        start = 8
        if length == 1 and len(header) == 16:  # a 64-bit size follows
            length, start = struct.unpack(">Q", header[8:16])[0], 16
        elif length == 0:  # to the end of the file
            length = stack[-1] - offset
        count += 1
        if count > MAX_MP4_ATOMS:
            raise _too_many("atoms in the MP4 file", MAX_MP4_ATOMS)
        if length < start:
            return  # damaged: mutagen stops here too
        if kind == b"moov":
            _tag_bytes(min(length, end - offset), "the MP4 moov atom")
        if kind in _MP4_CONTAINERS:
            stack.append(min(offset + length, stack[-1]))
            offset += start + (4 if kind == b"meta" else 0)
        else:
            offset += length


def _asf(fileobj: BinaryIO, offset: int, end: int) -> None:
    fileobj.seek(offset + 16)
    header = fileobj.read(12)
    if len(header) == 12:
        size, count = struct.unpack("<QI", header)
        size = min(size, end - offset)
        # Each object takes 24 bytes or more: a larger count fails to parse, early.
        if min(count, size // 24) > MAX_ASF_OBJECTS:
            raise _too_many("objects in the WMA header", MAX_ASF_OBJECTS)
        _tag_bytes(size, "the WMA header")
