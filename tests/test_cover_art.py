"""Cover art: embedded pictures taken at upload, stored once, served (resized) by GetCoverArt."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import struct
import zlib

import grpc
import pytest
from mutagen.asf import ASF, ASFByteArrayAttribute
from mutagen.flac import FLAC, Picture
from mutagen.id3 import APIC, ID3
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4, MP4Cover
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE
from PIL import Image

from musicsync.players.art import CannotResize, resize
from musicsync.proto import auth_pb2, file_pb2, library_pb2, library_pb2_grpc
from musicsync.server import App

from . import audio_samples
from .conftest import PASSWORD, REGISTRATION_KEY, make_settings
from .helpers import Client, query, sha
from .test_maintenance import run_cli, where
from .transfer import stored_blobs, upload


# -- Pictures and songs that carry them -------------------------------------------------

def jpeg(width: int, height: int, color=(200, 40, 40), *, noise: bool = False) -> bytes:
    image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)) \
        if noise else Image.new("RGB", (width, height), color)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95)
    return out.getvalue()


def png_with_alpha(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (10, 200, 10, 128)).save(out, "PNG")
    return out.getvalue()


def png_bomb(side: int = 20000) -> bytes:
    """A PNG that declares side x side pixels (1-bit grey, all zero): ~50 KB that would
    decode to 400 MB."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))
    squeeze = zlib.compressobj(9)
    row = bytes(1 + (side + 7) // 8)
    body = b"".join(squeeze.compress(row) for _ in range(side)) + squeeze.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def _tagged(kind, data: bytes, tag) -> bytes:
    buffer = io.BytesIO(data)
    audio = kind(buffer)
    tag(audio)
    buffer.seek(0)
    audio.save(buffer)
    return buffer.getvalue()


def _apic(picture: bytes, mime: str, kind: int = 3) -> APIC:
    return APIC(encoding=3, mime=mime, type=kind, desc="cover", data=picture)


def _flac_picture(picture: bytes, mime: str) -> Picture:
    block = Picture()
    block.type, block.mime, block.data = 3, mime, picture
    block.width = block.height = 0
    return block


def _asf_picture(picture: bytes, mime: str) -> ASFByteArrayAttribute:
    value = (struct.pack("<BI", 3, len(picture)) + (mime + "\0").encode("utf-16-le")
             + "cover\0".encode("utf-16-le") + picture)
    return ASFByteArrayAttribute(value)


def with_picture(fmt: str, picture: bytes, mime: str = "image/jpeg", *,
                 title: str = "Song") -> bytes:
    """A sample song of ``fmt`` (audio_samples) carrying ``picture`` where its format keeps one."""
    tags = {**audio_samples.TAGS, "title": title}
    if fmt == "mp3":
        return _tagged(MP3, audio_samples.mp3(tags).data,
                       lambda a: a.tags.add(_apic(picture, mime)))
    if fmt == "wav":
        return _tagged(WAVE, audio_samples.wav(tags).data,
                       lambda a: a.tags.add(_apic(picture, mime)))
    if fmt == "aac":  # raw ADTS: the ID3 tag in front of it
        data = audio_samples.adts_aac(tags).data
        tag = ID3(io.BytesIO(data))
        tag.add(_apic(picture, mime))
        out = io.BytesIO()
        tag.save(out)
        return out.getvalue() + data[data.index(b"\xff\xf1"):]
    if fmt == "flac":
        return _tagged(FLAC, audio_samples.flac(tags).data,
                       lambda a: a.add_picture(_flac_picture(picture, mime)))
    if fmt in ("vorbis", "opus"):
        sample = audio_samples.ogg_vorbis(tags) if fmt == "vorbis" else audio_samples.opus(tags)
        encoded = base64.b64encode(_flac_picture(picture, mime).write()).decode()
        return _tagged(OggVorbis if fmt == "vorbis" else OggOpus, sample.data,
                       lambda a: a.tags.__setitem__("metadata_block_picture", [encoded]))
    if fmt == "m4a":
        cover = MP4Cover(picture, MP4Cover.FORMAT_PNG if mime == "image/png"
                         else MP4Cover.FORMAT_JPEG)
        return _tagged(MP4, audio_samples.m4a(tags).data,
                       lambda a: a.tags.__setitem__("covr", [cover]))
    if fmt == "wma":
        return _tagged(ASF, audio_samples.wma(tags).data,
                       lambda a: a.tags.__setitem__("WM/Picture",
                                                    [_asf_picture(picture, mime)]))
    raise ValueError(fmt)


FORMATS = ("mp3", "wav", "aac", "flac", "vorbis", "opus", "m4a", "wma")


# -- Calling GetCoverArt -----------------------------------------------------------------

def art_stub(client: Client) -> library_pb2_grpc.ArtServiceStub:
    return library_pb2_grpc.ArtServiceStub(client.channel)


async def cover(client: Client, *, token: str | None = None, size: int = 0, **which
                ) -> tuple[bytes, list[library_pb2.GetCoverArtResponse]]:
    """The picture's bytes and the messages that carried it."""
    if "album" in which:
        which["album"] = library_pb2.AlbumKey(album_artist=which["album"][0],
                                              album=which["album"][1])
    messages = [m async for m in art_stub(client).GetCoverArt(
        library_pb2.GetCoverArtRequest(size=size, **which), metadata=client.meta(token))]
    return b"".join(m.chunk for m in messages), messages


async def cover_status(client: Client, **kwargs) -> tuple[grpc.StatusCode, str]:
    try:
        await cover(client, **kwargs)
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


def dimensions(data: bytes) -> tuple[str, int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.format, image.width, image.height


async def register(client: Client, username: str) -> str:
    return (await client.auth.Register(auth_pb2.RegisterRequest(
        username=username, password=PASSWORD, security_key=REGISTRATION_KEY))).token


# -- Extraction at upload ----------------------------------------------------------------

async def test_art_is_taken_from_every_format_that_embeds_a_picture(client, alice):
    for index, fmt in enumerate(FORMATS):
        picture = jpeg(40 + index, 30, (index * 30, 20, 20))
        song = with_picture(fmt, picture, title=f"{fmt} song")
        await upload(client, song)
        data, messages = await cover(client, hash=sha(song))
        assert data == picture, fmt
        first = messages[0]
        assert (first.mime_type, first.width, first.height, first.total_size) == \
            ("image/jpeg", 40 + index, 30, len(picture)), fmt


async def test_the_front_cover_wins_over_other_pictures_and_png_keeps_its_type(client, alice):
    back, front = jpeg(20, 20, (0, 0, 255)), png_with_alpha(30, 20)
    song = _tagged(MP3, audio_samples.mp3().data, lambda a: [
        a.tags.add(APIC(encoding=3, mime="image/jpeg", type=4, desc="back", data=back)),
        a.tags.add(_apic(front, "image/jpg"))])  # a wrong MIME type: the bytes say PNG
    await upload(client, song)
    data, messages = await cover(client, hash=sha(song))
    assert data == front and messages[0].mime_type == "image/png"


async def test_songs_of_an_album_share_one_stored_picture(client, alice, settings):
    picture = jpeg(64, 64)
    one = with_picture("mp3", picture, title="One")
    two = with_picture("flac", picture, title="Two")
    await upload(client, one)
    await upload(client, two)
    assert query(settings, "SELECT count(*) FROM art_images") == [(1,)]
    assert {row[0] for row in query(settings, "SELECT art_sha256 FROM library")} == \
        {bytes.fromhex(sha(picture))}
    assert sorted(p.name for p in stored_blobs(settings.data_dir)) == \
        sorted([sha(one), sha(two), sha(picture)])  # the picture once, beside the songs
    data, _ = await cover(client, album=(audio_samples.TAGS["album_artist"],
                                         audio_samples.TAGS["album"]))
    assert data == picture


async def test_pictures_that_are_not_images_or_too_large_are_ignored_not_refused(
        client, alice, settings, caplog):
    not_an_image = os.urandom(5000)
    over_bytes = b"\xff\xd8\xff\xe0" + os.urandom(8 * 1024 * 1024 + 10)
    songs = [with_picture("mp3", not_an_image, title="random"),
             with_picture("flac", png_bomb(), "image/png", title="bomb"),
             with_picture("m4a", jpeg(9000, 16), title="too wide"),
             with_picture("mp3", over_bytes, title="too big")]
    caplog.set_level("INFO", logger="musicsync.library.audio_check.checker")
    for song in songs:
        response = await upload(client, song)  # stored: the picture is no upload's failure
        assert response.hash == sha(song)
        assert await cover_status(client, hash=sha(song)) == \
            (grpc.StatusCode.NOT_FOUND, "this song has no cover art")
    assert query(settings, "SELECT count(*) FROM art_images") == [(0,)]
    assert query(settings, "SELECT count(*) FROM library WHERE art_sha256 IS NOT NULL") == [(0,)]
    logged = caplog.text
    assert "not a JPEG, PNG, GIF, WebP or BMP image" in logged
    assert "20000x20000" in logged and "9000x16" in logged and "over 8 MiB" in logged


async def test_a_song_without_a_picture_has_no_cover_art(client, alice):
    song = audio_samples.mp3().data
    await upload(client, song)
    assert await cover_status(client, hash=sha(song)) == \
        (grpc.StatusCode.NOT_FOUND, "this song has no cover art")
    assert (await cover_status(client, hash="ab" * 32))[0] == grpc.StatusCode.NOT_FOUND
    code, message = await cover_status(client, album=(audio_samples.TAGS["album_artist"],
                                                      audio_samples.TAGS["album"]))
    assert code == grpc.StatusCode.NOT_FOUND and "no song of this album has cover art" in message
    code, message = await cover_status(client, album=("Nobody", "Nothing"))
    assert code == grpc.StatusCode.NOT_FOUND and "no album" in message


async def test_replace_sets_the_new_contents_art_and_a_song_without_art_loses_it(client, alice):
    first, second = jpeg(32, 32, (255, 0, 0)), jpeg(48, 32, (0, 255, 0))
    old = with_picture("mp3", first, title="v1")
    new = with_picture("mp3", second, title="v2")
    bare = audio_samples.mp3({**audio_samples.TAGS, "title": "v3"}).data
    await upload(client, old)
    await upload(client, new, file_pb2.FileMetadata(replaces=sha(old)))
    assert (await cover(client, hash=sha(new)))[0] == second
    await upload(client, bare, file_pb2.FileMetadata(replaces=sha(new)))
    assert await cover_status(client, hash=sha(bare)) == \
        (grpc.StatusCode.NOT_FOUND, "this song has no cover art")


# -- GetCoverArt ---------------------------------------------------------------------------

async def test_resized_art_has_the_requested_longest_side_and_keeps_the_aspect_ratio(
        client, alice):
    wide, tall = jpeg(600, 300), png_with_alpha(120, 480)
    for picture, title in ((wide, "wide"), (tall, "tall")):
        await upload(client, with_picture("mp3", picture, title=title))
    data, messages = await cover(client, hash=sha(with_picture("mp3", wide, title="wide")),
                                 size=100)
    assert dimensions(data) == ("JPEG", 100, 50)
    assert (messages[0].mime_type, messages[0].width, messages[0].height,
            messages[0].total_size) == ("image/jpeg", 100, 50, len(data))
    data, messages = await cover(client, hash=sha(with_picture("mp3", tall, title="tall")),
                                 size=240)
    assert dimensions(data) == ("PNG", 60, 240)  # transparency kept: a PNG
    assert messages[0].mime_type == "image/png"
    # Never enlarged: a size beyond the picture's answers it as stored.
    data, messages = await cover(client, hash=sha(with_picture("mp3", wide, title="wide")),
                                 size=2048)
    assert data == wide and (messages[0].width, messages[0].height) == (600, 300)


async def test_the_second_request_of_a_size_is_served_from_the_cache(client, alice, settings):
    picture = jpeg(400, 400, noise=True)
    song = with_picture("mp3", picture)
    await upload(client, song)
    first, _ = await cover(client, hash=sha(song), size=64)
    rows = query(settings, "SELECT size, sha256, width, height, bytes FROM art_resized")
    assert rows == [(64, bytes.fromhex(sha(first)), 64, 64, len(first))]
    assert sha(first) in {p.name for p in stored_blobs(settings.data_dir)}
    second, _ = await cover(client, hash=sha(song), size=64)
    assert second == first
    assert len(query(settings, "SELECT * FROM art_resized")) == 1


async def test_chunks_are_at_most_256_kib_and_the_first_message_says_what_follows(
        client, alice):
    picture = jpeg(1000, 800, noise=True)
    assert len(picture) > 600 * 1024
    song = with_picture("mp3", picture)
    await upload(client, song)
    data, messages = await cover(client, hash=sha(song))
    assert data == picture and len(messages) >= 3
    assert all(len(m.chunk) <= 256 * 1024 for m in messages)
    assert messages[0].total_size == len(picture) and messages[0].mime_type == "image/jpeg"
    assert all(m.total_size == 0 and m.mime_type == "" for m in messages[1:])


async def test_bad_requests_are_invalid_argument_naming_the_bound(client, alice):
    song = with_picture("mp3", jpeg(32, 32))
    await upload(client, song)
    for size in (8, 4096, -1):
        code, message = await cover_status(client, hash=sha(song), size=size)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "16 to 2048" in message
    assert (await cover_status(client))[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert (await cover_status(client, hash="nothex"))[0] == grpc.StatusCode.INVALID_ARGUMENT
    code, message = await cover_status(client, album=("x" * 1025, "y"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "1024" in message


async def test_another_users_song_or_album_is_not_found(client, alice):
    picture = jpeg(32, 32)
    song = with_picture("mp3", picture)
    await upload(client, song)
    bob = await register(client, "bob")
    assert (await cover_status(client, token=bob, hash=sha(song)))[0] == \
        grpc.StatusCode.NOT_FOUND
    code, message = await cover_status(client, token=bob, album=(
        audio_samples.TAGS["album_artist"], audio_samples.TAGS["album"]))
    assert code == grpc.StatusCode.NOT_FOUND and "no album" in message
    # Bob's own copy of the same song shows him the same (shared) picture.
    await upload(client, song, token=bob)
    assert (await cover(client, token=bob, hash=sha(song)))[0] == picture


async def test_a_picture_too_large_to_decode_is_refused_at_resize_and_served_as_stored(
        client, alice):
    out = io.BytesIO()
    Image.new("RGBA", (4000, 4000), (1, 2, 3, 4)).save(out, "PNG")  # 62 MiB decoded
    picture = out.getvalue()
    song = with_picture("mp3", picture, "image/png")
    await upload(client, song)
    code, message = await cover_status(client, hash=sha(song), size=64)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "size 0" in message
    assert (await cover(client, hash=sha(song)))[0] == picture


def test_a_picture_whose_header_declares_too_many_pixels_is_refused_before_decoding():
    with pytest.raises(CannotResize, match="pixels"):  # Pillow says it first
        resize(png_bomb(), 64)
    with pytest.raises(CannotResize):
        resize(jpeg(64, 64)[:200], 32)  # damaged: cut short


# -- Maintenance -----------------------------------------------------------------------------

async def test_gc_and_fsck_leave_art_alone_and_gc_removes_art_no_song_links(
        client, alice, settings, capsys):
    picture = jpeg(300, 200, noise=True)
    song = with_picture("mp3", picture)
    await upload(client, song)
    resized, _ = await cover(client, hash=sha(song), size=50)
    code, out = await run_cli(capsys, "gc", "--grace", "0s", *where(settings))
    assert code == 0 and "removed 0 unreferenced blobs" in out, out
    code, out = await run_cli(capsys, "fsck", "--grace", "0s", *where(settings))
    assert code == 0 and "all is well" in out and "3 blobs" in out, out
    assert (await cover(client, hash=sha(song)))[0] == picture

    await client.file.Delete(file_pb2.DeleteRequest(hash=sha(song)), metadata=client.meta())
    code, out = await run_cli(capsys, "gc", "--grace", "0s", *where(settings))
    assert code == 0 and f"removed blob {sha(picture)}" in out and \
        f"removed blob {sha(resized)}" in out, out
    assert stored_blobs(settings.data_dir) == []
    assert query(settings, "SELECT count(*) FROM art_images") == [(0,)]
    assert query(settings, "SELECT count(*) FROM art_resized") == [(0,)]


async def test_gc_leaves_a_fresh_unlinked_picture_for_its_grace_period(
        client, alice, settings, capsys):
    picture = jpeg(32, 32)
    song = with_picture("mp3", picture)
    await upload(client, song)
    await client.file.Delete(file_pb2.DeleteRequest(hash=sha(song)), metadata=client.meta())
    code, out = await run_cli(capsys, "gc", *where(settings))  # the default hour
    assert code == 0 and "removed 0 unreferenced blobs" in out, out
    assert query(settings, "SELECT count(*) FROM art_images") == [(1,)]
    await upload(client, song)  # linked again: the same picture
    code, out = await run_cli(capsys, "gc", "--grace", "0s", *where(settings))
    assert code == 0 and "removed 0 unreferenced blobs" in out, out
    assert (await cover(client, hash=sha(song)))[0] == picture


async def test_fsck_repair_unlinks_a_lost_picture_and_drops_a_lost_resized_copy(
        client, alice, settings, capsys):
    picture = jpeg(200, 100, noise=True)
    song = with_picture("mp3", picture)
    await upload(client, song)
    resized, _ = await cover(client, hash=sha(song), size=40)
    for digest in (sha(picture), sha(resized)):
        next(p for p in stored_blobs(settings.data_dir) if p.name == digest).unlink()
    code, out = await run_cli(capsys, "fsck", "--repair", "--grace", "0s", *where(settings))
    assert code == 1 and out.count("missing-art") == 2, out
    assert "unlinked from 1 songs" in out
    assert await cover_status(client, hash=sha(song)) == \
        (grpc.StatusCode.NOT_FOUND, "this song has no cover art")
    code, out = await run_cli(capsys, "fsck", "--grace", "0s", *where(settings))
    assert code == 0 and "all is well" in out, out


async def test_art_in_s3_is_stored_once_served_and_kept_by_gc(tmp_path, s3_server, s3_bucket,
                                                                capsys):
    s3 = s3_server.settings(s3_bucket)
    settings = make_settings(tmp_path / "data", **s3)
    flags = [*where(settings), "--s3-endpoint", s3["s3_endpoint"],
             "--s3-access-key", s3["s3_access_key"], "--s3-secret-key", s3["s3_secret_key"],
             "--s3-bucket", s3_bucket, "--grace", "0s"]
    picture = jpeg(300, 150, noise=True)
    one, two = (with_picture("mp3", picture, title=t) for t in ("one", "two"))
    async with App(settings) as app, Client(app) as client:
        client.token = await register(client, "alice")
        await upload(client, one)
        await upload(client, two)
        resized, _ = await cover(client, hash=sha(one), size=30)
        assert dimensions(resized)[1:] == (30, 15)
        objects = {o.object_name for o in s3_server.client().list_objects(
            s3_bucket, prefix="blobs/", recursive=True)}
        assert {f"blobs/{sha(picture)}", f"blobs/{sha(resized)}"} <= objects
        code, out = await run_cli(capsys, "gc", *flags)
        assert code == 0 and "removed 0 unreferenced blobs" in out, out
        code, out = await run_cli(capsys, "fsck", *flags)
        assert code == 0 and "all is well" in out, out
        assert (await cover(client, hash=sha(two)))[0] == picture
        assert (await cover(client, hash=sha(two), size=30))[0] == resized  # cached
        for song in (one, two):
            await client.file.Delete(file_pb2.DeleteRequest(hash=sha(song)),
                                     metadata=client.meta())
        code, out = await run_cli(capsys, "gc", *flags)
        assert code == 0 and f"removed blob {sha(picture)}" in out, out
        assert not list(s3_server.client().list_objects(s3_bucket, prefix="blobs/",
                                                        recursive=True))
