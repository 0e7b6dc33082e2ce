"""Resumable uploads: StartUpload, continuing from the committed offset, expiry."""

from __future__ import annotations

import asyncio

import grpc

from musicsync.proto import auth_pb2, file_pb2
from musicsync.server import App

from .conftest import PASSWORD, REGISTRATION_KEY
from .helpers import Client, query, sha, status_of, wait_until
from .transfer import download, leftovers, stored_blobs, upload_requests, wav_bytes

SONG = wav_bytes(40, salt=b"resumable")  # 640 KB


async def start(client, data: bytes = SONG) -> file_pb2.StartUploadResponse:
    return await client.file.StartUpload(file_pb2.StartUploadRequest(
        sha256=sha(data), size=len(data)), metadata=client.meta())


def resume_requests(upload_id: str, offset: int, data: bytes, **metadata):
    meta = file_pb2.FileMetadata(upload_id=upload_id, offset=offset, **metadata)
    return upload_requests(data[offset:], meta)


async def send_part_then_vanish(client, upload_id: str, offset: int, part: bytes) -> None:
    call = client.file.Upload(metadata=client.meta())
    await call.write(file_pb2.UploadRequest(metadata=file_pb2.FileMetadata(
        upload_id=upload_id, offset=offset)))
    for start_at in range(0, len(part), 64 * 1024):
        await call.write(file_pb2.UploadRequest(chunk=part[start_at:start_at + 64 * 1024]))
    await asyncio.sleep(0.3)
    call.cancel()


async def wait_for_progress(client) -> file_pb2.StartUploadResponse:
    for _ in range(100):  # the server saves progress once it notices the cancellation
        response = await start(client)
        if response.offset:
            return response
        await asyncio.sleep(0.05)
    raise AssertionError("the interrupted upload kept nothing")


async def test_interrupted_upload_continues_from_the_committed_offset(client, alice, settings):
    session = await start(client)
    assert (session.offset, session.complete) == (0, False) and session.upload_id
    await send_part_then_vanish(client, session.upload_id, 0, SONG[:300_000])
    resumed = await wait_for_progress(client)
    assert resumed.upload_id == session.upload_id and 0 < resumed.offset <= 300_000
    response = await client.file.Upload(
        resume_requests(session.upload_id, resumed.offset, SONG, filename="resumed.wav"),
        metadata=client.meta())
    assert response.hash == sha(SONG) and response.file.filename == "resumed.wav"
    assert (await download(client, response.hash))[0] == SONG
    assert leftovers(settings.data_dir) == [] and len(stored_blobs(settings.data_dir)) == 1
    assert (await start(client)).complete  # now in the library: nothing to send


async def test_a_stream_that_ends_early_keeps_its_bytes(client, alice):
    session = await start(client)
    code, message = await status_of(client.file.Upload(
        resume_requests(session.upload_id, 0, SONG[:200_000]), metadata=client.meta()))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "continue from byte 200000" in message
    assert (await start(client)).offset == 200_000


async def test_wrong_offset_is_failed_precondition_naming_the_right_one(client, alice):
    session = await start(client)
    await status_of(client.file.Upload(resume_requests(session.upload_id, 0, SONG[:100_000]),
                                       metadata=client.meta()))
    code, message = await status_of(client.file.Upload(
        resume_requests(session.upload_id, 0, SONG), metadata=client.meta()))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "continues at byte 100000" in message
    assert (await start(client)).offset == 100_000


async def test_resumed_upload_with_wrong_bytes_is_data_loss_and_discarded(client, alice, settings):
    session = await start(client)
    forged = SONG[:-10] + b"x" * 10
    code, _ = await status_of(client.file.Upload(resume_requests(session.upload_id, 0, forged),
                                                 metadata=client.meta()))
    assert code == grpc.StatusCode.DATA_LOSS
    assert leftovers(settings.data_dir) == [] and stored_blobs(settings.data_dir) == []
    assert (await start(client)).offset == 0


async def test_stream_longer_than_the_session_is_invalid_argument(client, alice):
    session = await start(client)
    code, _ = await status_of(client.file.Upload(
        resume_requests(session.upload_id, 0, SONG + b"extra"), metadata=client.meta()))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


async def test_session_of_another_user_is_not_found(client, alice):
    session = await start(client)
    bob = (await client.auth.Register(auth_pb2.RegisterRequest(
        username="bob", password=PASSWORD, security_key=REGISTRATION_KEY))).token
    code, _ = await status_of(client.file.Upload(resume_requests(session.upload_id, 0, SONG),
                                                 metadata=client.meta(bob)))
    assert code == grpc.StatusCode.NOT_FOUND


async def test_expired_sessions_are_dropped_with_their_partial_data(app, client, alice, clock,
                                                                  settings):
    session = await start(client)
    await status_of(client.file.Upload(resume_requests(session.upload_id, 0, SONG[:100_000]),
                                       metadata=client.meta()))
    assert leftovers(settings.data_dir)
    clock.advance(24 * 3600 + 1)
    client.token = (await client.auth.Login(auth_pb2.LoginRequest(
        username="alice", password=PASSWORD))).token
    code, message = await status_of(client.file.Upload(
        resume_requests(session.upload_id, 100_000, SONG), metadata=client.meta()))
    assert code == grpc.StatusCode.NOT_FOUND and "StartUpload" in message
    await app.uploads.sweep()
    assert leftovers(settings.data_dir) == []
    fresh = await start(client)
    assert fresh.offset == 0 and fresh.upload_id != session.upload_id


async def test_start_upload_validates_its_input(client, alice):
    for request in (file_pb2.StartUploadRequest(sha256="nope", size=10),
                    file_pb2.StartUploadRequest(sha256=sha(SONG), size=0)):
        code, _ = await status_of(client.file.StartUpload(request, metadata=client.meta()))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _ = await status_of(client.file.StartUpload(file_pb2.StartUploadRequest(
        sha256=sha(SONG), size=3 * 1024**3), metadata=client.meta()))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_a_complete_upload_the_storage_cannot_publish_is_kept_for_a_retry(
        client, alice, settings):
    session = await start(client)
    # The storage fails when the blob goes into place: its folder cannot be made
    # (a file squats the name), as a failing disk would refuse it.
    squatter = settings.data_dir / "blobs" / sha(SONG)[:2]
    squatter.parent.mkdir(parents=True, exist_ok=True)
    squatter.write_bytes(b"")
    code, message = await status_of(client.file.Upload(
        resume_requests(session.upload_id, 0, SONG), metadata=client.meta()))
    assert code == grpc.StatusCode.UNAVAILABLE
    assert "kept" in message and "StartUpload" in message
    assert stored_blobs(settings.data_dir) == []

    squatter.unlink()  # the storage is back
    again = await start(client)
    assert (again.upload_id, again.offset) == (session.upload_id, len(SONG))
    response = await client.file.Upload(
        resume_requests(session.upload_id, len(SONG), SONG, filename="kept.wav"),
        metadata=client.meta())
    assert response.hash == sha(SONG) and response.file.filename == "kept.wav"
    assert (await download(client, sha(SONG)))[0] == SONG
    assert leftovers(settings.data_dir) == [] and len(stored_blobs(settings.data_dir)) == 1


async def test_bytes_a_partial_holds_beyond_the_recorded_offset_are_taken_up(client, alice,
                                                                            settings):
    # As after a crash: the partial holds more than the session's recorded offset.
    session = await start(client)
    await status_of(client.file.Upload(resume_requests(session.upload_id, 0, SONG[:100_000]),
                                       metadata=client.meta()))
    with open(settings.data_dir / "blobs" / ".partial" / session.upload_id, "ab") as partial:
        partial.write(SONG[100_000:250_000])
    resumed = await start(client)
    assert resumed.offset == 250_000
    response = await client.file.Upload(resume_requests(session.upload_id, 250_000, SONG),
                                        metadata=client.meta())
    assert response.hash == sha(SONG)


async def test_damaged_bytes_kept_through_a_crash_are_dropped_back_to_the_recorded_offset(
        client, alice, settings):
    # A machine crash can leave garbage where the last unflushed bytes were.
    session = await start(client)
    await status_of(client.file.Upload(resume_requests(session.upload_id, 0, SONG[:100_000]),
                                       metadata=client.meta()))
    with open(settings.data_dir / "blobs" / ".partial" / session.upload_id, "ab") as partial:
        partial.write(b"\xff" * 150_000)  # (this song's own bytes are mostly zeros)
    resumed = await start(client)
    assert resumed.offset == 250_000
    code, message = await status_of(client.file.Upload(
        resume_requests(session.upload_id, 250_000, SONG), metadata=client.meta()))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "continue from byte 100000" in message
    assert (await start(client)).offset == 100_000
    response = await client.file.Upload(resume_requests(session.upload_id, 100_000, SONG),
                                        metadata=client.meta())
    assert response.hash == sha(SONG)
    assert (await download(client, sha(SONG)))[0] == SONG
    assert leftovers(settings.data_dir) == [] and len(stored_blobs(settings.data_dir)) == 1


async def test_a_session_whose_partial_was_lost_starts_again_from_byte_0(client, alice,
                                                                         settings):
    session = await start(client)
    await status_of(client.file.Upload(resume_requests(session.upload_id, 0, SONG[:100_000]),
                                       metadata=client.meta()))
    (settings.data_dir / "blobs" / ".partial" / session.upload_id).unlink()
    again = await start(client)
    assert (again.upload_id, again.offset) == (session.upload_id, 0)
    response = await client.file.Upload(resume_requests(session.upload_id, 0, SONG),
                                        metadata=client.meta())
    assert response.hash == sha(SONG)


async def test_a_session_whose_blob_was_published_before_a_crash_completes_after_restart(
        settings):
    song_sha = sha(SONG)
    blob = settings.data_dir / "blobs" / song_sha[:2] / song_sha[2:4] / song_sha
    async with App(settings) as app, Client(app) as client:
        client.token = (await client.auth.Register(auth_pb2.RegisterRequest(
            username="alice", password=PASSWORD, security_key=REGISTRATION_KEY))).token
        session = await start(client)
        # The whole file arrives and is recorded as complete, but cannot be published
        # (its folder cannot be made), so the server stops before listing it.
        blob.parent.parent.parent.mkdir(parents=True, exist_ok=True)
        blob.parent.parent.write_bytes(b"")
        code, _ = await status_of(client.file.Upload(
            resume_requests(session.upload_id, 0, SONG), metadata=client.meta()))
        assert code == grpc.StatusCode.UNAVAILABLE
    # What a crash right after the store's publish leaves: the partial moved into place
    # as the blob, the session still open, no library entry.
    blob.parent.parent.unlink()
    blob.parent.mkdir(parents=True)
    (settings.data_dir / "blobs" / ".partial" / session.upload_id).rename(blob)

    async with App(settings) as app, Client(app) as client:
        assert stored_blobs(settings.data_dir) == []  # taken back: not left unlisted
        client.token = (await client.auth.Login(auth_pb2.LoginRequest(
            username="alice", password=PASSWORD))).token
        again = await start(client)
        assert (again.upload_id, again.offset) == (session.upload_id, len(SONG))
        response = await client.file.Upload(
            resume_requests(session.upload_id, len(SONG), SONG, filename="kept.wav"),
            metadata=client.meta())
        assert response.hash == song_sha and response.file.filename == "kept.wav"
        assert (await download(client, song_sha))[0] == SONG
        assert leftovers(settings.data_dir) == [] and stored_blobs(settings.data_dir) == [blob]


def open_sessions(settings) -> int:
    return query(settings, "SELECT count(*) FROM upload_sessions")[0][0]


async def test_a_finished_upload_ends_its_session_with_the_listing(client, alice, settings):
    session = await start(client)
    assert open_sessions(settings) == 1
    response = await client.file.Upload(resume_requests(session.upload_id, 0, SONG),
                                        metadata=client.meta())
    assert response.hash == sha(SONG)
    # Acknowledged: listed, the session gone, no partial left behind.
    assert open_sessions(settings) == 0
    assert leftovers(settings.data_dir) == [] and len(stored_blobs(settings.data_dir)) == 1
    again = await start(client)
    assert (again.complete, again.offset, again.upload_id) == (True, len(SONG), "")
    code, message = await status_of(client.file.Upload(
        resume_requests(session.upload_id, len(SONG), SONG), metadata=client.meta()))
    assert code == grpc.StatusCode.NOT_FOUND and "StartUpload" in message


async def test_a_complete_upload_refused_at_its_listing_leaves_no_session_or_blob(client, alice,
                                                                                settings):
    # Found only when the song is listed (the path was free when the stream began): the
    # session's end rolls back with the listing and is done after it.
    other = wav_bytes(1, salt=b"holder")
    session = await start(client)
    call = client.file.Upload(metadata=client.meta())
    await call.write(file_pb2.UploadRequest(metadata=file_pb2.FileMetadata(
        upload_id=session.upload_id, path="Artist/Song.wav")))
    await call.write(file_pb2.UploadRequest(chunk=SONG[:100_000]))
    partial = settings.data_dir / "blobs" / ".partial" / session.upload_id
    await wait_until(partial.exists, "the stream to be taken up (its path checked)")
    await client.file.Upload(upload_requests(other, file_pb2.FileMetadata(
        path="Artist/Song.wav")), metadata=client.meta())
    await call.write(file_pb2.UploadRequest(chunk=SONG[100_000:]))
    await call.done_writing()
    code, message = await status_of(call)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "Artist/Song.wav" in message
    assert open_sessions(settings) == 0
    assert leftovers(settings.data_dir) == [] and len(stored_blobs(settings.data_dir)) == 1
    assert (await start(client)).offset == 0  # a new session: from the start
