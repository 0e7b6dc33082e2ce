"""File service over the wire: upload, download, delete, Stat, dedupe and privacy."""

from __future__ import annotations

import asyncio
import hashlib

import grpc
import pytest

from musicsync.errors import NotFound
from musicsync.proto import auth_pb2, file_pb2

from .conftest import PASSWORD, REGISTRATION_KEY
from .helpers import query, status_of
from .transfer import download, leftovers, stored_blobs, stream_status, upload, upload_requests, wav_bytes


@pytest.fixture
async def bob(client):
    response = await client.auth.Register(auth_pb2.RegisterRequest(
        username="bob", password=PASSWORD, security_key=REGISTRATION_KEY))
    return response.token


def changes(settings, user_id: int) -> list[tuple[int, int]]:
    return query(settings, "SELECT seq, kind FROM changes WHERE user_id = ? ORDER BY seq",
                 user_id)


async def test_upload_returns_the_sha256_and_download_returns_the_same_bytes(client, alice):
    song = wav_bytes(2, salt=b"roundtrip")
    response = await upload(client, song, file_pb2.FileMetadata(filename="song.wav"))
    assert response.hash == hashlib.sha256(song).hexdigest()
    assert (response.file.size, response.file.codec, response.file.duration) == (len(song), "wav", 2)
    data, messages = await download(client, response.hash)
    assert data == song
    assert messages[0].total_size == len(song)


async def test_upload_without_metadata_is_named_after_its_hash(client, alice):
    song = wav_bytes(salt=b"nameless")
    response = await upload(client, song)
    assert response.file.filename == response.hash[:16] + ".wav"


async def test_tags_sent_by_the_client_win_over_tags_read_from_the_file(client, alice):
    response = await upload(client, wav_bytes(3, salt=b"tags"), file_pb2.FileMetadata(
        filename="a.wav", title="Client title", artist="Client artist", duration=99))
    assert (response.file.title, response.file.artist) == ("Client title", "Client artist")
    assert response.file.duration == 3  # measured length beats the client's guess


async def test_filename_is_kept_as_a_sanitized_base_name(client, alice):
    response = await upload(client, wav_bytes(salt=b"path"), file_pb2.FileMetadata(
        filename="../../etc/\x07evil\nname.wav"))
    assert response.file.filename == "evil name.wav"


async def test_reupload_of_own_file_is_idempotent_and_updates_its_name(client, alice, settings):
    song = wav_bytes(salt=b"twice")
    first = await upload(client, song, file_pb2.FileMetadata(filename="first.wav"))
    second = await upload(client, song, file_pb2.FileMetadata(filename="second.wav"))
    assert first.hash == second.hash and second.file.filename == "second.wav"
    third = await upload(client, song, file_pb2.FileMetadata(filename="second.wav"))
    assert third.file.updated_at == second.file.updated_at
    assert changes(settings, 1) == [(1, 1), (2, 2)]  # added, renamed; the third changed nothing
    assert len(stored_blobs(settings.data_dir)) == 1


async def test_same_content_from_two_users_is_stored_once(client, alice, bob, settings):
    song = wav_bytes(salt=b"shared")
    sha = (await upload(client, song)).hash
    assert (await upload(client, song, token=bob)).hash == sha
    assert len(stored_blobs(settings.data_dir)) == 1
    assert (await client.file.Delete(file_pb2.DeleteRequest(hash=sha), metadata=client.meta())).success
    assert (await download(client, sha, token=bob))[0] == song
    assert len(stored_blobs(settings.data_dir)) == 1
    await client.file.Delete(file_pb2.DeleteRequest(hash=sha), metadata=client.meta(bob))
    assert stored_blobs(settings.data_dir) == []


async def test_another_users_file_is_invisible_whatever_is_asked(client, alice, bob):
    song = wav_bytes(salt=b"private")
    sha = (await upload(client, song)).hash
    unknown = "ab" * 32
    for target in (sha, unknown):
        assert await stream_status(client.file.Download(
            file_pb2.DownloadRequest(hash=target), metadata=client.meta(bob))) == \
            (grpc.StatusCode.NOT_FOUND, "no file with this hash in your library")
        deleted = await client.file.Delete(file_pb2.DeleteRequest(hash=target),
                                           metadata=client.meta(bob))
        assert deleted.success is False
        stat = await client.file.Stat(file_pb2.StatRequest(hashes=[target]),
                                      metadata=client.meta(bob))
        assert list(stat.missing) == [target] and not stat.files
        started = await client.file.StartUpload(file_pb2.StartUploadRequest(
            sha256=target, size=len(song)), metadata=client.meta(bob))
        assert (started.complete, started.offset) == (False, 0)
    # Declaring the hash is not enough: the bytes must come.
    code, _ = await status_of(client.file.Upload(iter([file_pb2.UploadRequest(
        metadata=file_pb2.FileMetadata(sha256=sha, size=len(song)))]), metadata=client.meta(bob)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert (await download(client, sha))[0] == song  # Alice still has hers


async def test_declared_hash_of_own_file_is_answered_without_the_bytes(client, alice):
    song = wav_bytes(salt=b"early")
    sha = (await upload(client, song)).hash
    response = await client.file.Upload(iter([file_pb2.UploadRequest(
        metadata=file_pb2.FileMetadata(sha256=sha, size=len(song), filename="renamed.wav"))]),
        metadata=client.meta())
    assert response.hash == sha and response.file.filename == "renamed.wav"


async def test_declared_hash_mismatch_is_data_loss_and_stores_nothing(client, alice, settings):
    song = wav_bytes(salt=b"mismatch")
    code, message = await status_of(upload(client, song, file_pb2.FileMetadata(
        sha256="0" * 64, size=len(song))))
    assert code == grpc.StatusCode.DATA_LOSS and "nothing was stored" in message
    assert stored_blobs(settings.data_dir) == [] and leftovers(settings.data_dir) == []
    assert (await client.file.Stat(file_pb2.StatRequest(hashes=[hashlib.sha256(song).hexdigest()]),
                                   metadata=client.meta())).files == []


@pytest.mark.parametrize("declared", [-1, 1, 10**6])
async def test_declared_size_mismatch_is_invalid_argument(client, alice, settings, declared):
    song = wav_bytes(salt=b"size")
    code, _ = await status_of(upload(client, song, file_pb2.FileMetadata(size=len(song) + declared)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert stored_blobs(settings.data_dir) == [] and leftovers(settings.data_dir) == []


@pytest.mark.parametrize("messages, reason", [
    ([], "empty upload"),
    ([file_pb2.UploadRequest(metadata=file_pb2.FileMetadata(filename="x.wav"))], "no file data"),
    ([file_pb2.UploadRequest(chunk=wav_bytes()[:100]),
      file_pb2.UploadRequest(metadata=file_pb2.FileMetadata(filename="x.wav"))], "FileMetadata"),
    ([file_pb2.UploadRequest(metadata=file_pb2.FileMetadata(filename="x.wav")),
      file_pb2.UploadRequest(metadata=file_pb2.FileMetadata(filename="y.wav"))], "FileMetadata"),
    ([file_pb2.UploadRequest(chunk=b"%PDF-1.7\n" + b"x" * 5000)], "not a supported audio file"),
    ([file_pb2.UploadRequest(chunk=b"RIFF\0\0\0\0WAVEgarbage" + b"x" * 5000)],
     "not a supported audio file"),
    ([file_pb2.UploadRequest(chunk=b"ID3")], "not a supported audio file"),
    ([file_pb2.UploadRequest(chunk=b"\0" * (4 * 1024 * 1024 + 1))], "at most 4 MiB"),
])
async def test_malformed_uploads_are_invalid_argument_and_leave_nothing(
        client, alice, settings, messages, reason):
    code, message = await status_of(client.file.Upload(iter(messages), metadata=client.meta()))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and reason in message
    assert stored_blobs(settings.data_dir) == [] and leftovers(settings.data_dir) == []


async def test_download_rejects_a_malformed_hash(client, alice):
    for bad in ("", "abc", "g" * 64, "0" * 63):
        code, _ = await stream_status(client.file.Download(
            file_pb2.DownloadRequest(hash=bad), metadata=client.meta()))
        assert code == grpc.StatusCode.INVALID_ARGUMENT


async def test_download_ranges_and_chunk_sizes(client, alice):
    song = wav_bytes(3, salt=b"ranges")
    sha = (await upload(client, song)).hash
    data, messages = await download(client, sha, offset=1000, length=5000, chunk_size=1024)
    assert data == song[1000:6000]
    assert messages[0].total_size == len(song) and len(messages) == 5
    assert all(m.total_size == 0 for m in messages[1:])
    assert (await download(client, sha, offset=len(song) - 10))[0] == song[-10:]
    data, messages = await download(client, sha, offset=len(song))
    assert data == b"" and [m.total_size for m in messages] == [len(song)]
    code, message = await stream_status(client.file.Download(
        file_pb2.DownloadRequest(hash=sha, offset=len(song) + 1), metadata=client.meta()))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "beyond the end" in message


async def test_download_of_a_lost_blob_is_data_loss_and_logged(client, alice, settings, caplog):
    sha = (await upload(client, wav_bytes(salt=b"lost"))).hash
    for blob in stored_blobs(settings.data_dir):
        blob.unlink()
    code, message = await stream_status(client.file.Download(
        file_pb2.DownloadRequest(hash=sha), metadata=client.meta()))
    assert code == grpc.StatusCode.DATA_LOSS and "upload it again" in message
    assert any(sha in record.getMessage() for record in caplog.records)
    # The entry stays listed: dropping it silently would hide the loss.
    stat = await client.file.Stat(file_pb2.StatRequest(hashes=[sha]), metadata=client.meta())
    assert [f.hash for f in stat.files] == [sha]



async def test_a_download_racing_a_delete_is_not_found_rather_than_data_loss(app, client, alice):
    """Another device deletes the song between the library check and the first read."""
    sha = (await upload(client, wav_bytes(salt=b"raced"))).hash
    alice_id = 1
    size, blocks = await app.files.open_download(alice_id, sha, 0, 0)
    assert size > 0
    assert await app.files.delete(alice_id, sha)  # the last reference: the blob goes too
    with pytest.raises(NotFound):
        async for _ in blocks:
            pass
    assert not stored_blobs(app.settings.data_dir)

async def test_delete_removes_the_entry_and_records_a_tombstone(client, alice, settings):
    sha = (await upload(client, wav_bytes(salt=b"delete"))).hash
    assert (await client.file.Delete(file_pb2.DeleteRequest(hash=sha), metadata=client.meta())).success
    assert not (await client.file.Delete(file_pb2.DeleteRequest(hash=sha),
                                         metadata=client.meta())).success
    assert changes(settings, 1) == [(1, 1), (2, 3)]
    assert stored_blobs(settings.data_dir) == []
    code, _ = await stream_status(client.file.Download(
        file_pb2.DownloadRequest(hash=sha), metadata=client.meta()))
    assert code == grpc.StatusCode.NOT_FOUND


async def test_stat_answers_which_hashes_the_caller_has(client, alice):
    have = (await upload(client, wav_bytes(salt=b"stat"), file_pb2.FileMetadata(
        filename="have.wav", artist="Me"))).hash
    other = "cd" * 32
    response = await client.file.Stat(file_pb2.StatRequest(hashes=[have, other, have.upper()]),
                                      metadata=client.meta())
    assert [(f.hash, f.filename, f.artist) for f in response.files] == [(have, "have.wav", "Me")]
    assert list(response.missing) == [other]
    code, message = await status_of(client.file.Stat(
        file_pb2.StatRequest(hashes=[have, "nope"]), metadata=client.meta()))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "hashes[1]" in message
    code, _ = await status_of(client.file.Stat(
        file_pb2.StatRequest(hashes=["0" * 64] * 10_001), metadata=client.meta()))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


async def test_upload_chunks_of_one_mib_and_odd_sizes_arrive_intact(client, alice):
    song = wav_bytes(70, salt=b"big")  # about 1.1 MB
    for chunk in (1024 * 1024, 4 * 1024 * 1024, 7919):
        response = await upload(client, song, chunk=chunk)
        assert response.hash == hashlib.sha256(song).hexdigest()
    assert (await download(client, response.hash, chunk_size=4 * 1024 * 1024 - 1024))[0] == song


async def test_metadata_only_upload_of_unknown_declared_hash_needs_bytes(client, alice):
    code, message = await status_of(client.file.Upload(iter([file_pb2.UploadRequest(
        metadata=file_pb2.FileMetadata(sha256="ef" * 32, size=10))]), metadata=client.meta()))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


async def test_declared_hash_must_be_hex(client, alice):
    code, message = await status_of(upload(client, wav_bytes(), file_pb2.FileMetadata(
        sha256="not-a-hash")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "metadata.sha256" in message


async def test_concurrent_uploads_and_deletes_of_shared_content_never_lose_a_blob(
        client, alice, bob, settings):
    song = wav_bytes(salt=b"race")
    sha = hashlib.sha256(song).hexdigest()

    async def churn(token: str) -> None:
        for _ in range(15):
            await upload(client, song, token=token)
            await client.file.Delete(file_pb2.DeleteRequest(hash=sha), metadata=client.meta(token))
            await upload(client, song, token=token)

    async with asyncio.TaskGroup() as group:  # a failure cancels and awaits the other
        group.create_task(churn(client.token))
        group.create_task(churn(bob))
    [(listed,)] = query(settings, "SELECT count(*) FROM library")
    [(blob_rows,)] = query(settings, "SELECT count(*) FROM blobs")
    assert listed == 2 and blob_rows == 1
    assert [p.name for p in stored_blobs(settings.data_dir)] == [sha]
    for token in (client.token, bob):
        assert (await download(client, sha, token=token))[0] == song
