"""Songs keep their place in the folder tree: paths, dedupe, Move and replace (issue 13)."""

from __future__ import annotations

import hashlib
import sqlite3

import grpc
import pytest
from google.protobuf import empty_pb2

from musicsync.proto import auth_pb2, file_pb2, sync_pb2

from . import audio_samples
from .conftest import PASSWORD, REGISTRATION_KEY
from .helpers import sha, status_of
from .sync_device import run_diff
from .transfer import download, stored_blobs, stream_status, upload, upload_requests, wav_bytes

ADDED, UPDATED = sync_pb2.CHANGE_KIND_ADDED, sync_pb2.CHANGE_KIND_UPDATED


def song(salt: bytes) -> bytes:
    return wav_bytes(0.05, salt=salt)


async def put(client, data: bytes, path: str = "", *, token=None, **fields):
    return await upload(client, data, file_pb2.FileMetadata(path=path, **fields), token=token)


async def put_status(client, data: bytes, **fields) -> tuple[grpc.StatusCode, str]:
    return await status_of(client.file.Upload(
        upload_requests(data, file_pb2.FileMetadata(**fields)), metadata=client.meta()))


async def listing(client, token=None) -> list[tuple[str, str, str]]:
    """(hash, path, filename) of every entry, via ListFiles."""
    page = await client.sync.ListFiles(sync_pb2.ListFilesRequest(), metadata=client.meta(token))
    return [(f.hash, f.path, f.filename) for f in page.files]


async def events(client, since: int = 0) -> list[sync_pb2.ChangeEvent]:
    return list((await client.sync.Changes(sync_pb2.ChangesRequest(since=since),
                                           metadata=client.meta())).events)


async def cursor_now(client) -> int:
    return (await client.sync.Changes(sync_pb2.ChangesRequest(since=0),
                                      metadata=client.meta())).cursor


async def move(client, hash_text: str, path: str, token=None):
    return await client.file.Move(file_pb2.MoveRequest(hash=hash_text, path=path),
                                  metadata=client.meta(token))


def database(settings) -> sqlite3.Connection:
    return sqlite3.connect(settings.data_dir / "musicsync.db")


@pytest.fixture
async def bob(client):
    response = await client.auth.Register(auth_pb2.RegisterRequest(
        username="bob", password=PASSWORD, security_key=REGISTRATION_KEY))
    return response.token


# -- The rules of a path ------------------------------------------------------------------

BROKEN_RULES = [
    ("/Artist/song.wav", "relative: no leading '/'"),
    ("Artist//song.wav", "empty segment"),
    ("Artist/Album/", "empty segment"),
    ("Artist/./song.wav", "segment '.' is not allowed"),
    ("../song.wav", "segment '..' is not allowed"),
    ("Artist/../../song.wav", "segment '..' is not allowed"),
    ("Artist/so\x07ng.wav", "control characters (found U+0007"),
    ("Artist/so\u0085ng.wav", "control characters (found U+0085"),
    ("Artist\\song.wav", "'\\'"),
    ("Artist/" + "é" * 128 + ".wav", "at most 255"),
    ("/".join(["a" * 250] * 17), "at most 4,096 bytes"),
]


@pytest.mark.parametrize("path, rule", BROKEN_RULES)
async def test_an_upload_path_breaking_a_rule_is_invalid_argument_naming_it(
        client, alice, settings, path, rule):
    code, message = await put_status(client, song(b"rules"), path=path)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and rule in message, message
    assert "metadata.path" in message
    assert await listing(client) == [] and stored_blobs(settings.data_dir) == []


@pytest.mark.parametrize("path, rule", [*BROKEN_RULES, ("", "must not be empty")])
async def test_a_move_to_a_path_breaking_a_rule_is_invalid_argument_naming_it(
        client, alice, path, rule):
    placed = await put(client, song(b"move rules"), "Here/song.wav")
    code, message = await status_of(move(client, placed.hash, path))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and rule in message, message
    assert await listing(client) == [(placed.hash, "Here/song.wav", "song.wav")]


async def test_a_path_is_kept_in_nfc_so_two_spellings_meet_at_one_place(client, alice):
    decomposed = "Cafe\u0301/Cafe\u0301.wav"
    first = await put(client, song(b"nfc"), decomposed)
    assert first.file.path == "Café/Café.wav" and first.file.filename == "Café.wav"
    code, message = await put_status(client, song(b"nfc other"), path="Café/Café.wav")
    assert code == grpc.StatusCode.FAILED_PRECONDITION, message


# -- Where songs are filed ------------------------------------------------------------

async def test_a_nested_path_round_trips_in_every_listing(client, alice):
    path = "Artist/Album (2019)/01 Song.wav"
    placed = await put(client, song(b"nested"), path, filename="ignored.wav")
    assert (placed.file.path, placed.file.filename) == (path, "01 Song.wav")

    assert await listing(client) == [(placed.hash, path, "01 Song.wav")]
    stat = await client.file.Stat(file_pb2.StatRequest(hashes=[placed.hash]),
                                  metadata=client.meta())
    assert [f.path for f in stat.files] == [path]
    get_sync = await client.sync.GetSync(empty_pb2.Empty(), metadata=client.meta())
    assert [(f.hash, f.filename, f.path) for f in get_sync.files] == [
        (placed.hash, "01 Song.wav", path)]
    _, to_download, _, _, _ = await run_diff(client, [])
    assert [(e.hash, e.path) for e in to_download] == [(placed.hash, path)]
    assert [(e.kind, e.file.path) for e in await events(client)] == [(ADDED, path)]


async def test_without_a_path_a_song_is_filed_at_its_filename_and_the_next_gets_a_number(
        client, alice):
    one = audio_samples.mp3(dict(audio_samples.TAGS, title="One")).data
    two = audio_samples.mp3(dict(audio_samples.TAGS, title="Two")).data
    three = audio_samples.mp3(dict(audio_samples.TAGS, title="Three")).data
    first = await upload(client, one, file_pb2.FileMetadata(filename="x.mp3"))
    second = await upload(client, two, file_pb2.FileMetadata(filename="x.mp3"))
    third = await upload(client, three, file_pb2.FileMetadata(filename="x.mp3"))
    assert [(r.file.path, r.file.filename) for r in (first, second, third)] == [
        ("x.mp3", "x.mp3"), ("x (2).mp3", "x (2).mp3"), ("x (3).mp3", "x (3).mp3")]
    assert sorted(path for _, path, _ in await listing(client)) == [
        "x (2).mp3", "x (3).mp3", "x.mp3"]
    # GetSync leaves out a path that is just the filename: flat libraries stay as small.
    get_sync = await client.sync.GetSync(empty_pb2.Empty(), metadata=client.meta())
    assert sorted((f.filename, f.path) for f in get_sync.files) == [
        ("x (2).mp3", ""), ("x (3).mp3", ""), ("x.mp3", "")]


async def test_the_same_bytes_at_a_second_path_are_reported_as_a_duplicate_of_the_first(
        client, alice, settings):
    data = song(b"twice")
    first = await put(client, data, "A/song.wav")
    assert first.duplicate_of_path == ""
    again = await put(client, data, "B/song.wav", title="New title")
    assert again.duplicate_of_path == "A/song.wav"
    assert (again.file.path, again.file.title) == ("A/song.wav", "New title")
    # Declared up front, the bytes are not even needed.
    known = await upload(client, b"", file_pb2.FileMetadata(
        path="C/song.wav", sha256=first.hash, size=len(data)))
    assert (known.duplicate_of_path, known.file.path) == ("A/song.wav", "A/song.wav")
    assert await listing(client) == [(first.hash, "A/song.wav", "song.wav")]
    assert len(stored_blobs(settings.data_dir)) == 1


async def test_a_path_another_song_holds_is_refused_and_the_library_is_unchanged(
        client, alice, settings):
    held = await put(client, song(b"holder"), "Album/01.wav")
    before = await cursor_now(client)
    intruder = song(b"intruder")

    code, message = await put_status(client, intruder, path="Album/01.wav")
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "'Album/01.wav'" in message and "replaces" in message

    # With the hash declared it is refused on the metadata, before any byte: no chunk
    # is sent here, which would otherwise be "the upload carried no file data".
    code, message = await status_of(client.file.Upload(iter([file_pb2.UploadRequest(
        metadata=file_pb2.FileMetadata(path="Album/01.wav", sha256=sha(intruder),
                                       size=len(intruder)))]), metadata=client.meta()))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "'Album/01.wav'" in message

    assert await listing(client) == [(held.hash, "Album/01.wav", "01.wav")]
    assert await cursor_now(client) == before
    assert [p.name for p in stored_blobs(settings.data_dir)] == [held.hash]


async def test_a_legacy_reupload_under_a_new_filename_renames_it_in_its_folder(client, alice):
    data = song(b"legacy")
    placed = await put(client, data, "Folder/a.wav")
    await put(client, song(b"blocker"), "Folder/b.wav")
    renamed = await upload(client, data, file_pb2.FileMetadata(filename="b.wav"))
    assert (renamed.file.path, renamed.file.filename) == ("Folder/b (2).wav", "b (2).wav")
    assert renamed.duplicate_of_path == ""
    assert [(e.kind, e.hash) for e in await events(client, 2)] == [(UPDATED, placed.hash)]


# -- Move -----------------------------------------------------------------------------------

async def test_move_sends_no_bytes_and_records_one_updated_event_with_the_new_path(
        client, alice):
    placed = await put(client, song(b"mover"), "Old/song.wav")
    since = await cursor_now(client)

    moved = await move(client, placed.hash, "New/Place/renamed.wav")
    assert (moved.file.hash, moved.file.path, moved.file.filename) == (
        placed.hash, "New/Place/renamed.wav", "renamed.wav")
    changes = await events(client, since)
    assert [(e.kind, e.hash, e.file.path) for e in changes] == [
        (UPDATED, placed.hash, "New/Place/renamed.wav")]

    same = await move(client, placed.hash, "New/Place/renamed.wav")  # already there
    assert same.file.path == "New/Place/renamed.wav"
    assert len(await events(client, since)) == 1
    assert await listing(client) == [(placed.hash, "New/Place/renamed.wav", "renamed.wav")]


async def test_move_onto_a_path_another_song_holds_is_failed_precondition(client, alice):
    first = await put(client, song(b"first"), "a.wav")
    second = await put(client, song(b"second"), "b.wav")
    since = await cursor_now(client)
    code, message = await status_of(move(client, second.hash, "a.wav"))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "'a.wav'" in message
    assert sorted(await listing(client)) == sorted([(first.hash, "a.wav", "a.wav"),
                                                    (second.hash, "b.wav", "b.wav")])
    assert await cursor_now(client) == since


async def test_move_of_a_song_outside_the_callers_library_is_not_found(client, alice, bob):
    theirs = await put(client, song(b"bob's"), "Bob/song.wav", token=bob)
    code, message = await status_of(move(client, theirs.hash, "Mine/song.wav"))
    assert code == grpc.StatusCode.NOT_FOUND and "Bob" not in message
    assert await listing(client, bob) == [(theirs.hash, "Bob/song.wav", "song.wav")]
    code, _ = await status_of(move(client, "not-a-hash", "x.wav"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


# -- Replace -------------------------------------------------------------------------------

def row_of(settings, hash_text: str) -> tuple | None:
    with database(settings) as db:
        return db.execute("SELECT id, path, filename, size FROM library WHERE sha256 = ?",
                          (bytes.fromhex(hash_text),)).fetchone()


@pytest.mark.sqlite_only  # reads and writes the SQLite file directly
async def test_a_replace_is_one_added_event_in_the_old_place_and_the_old_song_goes(
        client, alice, settings):
    old_data, new_data = song(b"before the tag edit"), wav_bytes(0.1, salt=b"after")
    old = await put(client, old_data, "Artist/Album/01 Song.wav")
    device = [bytes.fromhex(old.hash)]
    _, _, _, device_cursor, _ = await run_diff(client, device)
    row_id = row_of(settings, old.hash)[0]

    new = await upload(client, new_data, file_pb2.FileMetadata(replaces=old.hash))

    assert new.hash == sha(new_data) and new.duplicate_of_path == ""
    assert (new.file.path, new.file.filename) == ("Artist/Album/01 Song.wav", "01 Song.wav")
    changes = await events(client, device_cursor)
    assert [(e.kind, e.hash, e.replaces, e.file.path) for e in changes] == [
        (ADDED, new.hash, old.hash, "Artist/Album/01 Song.wav")]
    assert await listing(client) == [(new.hash, "Artist/Album/01 Song.wav", "01 Song.wav")]
    assert row_of(settings, new.hash) == (row_id, "Artist/Album/01 Song.wav", "01 Song.wav",
                                          len(new_data))
    assert row_of(settings, old.hash) is None
    assert [p.name for p in stored_blobs(settings.data_dir)] == [new.hash]
    code, _ = await stream_status(client.file.Download(
        file_pb2.DownloadRequest(hash=old.hash), metadata=client.meta()))
    assert code == grpc.StatusCode.NOT_FOUND
    assert (await download(client, new.hash))[0] == new_data

    to_upload, to_download, to_delete, _, _ = await run_diff(client, device, device_cursor)
    assert to_upload == [] and to_delete == device
    assert [(e.hash, e.path) for e in to_download] == [(new.hash, "Artist/Album/01 Song.wav")]


async def test_a_replace_with_a_path_moves_the_song_too(client, alice):
    old = await put(client, song(b"old place"), "Old/song.wav")
    new = await put(client, song(b"new place"), "New/song.wav", replaces=old.hash)
    assert await listing(client) == [(new.hash, "New/song.wav", "song.wav")]


async def test_a_replace_onto_a_third_songs_path_is_refused_and_changes_nothing(
        client, alice, settings):
    old = await put(client, song(b"replaced"), "a.wav")
    third = await put(client, song(b"third"), "b.wav")
    code, message = await put_status(client, song(b"newcomer"), path="b.wav",
                                      replaces=old.hash)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "'b.wav'" in message
    assert sorted(await listing(client)) == sorted([(old.hash, "a.wav", "a.wav"),
                                                    (third.hash, "b.wav", "b.wav")])
    assert len(stored_blobs(settings.data_dir)) == 2


async def test_a_replace_naming_a_hash_not_in_the_library_files_the_song_as_if_not_given(
        client, alice, bob):
    theirs = await put(client, song(b"bob's song"), "song.wav", token=bob)
    new = await upload(client, song(b"mine"), file_pb2.FileMetadata(
        filename="song.wav", replaces=theirs.hash))
    assert new.file.path == "song.wav"
    assert [(e.kind, e.replaces) for e in await events(client)] == [(ADDED, "")]
    assert await listing(client, bob) == [(theirs.hash, "song.wav", "song.wav")]


async def test_a_replace_with_content_the_library_has_leaves_the_old_entry(client, alice):
    old = await put(client, song(b"to keep"), "keep.wav")
    existing = await put(client, song(b"already here"), "here.wav")
    again = await put(client, song(b"already here"), replaces=old.hash)
    assert (again.duplicate_of_path, again.file.path) == ("here.wav", "here.wav")
    assert sorted(await listing(client)) == sorted([(old.hash, "keep.wav", "keep.wav"),
                                                    (existing.hash, "here.wav", "here.wav")])


async def test_a_replace_with_a_malformed_hash_is_invalid_argument(client, alice):
    code, message = await put_status(client, song(b"bad"), replaces="1234")
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "metadata.replaces" in message
    assert await listing(client) == []


@pytest.mark.sqlite_only  # reads and writes the SQLite file directly
async def test_a_replace_counts_the_replaced_songs_bytes_as_freed_against_the_quota(
        client, alice, settings):
    old = await put(client, song(b"quota old"), "song.wav")
    with database(settings) as db:  # room for this one song and a little more
        db.execute("UPDATE users SET quota_bytes = ?", (len(song(b"x")) + 100,))
    newer = song(b"quota new")
    code, message = await put_status(client, newer, path="other.wav")
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, message
    replaced = await upload(client, newer, file_pb2.FileMetadata(
        replaces=old.hash, sha256=sha(newer), size=len(newer)))
    assert await listing(client) == [(replaced.hash, "song.wav", "song.wav")]


@pytest.mark.sqlite_only  # reads and writes the SQLite file directly
async def test_pages_of_songs_with_the_longest_paths_stay_under_a_clients_message_limit(
        client, alice, settings):
    deep = "/".join(["f" * 254] * 16)  # 4,079 bytes, then "/NNNN.wav"
    with database(settings) as db:
        for number in range(1000):
            digest = hashlib.sha256(b"deep %d" % number).digest()
            db.execute("INSERT INTO blobs (sha256, size, created_at) VALUES (?, 1, 0)",
                       (digest,))
            db.execute("INSERT INTO library (user_id, sha256, filename, path, size, "
                       "created_at, updated_at, seq) VALUES (1, ?, ?, ?, 1, 0, 0, ?)",
                       (digest, f"{number:04d}.wav", f"{deep}/{number:04d}.wav", number + 1))
            db.execute("INSERT INTO changes (user_id, seq, kind, sha256, at) "
                       "VALUES (1, ?, 1, ?, 0)", (number + 1, digest))
        db.execute("UPDATE users SET last_seq = 1000")
    seen, token = 0, ""
    while True:
        page = await client.sync.ListFiles(sync_pb2.ListFilesRequest(
            page_size=1000, page_token=token), metadata=client.meta())
        assert page.ByteSize() < 4 * 1024 * 1024 and len(page.files[0].path) == 4088
        seen, token = seen + len(page.files), page.next_page_token
        if not token:
            break
    assert seen == 1000
    changes = await client.sync.Changes(sync_pb2.ChangesRequest(since=0, limit=1000),
                                        metadata=client.meta())
    assert changes.ByteSize() < 4 * 1024 * 1024 and changes.has_more
