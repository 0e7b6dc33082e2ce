"""Crash safety: SIGKILL the server in the middle of an upload, then restart it."""

from __future__ import annotations

import hashlib
import shutil
import signal
import sqlite3
from pathlib import Path

import grpc
import pytest

from musicsync.proto import auth_pb2, auth_pb2_grpc, file_pb2, file_pb2_grpc
from musicsync.server import App

from .conftest import PASSWORD, REGISTRATION_KEY, make_settings
from .helpers import Client, ServerProcess, free_port, wait_until
from .transfer import leftovers, stored_blobs, upload_requests, wav_bytes

ENV = {"ARGON2_TIME_COST": "1", "ARGON2_MEMORY_KIB": "1024", "ARGON2_PARALLELISM": "1",
       "SECURITY_KEY": REGISTRATION_KEY, "HOST": "127.0.0.1"}
BIG_SONG = wav_bytes(1300, salt=b"crash")  # about 20.8 MB


def start_server(data: Path, port: int, log: Path, **env: str) -> ServerProcess:
    return ServerProcess(["serve", "--data-dir", str(data), "--auth-port", str(port),
                          "--file-port", "0", "--sync-port", "0"], {**ENV, **env}, log)


def library_hashes(data: Path) -> list[str]:
    with sqlite3.connect(data / "musicsync.db") as db:
        return [row[0].hex() for row in db.execute("SELECT sha256 FROM library")]


def partial_bytes(data: Path) -> int:
    return sum(p.stat().st_size for p in (data / "blobs" / ".partial").glob("*"))


@pytest.fixture
def port() -> int:
    return free_port()


async def sign_in(channel, register: bool) -> tuple[tuple[str, str], ...]:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    if register:
        token = (await stub.Register(auth_pb2.RegisterRequest(
            username="alice", password=PASSWORD, security_key=REGISTRATION_KEY))).token
    else:
        token = (await stub.Login(auth_pb2.LoginRequest(username="alice", password=PASSWORD))).token
    return (("authorization", f"Bearer {token}"),)


async def test_sigkill_mid_upload_leaves_no_entry_blob_or_temp_data(tmp_path, port):
    data = tmp_path / "data"
    server = start_server(data, port, tmp_path / "log1")
    try:
        await server.wait_serving(port)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            meta = await sign_in(channel, register=True)
            call = file_pb2_grpc.FileServiceStub(channel).Upload(metadata=meta)
            await call.write(file_pb2.UploadRequest(metadata=file_pb2.FileMetadata(
                filename="crash.wav")))
            for start in range(0, 4_000_000, 64 * 1024):
                await call.write(file_pb2.UploadRequest(chunk=BIG_SONG[start:start + 64 * 1024]))
            await wait_until(lambda: any(p.stat().st_size for p in leftovers(data)),
                             "the upload to reach the disk")
            server.kill()
            call.cancel()
        assert leftovers(data)  # the crash left a temp file behind...
    finally:
        server.kill()
    restarted = start_server(data, port, tmp_path / "log2")
    try:
        await restarted.wait_serving(port)
        assert leftovers(data) == []  # ...which start-up removed
        assert stored_blobs(data) == [] and library_hashes(data) == []
    finally:
        restarted.stop()


async def send_resumable(channel, meta, request: file_pb2.StartUploadRequest, sent: int):
    """Starts a resumable upload of BIG_SONG and sends its first ``sent`` bytes in 64 KiB
    chunks, leaving the stream open: (the session, the call)."""
    files = file_pb2_grpc.FileServiceStub(channel)
    session = await files.StartUpload(request, metadata=meta)
    call = files.Upload(metadata=meta)
    await call.write(file_pb2.UploadRequest(metadata=file_pb2.FileMetadata(
        upload_id=session.upload_id)))
    for start in range(0, sent, 64 * 1024):
        await call.write(file_pb2.UploadRequest(chunk=BIG_SONG[start:min(start + 64 * 1024,
                                                                         sent)]))
    return session, call


async def test_sigkill_mid_resumable_upload_resumes_after_every_byte_on_disk(tmp_path, port):
    # Below the first checkpoint (16 MiB): the session's recorded offset is still 0.
    data = tmp_path / "data"
    sha = hashlib.sha256(BIG_SONG).hexdigest()
    request = file_pb2.StartUploadRequest(sha256=sha, size=len(BIG_SONG))
    server = start_server(data, port, tmp_path / "log1")
    try:
        await server.wait_serving(port)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            meta = await sign_in(channel, register=True)
            session, call = await send_resumable(channel, meta, request, 6_000_000)
            await wait_until(lambda: partial_bytes(data) >= 5_000_000, "the bytes on disk")
            server.kill()
            call.cancel()
    finally:
        server.kill()
    held = partial_bytes(data)
    restarted = start_server(data, port, tmp_path / "log2")
    try:
        await restarted.wait_serving(port)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            meta = await sign_in(channel, register=False)
            files = file_pb2_grpc.FileServiceStub(channel)
            resumed = await files.StartUpload(request, metadata=meta)
            assert (resumed.upload_id, resumed.offset) == (session.upload_id, held)
            response = await files.Upload(upload_requests(
                BIG_SONG[resumed.offset:], file_pb2.FileMetadata(
                    upload_id=session.upload_id, offset=resumed.offset)), metadata=meta)
            assert response.hash == sha
            downloaded = b"".join([m.chunk async for m in files.Download(
                file_pb2.DownloadRequest(hash=sha, chunk_size=1024 * 1024), metadata=meta)])
            assert hashlib.sha256(downloaded).hexdigest() == sha
        assert leftovers(data) == [] and library_hashes(data) == [sha]
        assert [p.name for p in stored_blobs(data)] == [sha]
    finally:
        restarted.stop()


async def test_a_graceful_stop_mid_resumable_upload_records_every_byte_received(tmp_path, port):
    data = tmp_path / "data"
    sent = 16_500_000
    sha = hashlib.sha256(BIG_SONG).hexdigest()
    request = file_pb2.StartUploadRequest(sha256=sha, size=len(BIG_SONG))
    # The stream stays open: the server cancels it when the grace period is over.
    server = start_server(data, port, tmp_path / "log1", SHUTDOWN_GRACE="1")
    try:
        await server.wait_serving(port)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            meta = await sign_in(channel, register=True)
            session, call = await send_resumable(channel, meta, request, sent)
            await wait_until(lambda: partial_bytes(data) >= sent - 256 * 1024,
                             "the bytes to reach the server")
            assert server.stop(signal.SIGINT) == 0
            call.cancel()
    finally:
        server.kill()
    restarted = start_server(data, port, tmp_path / "log2")
    try:
        await restarted.wait_serving(port)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            meta = await sign_in(channel, register=False)
            resumed = await file_pb2_grpc.FileServiceStub(channel).StartUpload(
                request, metadata=meta)
            assert (resumed.upload_id, resumed.offset) == (session.upload_id, sent)
    finally:
        restarted.stop()


async def test_a_plain_upload_stopped_between_store_and_library_leaves_nothing_after_restart(
        tmp_path):
    settings = make_settings(tmp_path / "data")
    song = wav_bytes(3, salt=b"half published")
    digest = hashlib.sha256(song).hexdigest()
    async with App(settings):
        pass
    # What a crash right after the store's commit leaves: the blob in place and its
    # record, written before the commit, but no library entry (nothing acknowledged).
    blob = settings.data_dir / "blobs" / digest[:2] / digest[2:4] / digest
    blob.parent.mkdir(parents=True)
    blob.write_bytes(song)
    with sqlite3.connect(settings.data_dir / "musicsync.db") as db:
        db.execute("INSERT INTO blobs (sha256, size, created_at, corrupt) VALUES (?, ?, 0, 0)",
                   (bytes.fromhex(digest), len(song)))
    async with App(settings):
        assert stored_blobs(settings.data_dir) == []
        with sqlite3.connect(settings.data_dir / "musicsync.db") as db:
            assert db.execute("SELECT count(*) FROM blobs").fetchone() == (0,)


async def test_a_deleted_song_keeps_its_blob_record_until_the_blob_is_gone(tmp_path):
    # The record goes after the blob: a crash between the two (here: a store that
    # cannot delete the blob now) leaves a record for the next start to finish.
    settings = make_settings(tmp_path / "data")
    song = wav_bytes(3, salt=b"deleted")
    digest = hashlib.sha256(song).hexdigest()
    blob = settings.data_dir / "blobs" / digest[:2] / digest[2:4] / digest

    def records() -> int:
        with sqlite3.connect(settings.data_dir / "musicsync.db") as db:
            return db.execute("SELECT count(*) FROM blobs").fetchone()[0]

    async with App(settings) as app, Client(app) as client:
        client.token = (await client.auth.Register(auth_pb2.RegisterRequest(
            username="alice", password=PASSWORD, security_key=REGISTRATION_KEY))).token
        await client.file.Upload(upload_requests(song), metadata=client.meta())
        blob.unlink()
        (blob / "in-the-way").mkdir(parents=True)  # unlink of the blob fails now
        deleted = await client.file.Delete(file_pb2.DeleteRequest(hash=digest),
                                           metadata=client.meta())
        assert deleted.success and records() == 1
    shutil.rmtree(blob)
    blob.write_bytes(song)  # the store can delete it again
    async with App(settings):
        assert stored_blobs(settings.data_dir) == [] and records() == 0
