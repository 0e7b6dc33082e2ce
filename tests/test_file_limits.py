"""Upload limits: file size, quotas, idle streams, disconnects."""

from __future__ import annotations

import asyncio
import hashlib

import grpc

from musicsync.proto import auth_pb2, file_pb2
from musicsync.config import Settings
from musicsync.server import App
from musicsync.library.uploads import MAX_SESSIONS_PER_USER

from .conftest import PASSWORD, REGISTRATION_KEY, make_settings
from .helpers import Client, status_of, wait_until
from .transfer import leftovers, stored_blobs, upload, upload_requests, wav_bytes


async def signed_in(app) -> Client:
    client = Client(app)
    client.token = (await client.auth.Register(auth_pb2.RegisterRequest(
        username="alice", password=PASSWORD, security_key=REGISTRATION_KEY))).token
    return client


async def test_file_over_the_size_limit_is_resource_exhausted(tmp_path):
    async with App(make_settings(tmp_path, max_file_size=50_000)) as app:
        async with await signed_in(app) as client:
            song = wav_bytes(4, salt=b"big")  # 64 KB
            code, message = await status_of(upload(client, song))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "50000 bytes" in message
            code, _ = await status_of(upload(client, song, file_pb2.FileMetadata(size=len(song))))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert (await upload(client, wav_bytes(1))).hash  # 16 KB still fits
    assert len(stored_blobs(tmp_path)) == 1 and leftovers(tmp_path) == []


async def test_quota_counts_the_users_library_and_is_resource_exhausted(tmp_path):
    async with App(make_settings(tmp_path, user_quota=40_000)) as app:
        async with await signed_in(app) as client:
            first = wav_bytes(1, salt=b"one")  # 16 KB each
            await upload(client, first)
            await upload(client, wav_bytes(1, salt=b"two"))
            code, message = await status_of(upload(client, wav_bytes(1, salt=b"three")))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "quota" in message
            # Re-sending a song already counted still works.
            assert (await upload(client, first)).hash
            sha = (await upload(client, first)).hash
            await client.file.Delete(file_pb2.DeleteRequest(hash=sha), metadata=client.meta())
            assert (await upload(client, wav_bytes(1, salt=b"three"))).hash
    assert len(stored_blobs(tmp_path)) == 2 and leftovers(tmp_path) == []


async def test_idle_upload_stream_is_aborted_and_leaves_nothing(tmp_path):
    async with App(make_settings(tmp_path, upload_idle_timeout=1)) as app:
        async with await signed_in(app) as client:
            call = client.file.Upload(metadata=client.meta())
            await call.write(file_pb2.UploadRequest(metadata=file_pb2.FileMetadata(filename="x")))
            await call.write(file_pb2.UploadRequest(chunk=wav_bytes()[:20_000]))
            code, message = await status_of(call)  # waits while the stream sends nothing
            assert code == grpc.StatusCode.DEADLINE_EXCEEDED and "nothing was stored" in message
    assert stored_blobs(tmp_path) == [] and leftovers(tmp_path) == []


async def test_a_slow_stream_that_never_pauses_for_the_idle_timeout_is_not_aborted(tmp_path):
    async with App(make_settings(tmp_path, upload_idle_timeout=2)) as app:
        async with await signed_in(app) as client:
            song = wav_bytes(30, salt=b"slow")
            call = client.file.Upload(metadata=client.meta())
            pieces = [song[start:start + 100_000] for start in range(0, len(song), 100_000)]
            for piece in pieces:  # longer in all than the idle timeout, never idle for it
                await call.write(file_pb2.UploadRequest(chunk=piece))
                await asyncio.sleep(0.5)
            await call.done_writing()
            assert len(pieces) * 0.5 > 2
            assert (await call).hash == hashlib.sha256(song).hexdigest()


async def test_client_vanishing_mid_upload_leaves_nothing(tmp_path):
    async with App(make_settings(tmp_path)) as app:
        async with await signed_in(app) as client:
            call = client.file.Upload(metadata=client.meta())
            song = wav_bytes(30, salt=b"vanish")
            await call.write(file_pb2.UploadRequest(chunk=song[:300_000]))
            await asyncio.sleep(0.2)  # let the server write what it got
            call.cancel()
            for _ in range(100):  # the server notices the cancellation asynchronously
                if not leftovers(tmp_path):
                    break
                await asyncio.sleep(0.05)
            assert leftovers(tmp_path) == [] and stored_blobs(tmp_path) == []
            listing = await client.file.Stat(file_pb2.StatRequest(
                hashes=[hashlib.sha256(song).hexdigest()]), metadata=client.meta())
            assert not listing.files


# -- The quota counts unfinished uploads (issue 12, finding 5) ---------------------------

async def start_session(client, data: bytes) -> file_pb2.StartUploadResponse:
    return await client.file.StartUpload(file_pb2.StartUploadRequest(
        sha256=hashlib.sha256(data).hexdigest(), size=len(data)), metadata=client.meta())


async def test_unfinished_resumable_uploads_hold_their_whole_size_of_the_quota(tmp_path):
    """40 sessions each one byte short of the end once kept 40 quotas on disk."""
    songs = [wav_bytes(3, salt=bytes([n])) for n in range(3)]  # 48 KB each
    async with App(make_settings(tmp_path, user_quota=100_000)) as app:
        async with await signed_in(app) as client:
            first = await start_session(client, songs[0])
            almost = songs[0][:-1]
            call = client.file.Upload(metadata=client.meta())
            await call.write(file_pb2.UploadRequest(metadata=file_pb2.FileMetadata(
                upload_id=first.upload_id)))
            await call.write(file_pb2.UploadRequest(chunk=almost))
            await call.done_writing()
            code, message = await status_of(call)
            assert code == grpc.StatusCode.FAILED_PRECONDITION  # one byte short: kept

            await start_session(client, songs[1])  # 96 KB of 100 KB promised
            code, message = await status_of(start_session(client, songs[2]))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "quota" in message
            code, message = await status_of(upload(client, wav_bytes(1, salt=b"plain")))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "quota" in message

            # A session finishes within what it was promised.
            again = await start_session(client, songs[0])
            assert again.offset == len(almost)
            done = await client.file.Upload(upload_requests(songs[0][again.offset:],
                                                            file_pb2.FileMetadata(
                                                                upload_id=again.upload_id,
                                                                offset=again.offset)),
                                            metadata=client.meta())
            assert done.hash == hashlib.sha256(songs[0]).hexdigest()


async def test_an_account_keeps_at_most_16_unfinished_resumable_uploads(tmp_path):
    async with App(make_settings(tmp_path)) as app:
        async with await signed_in(app) as client:
            songs = [wav_bytes(0.1, salt=bytes([n])) for n in range(MAX_SESSIONS_PER_USER + 1)]
            for song in songs[:-1]:
                await start_session(client, song)
            code, message = await status_of(start_session(client, songs[-1]))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert f"({MAX_SESSIONS_PER_USER})" in message and "unfinished" in message
            assert (await start_session(client, songs[0])).upload_id  # found again: fine


async def test_start_uploads_sent_together_open_at_most_16_sessions(tmp_path):
    # StartUploads arriving together share one write transaction (group commit): each
    # is checked after the ones before it in the group, never against a stale count.
    songs = [wav_bytes(0.1, salt=bytes([n])) for n in range(MAX_SESSIONS_PER_USER + 4)]
    async with App(make_settings(tmp_path)) as app:
        async with await signed_in(app) as client:
            outcomes = await asyncio.gather(*(status_of(start_session(client, song))
                                              for song in songs))
            codes = [code for code, _ in outcomes]
            assert codes.count(grpc.StatusCode.OK) == MAX_SESSIONS_PER_USER
            assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 4


async def test_start_uploads_sent_together_cannot_both_take_the_last_room(tmp_path):
    songs = [wav_bytes(3, salt=bytes([n])) for n in range(2)]  # 48 KB each
    async with App(make_settings(tmp_path, user_quota=60_000)) as app:
        async with await signed_in(app) as client:
            outcomes = await asyncio.gather(*(status_of(start_session(client, song))
                                              for song in songs))
            codes = sorted(code.value[0] for code, _ in outcomes)
            assert codes == sorted([grpc.StatusCode.OK.value[0],
                                    grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]])
            assert any("quota" in message for _, message in outcomes)


async def test_a_plain_upload_in_progress_counts_against_the_quota(tmp_path):
    song = wav_bytes(4, salt=b"streaming")  # 64 KB, declared
    async with App(make_settings(tmp_path, user_quota=100_000)) as app:
        async with await signed_in(app) as client:
            call = client.file.Upload(metadata=client.meta())
            await call.write(file_pb2.UploadRequest(metadata=file_pb2.FileMetadata(
                size=len(song), sha256=hashlib.sha256(song).hexdigest())))
            await call.write(file_pb2.UploadRequest(chunk=song[:1000]))
            user_id = (await app.accounts.authenticate(f"Bearer {client.token}")).user_id
            await wait_until(lambda: app.uploads.in_flight(user_id) == len(song),
                             "the stream's declared size to be counted")
            code, message = await status_of(start_session(client, wav_bytes(3, salt=b"x")))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "quota" in message
            code, message = await status_of(upload(client, wav_bytes(3, salt=b"y")))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "quota" in message
            await call.write(file_pb2.UploadRequest(chunk=song[1000:]))
            await call.done_writing()
            assert (await call).hash == hashlib.sha256(song).hexdigest()
            assert app.uploads.in_flight(user_id) == 0


def test_the_default_quota_is_50_gib_and_0_means_no_limit():
    assert Settings().user_quota == 50 * 1024**3
    assert Settings.load({"USER_QUOTA": "0"}).user_quota == 0


async def test_an_upload_refused_while_the_client_still_sends_hears_why(client, alice):
    # Refused at its first chunk with 40 MB still to come: the client must get the status,
    # not the INTERNAL of a reset stream (9 of 10 such uploads before).
    not_a_song = bytes(range(256)) * (40 * 4096)
    for _ in range(5):
        code, message = await status_of(upload(client, not_a_song, chunk=4 * 1024 * 1024 - 64))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "not a supported audio" in message
    code, _ = await status_of(upload(client, not_a_song, chunk=4 * 1024 * 1024 - 64,
                                     token="not a token"))
    assert code == grpc.StatusCode.UNAUTHENTICATED
