"""Bounded strings: what a client sends is limited, and no stored row makes an answer too big."""

from __future__ import annotations

import sqlite3

import grpc
import pytest
from google.protobuf import empty_pb2

from musicsync.limits import (
    MAX_FILENAME_BYTES,
    MAX_TAG_CHARS,
    PAGE_BUDGET_BYTES,
)
from musicsync.proto import auth_pb2, file_pb2, sync_pb2

from .audio_samples import TAGS, mp3
from .helpers import status_of
from .transfer import upload, wav_bytes

CLIENT_LIMIT = 4 * 1024 * 1024
# Four bytes of UTF-8 each: the most a character can weigh in an answer.
HEAVY = "\U0001d11e"


async def listed(client) -> list[file_pb2.FileEntry]:
    files = []
    async for response in list_pages(client):
        files.extend(response.files)
    return files


async def list_pages(client):
    token = ""
    while True:
        response = await client.sync.ListFiles(sync_pb2.ListFilesRequest(
            page_size=1000, page_token=token), metadata=client.meta())
        assert response.ByteSize() < CLIENT_LIMIT
        yield response
        token = response.next_page_token
        if not token:
            return


@pytest.mark.parametrize("field", ["title", "artist", "album", "album_artist", "genre"])
async def test_upload_with_a_tag_over_the_limit_is_invalid_argument_naming_it(
        client, alice, field):
    metadata = file_pb2.FileMetadata(filename="a.wav", **{field: "x" * 1_000_000})
    code, message = await status_of(upload(client, wav_bytes(1), metadata))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert f"metadata.{field}" in message and str(MAX_TAG_CHARS) in message
    assert await listed(client) == []
    # At the limit it is stored as sent.
    metadata = file_pb2.FileMetadata(filename="a.wav", **{field: "x" * MAX_TAG_CHARS})
    assert getattr((await upload(client, wav_bytes(1), metadata)).file, field) == \
        "x" * MAX_TAG_CHARS


async def test_retagging_a_stored_song_with_an_oversized_tag_is_invalid_argument(client, alice):
    sha = (await upload(client, wav_bytes(1))).hash
    code, message = await status_of(upload(client, b"", file_pb2.FileMetadata(
        sha256=sha, title="x" * (MAX_TAG_CHARS + 1))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "metadata.title" in message


@pytest.mark.parametrize("filename, what", [
    ("a" * (MAX_FILENAME_BYTES - 3) + "é.wav", "255 bytes"),  # 256 bytes of UTF-8
    ("music/" * 700 + "a.wav", "4096 bytes")])
async def test_upload_with_a_filename_over_the_limit_is_invalid_argument(
        client, alice, filename, what):
    code, message = await status_of(upload(client, wav_bytes(1), file_pb2.FileMetadata(
        filename=filename)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "metadata.filename" in message and what in message


async def test_a_long_path_with_a_short_name_is_accepted(client, alice):
    response = await upload(client, wav_bytes(1), file_pb2.FileMetadata(
        filename="music/" * 100 + "a.wav"))
    assert response.file.filename == "a.wav"


async def test_tags_read_from_the_file_are_clipped_to_the_limit(client, alice):
    song = mp3(dict(TAGS, title="t" * 100_000, artist=HEAVY * 5000))
    response = await upload(client, song.data)
    assert response.file.title == "t" * MAX_TAG_CHARS
    assert response.file.artist == HEAVY * MAX_TAG_CHARS
    assert response.file.album == TAGS["album"]


@pytest.mark.parametrize("rpc, field, value", [
    ("Login", "username", "u" * 257), ("Login", "password", "p" * 1025),
    ("Register", "security_key", "k" * 1025), ("Refresh", "refresh_token", "r" * 1025),
    ("Logout", "refresh_token", "r" * 1025)])
async def test_auth_strings_over_their_limit_are_invalid_argument(client, rpc, field, value):
    request = getattr(auth_pb2, f"{rpc}Request")(**{field: value})
    if rpc == "Register":
        request.username, request.password = "bob", "long enough password"
    code, message = await status_of(getattr(client.auth, rpc)(request))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and field in message


def oversize_stored_rows(data_dir, huge_title: str) -> None:
    """What an old server may have stored: tags far over today's limits."""
    with sqlite3.connect(data_dir / "musicsync.db") as db:
        heavy = HEAVY * (2 * MAX_TAG_CHARS)
        db.execute("UPDATE library SET title = ?, artist = ?, album = ?, album_artist = ?, "
                   "genre = ?, filename = ?", (heavy, heavy, heavy, heavy, heavy, "é" * 300))
        db.execute("UPDATE library SET title = ? WHERE id = (SELECT min(id) FROM library)",
                   (huge_title,))


async def test_oversized_stored_rows_are_clipped_and_paged_without_skipping_or_repeating(
        app, client, alice):
    hashes = [(await upload(client, wav_bytes(0.1, salt=b"song%d" % n))).hash
              for n in range(60)]
    oversize_stored_rows(app.settings.data_dir, "t" * 1_000_000)

    pages = [page async for page in list_pages(client)]
    assert len(pages) >= 2  # 60 entries of ~20 KB pass the page budget
    files = [f for page in pages for f in page.files]
    assert [f.hash for f in files] == hashes
    assert all(page.ByteSize() <= PAGE_BUDGET_BYTES + 64 * 1024 for page in pages)
    assert files[0].title == "t" * MAX_TAG_CHARS
    assert files[1].title == HEAVY * MAX_TAG_CHARS and files[1].genre == HEAVY * MAX_TAG_CHARS
    assert len(files[1].filename.encode()) <= MAX_FILENAME_BYTES

    seen, cursor, calls = [], 0, 0
    while True:
        response = await client.sync.Changes(sync_pb2.ChangesRequest(since=cursor, limit=1000),
                                             metadata=client.meta())
        assert response.ByteSize() < CLIENT_LIMIT
        calls += 1
        seen += [event.hash for event in response.events]
        cursor = response.cursor
        if not response.has_more:
            break
    assert seen == hashes and calls >= 2

    stat = await client.file.Stat(file_pb2.StatRequest(hashes=hashes), metadata=client.meta())
    assert len(stat.files) == 60 and stat.ByteSize() < CLIENT_LIMIT
    sync = await client.sync.GetSync(empty_pb2.Empty(), metadata=client.meta())
    assert len(sync.files) == 60 and sync.ByteSize() < CLIENT_LIMIT


async def test_stat_answer_that_would_not_fit_is_resource_exhausted_saying_how_many_fit(
        app, client, alice):
    hashes = [(await upload(client, wav_bytes(0.1, salt=b"song%d" % n))).hash
              for n in range(200)]
    oversize_stored_rows(app.settings.data_dir, "t")
    code, message = await status_of(client.file.Stat(file_pb2.StatRequest(hashes=hashes),
                                                     metadata=client.meta()))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "at most" in message
    fit = int(message.split("at most ")[1].split()[0])
    stat = await client.file.Stat(file_pb2.StatRequest(hashes=hashes[:fit]),
                                  metadata=client.meta())
    assert len(stat.files) == fit
