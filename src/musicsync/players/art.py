"""Cover art: a song's or an album's embedded picture, as stored or resized (GetCoverArt).

Pictures are taken from the songs at upload (library/audio_check: checked to be a
JPEG, PNG, GIF, WebP or BMP of at most 8 MiB and 8192 pixels a side, 32 Mpx in
all), stored once by their SHA-256 in the blob store (art_images) and linked from
the songs (library.art_sha256): an album's songs share one.

A size (16 to 2048) asks for the picture scaled so that its longest side is that
many pixels: the aspect ratio kept, never enlarged, a JPEG (a PNG when the
picture has transparency). Each resized copy is kept (art_resized and the blob
store) and served from there next time. Resizing is Pillow's work, imported on
the first resize only, in a thread (it blocks), one picture at a time (a
picture decodes to up to MAX_DECODED_BYTES), and only after the picture's header
has been checked against the bounds again: a picture whose header lies (a
"decompression bomb") is refused before it is decoded.

Songs and albums are looked up in the caller's library only.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db.dialect import insert_for
from ..db.models import ArtImage, ArtResized, LibraryEntry
from ..errors import (DataLoss, FailedPrecondition, InvalidArgument, NotFound,
                      StorageFull, StorageUnavailable, Unavailable)
from ..library.audio_check.pictures import MAX_PICTURE_PIXELS, MAX_PICTURE_SIDE
from ..library.files import NOT_IN_LIBRARY, parse_hash
from ..storage import BlobMissing
from .context import PlayerContext

log = logging.getLogger(__name__)

MIN_SIZE, MAX_SIZE = 16, 2048  # pixels, the longest side of a resized copy
CHUNK_BYTES = 256 * 1024  # of a GetCoverArt message
RESIZES_AT_ONCE = 1  # each may hold a large picture decoded in memory
# A picture decoded for a resize, at the scale it decodes at (a JPEG at 1/2 to 1/8 of
# its size when that still covers the size asked): 12 Mpx of RGB(A), 48 Mpx of grey.
# Only a flat-coloured PNG, GIF, WebP or BMP fits 8 MiB and is larger; it is served
# as stored (size 0) only. A resize peaks at about twice this.
MAX_DECODED_BYTES = 48 * 1024 * 1024
JPEG_QUALITY = 85
NO_ART = "this song has no cover art"
_SERVED_AS_STORED = ("image/jpeg", "image/png")  # at its own size, no need to re-encode
_SCALED_AS_THEY_ARE = ("RGB", "RGBA", "L", "LA")  # Pillow modes thumbnail() handles well


@dataclass(frozen=True)
class Picture:
    """A stored picture: the blob store's object, what it is, its size in bytes."""

    sha256: bytes
    mime_type: str
    width: int
    height: int
    size: int


class CannotResize(Exception):
    """The picture's bytes are not what its header says (damaged, or a bomb)."""


def check_size(size: int) -> int:
    if size != 0 and not MIN_SIZE <= size <= MAX_SIZE:
        raise InvalidArgument(f"size must be 0 (the picture as stored) or {MIN_SIZE} to "
                              f"{MAX_SIZE} pixels (got {size})")
    return size


class CoverArt:
    """Finds, resizes (once per size) and reads the cover pictures of a user's songs."""

    def __init__(self, context: PlayerContext) -> None:
        self._context = context
        self._resizing = asyncio.Semaphore(RESIZES_AT_ONCE)

    async def of_song(self, user_id: int, hash_text: str) -> Picture:
        """The picture of the user's song; NotFound if it has none, or is not theirs."""
        sha = parse_hash(hash_text)

        def find(session: Session):
            return session.execute(
                select(LibraryEntry.id, ArtImage)
                .outerjoin(ArtImage, ArtImage.sha256 == LibraryEntry.art_sha256)
                .where(LibraryEntry.user_id == user_id, LibraryEntry.sha256 == sha)).first()
        row = await self._context.db.quick_read(find)
        if row is None:
            raise NotFound(NOT_IN_LIBRARY)
        if row[1] is None:
            raise NotFound(NO_ART)
        return _picture(row[1])

    async def of_album(self, user_id: int, album_artist: str, album: str) -> Picture:
        """The picture of the album's first song (by disc, track, path) that has one."""
        def find(session: Session):
            songs = select(LibraryEntry).where(LibraryEntry.user_id == user_id,
                                               LibraryEntry.album_artist == album_artist,
                                               LibraryEntry.album == album)
            art = session.scalar(
                select(ArtImage).join(LibraryEntry, LibraryEntry.art_sha256 == ArtImage.sha256)
                .where(LibraryEntry.user_id == user_id,
                       LibraryEntry.album_artist == album_artist, LibraryEntry.album == album)
                .order_by(LibraryEntry.disc, LibraryEntry.track, LibraryEntry.path).limit(1))
            if art is not None:
                return art
            return session.scalar(select(songs.exists()))
        found = await self._context.db.quick_read(find)
        if isinstance(found, ArtImage):
            return _picture(found)
        if found:
            raise NotFound("no song of this album has cover art")
        raise NotFound("no album of your library has this album_artist and album")

    async def read(self, picture: Picture, size: int) -> tuple[Picture, AsyncIterator[bytes]]:
        """The picture as asked (``size`` 0: as stored; else resized, see the module) and
        its bytes in chunks of at most CHUNK_BYTES."""
        store = self._context.store
        if store is None:
            raise Unavailable("cover art is served beside the file service")
        if size == 0 or (max(picture.width, picture.height) <= size
                         and picture.mime_type in _SERVED_AS_STORED):
            return picture, self._chunks(picture, original=True)
        resized = await self._cached(picture.sha256, size)
        if resized is None:
            async with self._resizing:
                resized = await self._cached(picture.sha256, size)  # made while we waited?
                if resized is None:
                    resized = await self._resize(picture, size)
        return resized, self._chunks(resized, original=False)

    async def _cached(self, art_sha: bytes, size: int) -> Picture | None:
        row = await self._context.db.quick_read(lambda session: session.get(
            ArtResized, (art_sha, size)))
        if row is None:
            return None
        if await self._context.store.size(row.sha256.hex()) != row.bytes:
            return None  # lost: made again (and its row kept)
        return Picture(row.sha256, row.mime_type, row.width, row.height, row.bytes)

    async def _resize(self, picture: Picture, size: int) -> Picture:
        store = self._context.store
        original = await self._original_bytes(picture)
        try:
            data, mime, width, height = await asyncio.to_thread(resize, original, size)
        except CannotResize as exc:
            log.warning("cover picture %s cannot be resized: %s", picture.sha256.hex(), exc)
            raise FailedPrecondition("this cover picture cannot be resized (it is damaged, "
                                     "or too large to decode); ask for size 0 to get it as "
                                     "stored") from None
        del original
        resized = Picture(hashlib.sha256(data).digest(), mime, width, height, len(data))
        try:
            staged = await store.stage(resized.sha256.hex())
            try:
                await staged.write([data])
                await staged.commit()
            finally:
                await staged.abort()
        except (StorageUnavailable, StorageFull) as exc:
            log.warning("could not keep a resized cover picture: %s", exc)
            return _in_memory(resized, data)

        def remember(session: Session) -> None:
            if session.get(ArtImage, picture.sha256) is None:
                return  # `musicsync gc` removed the picture meanwhile: gc takes the copy too
            session.execute(insert_for(session)(ArtResized.__table__).values(
                art_sha256=picture.sha256, size=size, sha256=resized.sha256, mime_type=mime,
                width=width, height=height, bytes=len(data))
                .on_conflict_do_nothing(index_elements=["art_sha256", "size"]))
        await self._context.db.grouped_write(remember)
        return _in_memory(resized, data)

    async def _original_bytes(self, picture: Picture) -> bytes:
        parts = []
        try:
            async for block in self._context.store.read(picture.sha256.hex()):
                parts.append(block)
        except BlobMissing:
            raise _lost(picture) from None
        return b"".join(parts)

    async def _chunks(self, picture: Picture, *, original: bool) -> AsyncIterator[bytes]:
        if isinstance(picture, _InMemory):
            for start in range(0, len(picture.data), CHUNK_BYTES):
                yield picture.data[start:start + CHUNK_BYTES]
            return
        try:
            async for block in self._context.store.read(picture.sha256.hex()):
                view = memoryview(block)
                for start in range(0, len(view), CHUNK_BYTES):
                    yield bytes(view[start:start + CHUNK_BYTES])
        except BlobMissing:
            raise _lost(picture) if original else Unavailable(
                "the resized copy went while it was read; ask again") from None


@dataclass(frozen=True)
class _InMemory(Picture):
    """A picture just made, served from memory (it is stored too, when the store took it)."""

    data: bytes = b""


def _in_memory(picture: Picture, data: bytes) -> _InMemory:
    return _InMemory(picture.sha256, picture.mime_type, picture.width, picture.height,
                     picture.size, data)


def _picture(row: ArtImage) -> Picture:
    return Picture(row.sha256, row.mime_type, row.width, row.height, row.size)


def _lost(picture: Picture) -> DataLoss:
    log.error("cover picture %s is missing from the blob store; run `musicsync fsck`",
              picture.sha256.hex())
    return DataLoss("the server has lost this cover picture; upload the song again")


def resize(data: bytes, size: int) -> tuple[bytes, str, int, int]:
    """``data`` scaled so its longest side is at most ``size`` (aspect kept, never
    enlarged): the bytes, MIME type, width and height. JPEG, or PNG for a picture with
    transparency. CannotResize if it is damaged or larger than its bounds (checked from
    its header, before anything is decoded). Blocks: run it in a thread."""
    from PIL import Image  # only here: an idle server never loads Pillow

    # Pillow's own bomb check, a second line behind ours (it raises at twice this).
    Image.MAX_IMAGE_PIXELS = MAX_PICTURE_PIXELS
    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            width, height = image.size
            if max(width, height) > MAX_PICTURE_SIDE or width * height > MAX_PICTURE_PIXELS:
                raise CannotResize(f"{width}x{height} pixels, over the bounds")
            alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
                image.mode == "P" and "transparency" in image.info)
            image.draft("RGB", (size, size))  # a JPEG decodes at 1/2 to 1/8 scale if it can
            decoded = image.width * image.height * (4 if len(image.getbands()) > 1 else 1)
            if decoded > MAX_DECODED_BYTES:
                raise CannotResize(f"{width}x{height} pixels would take {decoded >> 20} MiB "
                                   f"decoded, over {MAX_DECODED_BYTES >> 20} MiB")
            target = "RGBA" if alpha else "RGB"
            if image.mode in _SCALED_AS_THEY_ARE:
                # Scaled first (decoded once, reduced in place), converted when small: a
                # conversion first would hold a second full-size copy.
                image.thumbnail((size, size), Image.Resampling.LANCZOS)
                frame = image.convert(target)
            else:  # palette, CMYK, 1-bit...: Pillow scales these poorly or not at all
                frame = image.convert(target)
                frame.thumbnail((size, size), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        if alpha:
            frame.save(out, "PNG", optimize=True)
        else:
            frame.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    except CannotResize:
        raise
    except MemoryError:
        raise CannotResize("out of memory while decoding") from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds for damaged data
        raise CannotResize(f"{type(exc).__name__}: {exc}") from None
    return out.getvalue(), "image/png" if alpha else "image/jpeg", frame.width, frame.height
