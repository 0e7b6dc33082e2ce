"""A server storing blobs in S3, over the wire: transfers, and outages of the storage.

Transfers use the session's S3 (moto, or S3_ENDPOINT's server). Outage tests run
a moto of their own, which they stop and start again, or a port that hangs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from musicsync.proto import auth_pb2, file_pb2
from musicsync.server import App

from .conftest import PASSWORD, REGISTRATION_KEY, make_settings
from .helpers import Client, free_port, sha, status_of
from .s3server import MotoServer, SilentListener, new_bucket
from .transfer import download, stream_status, upload, upload_requests, wav_bytes

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def registered(client: Client) -> Client:
    response = await client.auth.Register(auth_pb2.RegisterRequest(
        username="alice", password=PASSWORD, security_key=REGISTRATION_KEY))
    client.token = response.token
    return client


async def health(client: Client, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(client.channel)
    return (await stub.Check(health_pb2.HealthCheckRequest(service=service))).status


async def wait_for_health(client: Client, service: str, wanted: int, timeout: float = 20) -> None:
    """Waits (a generous deadline, not a timed assertion) for the service to report ``wanted``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (status := await health(client, service)) != wanted:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{service or 'the server'} stayed "
                                 f"{health_pb2.HealthCheckResponse.ServingStatus.Name(status)}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def s3_client(tmp_path, s3_server, s3_bucket, clock) -> AsyncIterator[Client]:
    settings = make_settings(tmp_path / "data", **s3_server.settings(s3_bucket))
    async with App(settings, clock=clock) as app:
        async with Client(app) as client:
            yield await registered(client)


# -- Transfers ----------------------------------------------------------------------------

async def test_upload_download_delete_over_s3(s3_client, s3_server, s3_bucket):
    song = wav_bytes(2, salt=b"s3 roundtrip")
    response = await upload(s3_client, song, file_pb2.FileMetadata(filename="song.wav"))
    assert response.hash == sha(song) and response.file.codec == "wav"
    assert s3_server.objects(s3_bucket) == [f"blobs/{sha(song)}"]  # nothing else left behind
    data, messages = await download(s3_client, response.hash)
    assert data == song and messages[0].total_size == len(song)
    ranged, _ = await download(s3_client, response.hash, offset=1000, length=5000)
    assert ranged == song[1000:6000]

    deleted = await s3_client.file.Delete(file_pb2.DeleteRequest(hash=response.hash),
                                          metadata=s3_client.meta())
    assert deleted.success
    assert s3_server.objects(s3_bucket) == []


async def test_song_larger_than_a_part_is_checked_and_stored_whole(s3_client, s3_server,
                                                                   s3_bucket):
    song = wav_bytes(600, salt=b"long song")  # 9.6 MB: over one 8 MiB part
    declared = file_pb2.FileMetadata(filename="long.wav", sha256=sha(song), size=len(song))
    response = await upload(s3_client, song, declared)
    assert response.file.duration == 600
    assert (await download(s3_client, response.hash))[0] == song
    assert s3_server.objects(s3_bucket) == [f"blobs/{sha(song)}"]


async def test_declared_hash_mismatch_over_s3_leaves_no_object(s3_client, s3_server, s3_bucket):
    song = wav_bytes(600, salt=b"liar")
    declared = file_pb2.FileMetadata(sha256=sha(b"something else"), size=len(song))
    code, _ = await status_of(upload(s3_client, song, declared))
    assert code == grpc.StatusCode.DATA_LOSS
    assert s3_server.objects(s3_bucket) == []


async def test_resumable_upload_over_s3_continues_where_it_stopped(s3_client, s3_server,
                                                                   s3_bucket):
    song = wav_bytes(40, salt=b"resumable s3")
    session = await s3_client.file.StartUpload(file_pb2.StartUploadRequest(
        sha256=sha(song), size=len(song)), metadata=s3_client.meta())
    first = upload_requests(song[:200_000], file_pb2.FileMetadata(upload_id=session.upload_id))
    code, message = await status_of(s3_client.file.Upload(first, metadata=s3_client.meta()))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "200000" in message
    assert s3_server.objects(s3_bucket, "partials/")  # kept in the bucket

    rest = upload_requests(song[200_000:], file_pb2.FileMetadata(
        upload_id=session.upload_id, offset=200_000))
    response = await s3_client.file.Upload(rest, metadata=s3_client.meta())
    assert response.hash == sha(song)
    assert (await download(s3_client, response.hash))[0] == song
    assert s3_server.objects(s3_bucket) == [f"blobs/{sha(song)}"]


# -- Outages ----------------------------------------------------------------------------------

async def test_storage_outage_gives_unavailable_and_not_serving_then_recovers(tmp_path, clock):
    with MotoServer() as moto:
        bucket = new_bucket()
        # Stopped moto refuses connections at once: the timeout only has to let a busy
        # machine's moto answer the uploads before and after (2 s once did not).
        settings = make_settings(tmp_path / "data", storage_timeout=10,
                                 **moto.server.settings(bucket))
        async with App(settings, clock=clock) as app, Client(app) as client:
            await registered(client)
            kept = await upload(client, wav_bytes(1, salt=b"before"))
            await wait_for_health(client, "file.FileService", SERVING)

            moto.stop()
            code, message = await status_of(upload(client, wav_bytes(1, salt=b"during")))
            assert code == grpc.StatusCode.UNAVAILABLE
            assert f"S3 bucket {bucket} at {moto.server.endpoint}" in message
            code, message = await stream_status(client.file.Download(
                file_pb2.DownloadRequest(hash=kept.hash), metadata=client.meta()))
            assert code == grpc.StatusCode.UNAVAILABLE and bucket in message
            await wait_for_health(client, "file.FileService", NOT_SERVING)
            assert await health(client, "") == SERVING
            assert await health(client, "auth.AuthService") == SERVING

            moto.start()  # an empty moto: the server makes the bucket again
            await wait_for_health(client, "file.FileService", SERVING)
            song = wav_bytes(1, salt=b"after")
            assert (await upload(client, song)).hash == sha(song)
            assert (await download(client, sha(song)))[0] == song


async def test_server_starts_while_storage_is_down_and_serves_once_it_is_up(tmp_path, clock):
    moto = MotoServer(free_port())  # not started yet: nothing listens there
    bucket = new_bucket()
    settings = make_settings(tmp_path / "data", storage_timeout=10,  # as above
                             **moto.server.settings(bucket))
    async with App(settings, clock=clock) as app, Client(app) as client:
        await registered(client)
        assert await health(client, "file.FileService") == NOT_SERVING
        code, message = await status_of(upload(client, wav_bytes(1, salt=b"early")))
        assert code == grpc.StatusCode.UNAVAILABLE and moto.server.endpoint in message
        with moto:
            await wait_for_health(client, "file.FileService", SERVING)
            song = wav_bytes(1, salt=b"late")
            assert (await upload(client, song)).hash == sha(song)


async def test_storage_that_hangs_gives_unavailable_after_the_timeout(tmp_path, clock):
    listener = SilentListener()
    try:
        endpoint = f"127.0.0.1:{listener.port}"
        settings = make_settings(tmp_path / "data", storage_timeout=1, s3_endpoint=endpoint,
                                 s3_access_key="key", s3_secret_key="secret")
        async with App(settings, clock=clock) as app, Client(app) as client:
            await registered(client)
            code, message = await status_of(upload(client, wav_bytes(1, salt=b"hang")))
            assert code == grpc.StatusCode.UNAVAILABLE
            assert f"S3 bucket music at {endpoint}" in message
            assert await health(client, "file.FileService") == NOT_SERVING
            assert await health(client, "") == SERVING
    finally:
        listener.close()
