"""`musicsync fsck` and `musicsync gc` against a running server's database and blob store."""

from __future__ import annotations

import asyncio
import io
import os
import time

import grpc
import pytest

from musicsync import cli
from musicsync.proto import auth_pb2, file_pb2
from musicsync.server import App

from .conftest import PASSWORD, REGISTRATION_KEY, make_settings
from .helpers import Client, FakeClock, free_port, query, sha, status_of
from .transfer import download, leftovers, stored_blobs, upload, wav_bytes

SONG = wav_bytes(2, salt=b"maintenance one")
OTHER = wav_bytes(2, salt=b"maintenance two")
LONG_ONE = wav_bytes(20, salt=b"maintenance long one")  # 320 KB
LONG_TWO = wav_bytes(20, salt=b"maintenance long two")


async def run_cli(capsys, *argv: str) -> tuple[int, str]:
    """The real `musicsync` entry point (in a thread: it runs its own event loop)."""
    capsys.readouterr()
    code = await asyncio.to_thread(cli.main, list(argv))
    return code, capsys.readouterr().out


def where(settings) -> list[str]:
    """The command-line options naming the test server's data and database."""
    options = ["--data-dir", str(settings.data_dir)]
    if settings.database_url:
        options += ["--database-url", settings.database_url]
    return options


def blob_path(settings, digest: str):
    return settings.data_dir / "blobs" / digest[:2] / digest[2:4] / digest


def orphan(settings, data: bytes, age: float):
    """A stored blob that no library lists, written ``age`` seconds ago."""
    path = blob_path(settings, sha(data))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    then = time.time() - age
    os.utime(path, (then, then))
    return path


async def registered_client(app: App) -> Client:
    client = Client(app)
    client.token = (await client.auth.Register(auth_pb2.RegisterRequest(
        username="alice", password=PASSWORD, security_key=REGISTRATION_KEY))).token
    return client


async def partial_upload(client, data: bytes, sent: int) -> None:
    """A resumable upload that stopped after ``sent`` bytes: its partial data is kept."""
    session = await client.file.StartUpload(file_pb2.StartUploadRequest(
        sha256=sha(data), size=len(data)), metadata=client.meta())
    call = client.file.Upload(metadata=client.meta())
    await call.write(file_pb2.UploadRequest(metadata=file_pb2.FileMetadata(
        upload_id=session.upload_id, offset=0)))
    await call.write(file_pb2.UploadRequest(chunk=data[:sent]))
    await call.done_writing()
    with pytest.raises(grpc.aio.AioRpcError):  # "continue from byte <sent>"
        await call


async def download_status(client, digest: str) -> tuple[grpc.StatusCode, str]:
    try:
        await download(client, digest)
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details()
    return grpc.StatusCode.OK, ""


async def test_fsck_says_all_is_well_for_a_healthy_library(client, alice, settings, capsys):
    await upload(client, SONG, file_pb2.FileMetadata(filename="one.wav"))
    await upload(client, OTHER, file_pb2.FileMetadata(filename="two.wav"))
    code, out = await run_cli(capsys, "fsck", *where(settings))
    assert code == 0, out
    assert "checked 2 library entries and 2 blobs" in out and "all is well" in out


async def test_fsck_reports_a_lost_blob_and_downloads_answer_data_loss(client, alice, settings,
                                                                       capsys):
    await upload(client, SONG)
    blob_path(settings, sha(SONG)).unlink()
    code, out = await run_cli(capsys, "fsck", *where(settings))
    assert code == 1 and "missing" in out and sha(SONG) in out
    code, out = await run_cli(capsys, "fsck", "--repair", *where(settings))
    assert code == 1 and "marked corrupt" in out
    status, message = await download_status(client, sha(SONG))
    assert status == grpc.StatusCode.DATA_LOSS and "upload" in message
    assert (await client.file.Stat(file_pb2.StatRequest(hashes=[sha(SONG)]),
                                   metadata=client.meta())).files  # the entry is kept


async def test_fsck_repair_marks_a_corrupt_blob_until_it_is_uploaded_again(
        client, alice, settings, capsys):
    await upload(client, SONG, file_pb2.FileMetadata(filename="one.wav"))
    path = blob_path(settings, sha(SONG))
    damaged = bytearray(path.read_bytes())
    damaged[1000] ^= 0xFF  # one flipped byte: same size, other content
    path.write_bytes(bytes(damaged))
    code, out = await run_cli(capsys, "fsck", *where(settings))
    assert code == 1 and "corrupt" in out and sha(SONG) in out
    assert (await download_status(client, sha(SONG)))[0] == grpc.StatusCode.OK  # not yet marked
    code, out = await run_cli(capsys, "fsck", "--repair", *where(settings))
    assert code == 1 and "marked corrupt" in out
    status, message = await download_status(client, sha(SONG))
    assert status == grpc.StatusCode.DATA_LOSS and "damaged" in message
    await upload(client, SONG, file_pb2.FileMetadata(filename="one.wav"))  # heals it
    assert (await download(client, sha(SONG)))[0] == SONG
    code, out = await run_cli(capsys, "fsck", *where(settings))
    assert code == 0, out


async def test_fsck_finds_statistics_totals_edited_by_hand_and_repair_recomputes_them(
        client, alice, settings, capsys):
    await upload(client, SONG, file_pb2.FileMetadata(filename="one.wav"))
    before = query(settings, "SELECT * FROM library_totals")
    query(settings, "UPDATE library_totals SET songs = songs + 5")
    code, out = await run_cli(capsys, "fsck", *where(settings))
    assert code == 1 and "stats-totals" in out and "library_totals" in out
    assert "album_plays" not in out
    code, out = await run_cli(capsys, "fsck", "--repair", *where(settings))
    assert code == 1 and "computed afresh" in out
    assert query(settings, "SELECT * FROM library_totals") == before
    code, out = await run_cli(capsys, "fsck", *where(settings))
    assert code == 0 and "all is well" in out, out


async def test_fsck_quick_mode_skips_rehashing(client, alice, settings, capsys):
    await upload(client, SONG)
    path = blob_path(settings, sha(SONG))
    damaged = bytearray(path.read_bytes())
    damaged[1000] ^= 0xFF
    path.write_bytes(bytes(damaged))
    code, out = await run_cli(capsys, "fsck", "--no-rehash", *where(settings))
    assert code == 0 and "re-hashed" not in out


async def test_orphans_are_removed_only_once_older_than_the_grace_period(
        client, alice, settings, capsys):
    await upload(client, SONG)
    old = orphan(settings, OTHER, age=2 * 3600)
    fresh = orphan(settings, wav_bytes(1, salt=b"fresh orphan"), age=0)
    code, out = await run_cli(capsys, "fsck", *where(settings))
    assert code == 1 and "orphan-blob" in out and sha(OTHER) in out
    assert fresh.name not in out  # maybe an upload finishing: not judged yet
    code, out = await run_cli(capsys, "fsck", "--repair", *where(settings))
    assert code == 1 and "removed" in out
    assert not old.exists() and fresh.exists() and blob_path(settings, sha(SONG)).exists()
    code, out = await run_cli(capsys, "gc", *where(settings))
    assert code == 0 and "removed 0 unreferenced blobs" in out and fresh.exists()


async def test_fsck_leaves_a_fresh_blob_record_of_an_upload_in_progress_alone(
        client, alice, settings, capsys):
    # An upload records its blob just before the store's commit (Files.publish).
    query(settings, "INSERT INTO blobs (sha256, size, created_at) VALUES (?, 5, ?)",
          bytes.fromhex(sha(SONG)), int(time.time()))
    code, out = await run_cli(capsys, "fsck", *where(settings))
    assert code == 0, out
    code, out = await run_cli(capsys, "fsck", "--grace", "0s", *where(settings))
    assert code == 1 and "orphan-row" in out and sha(SONG) in out


async def test_gc_removes_unreferenced_blobs_and_dry_run_removes_nothing(
        client, alice, settings, capsys):
    await upload(client, SONG)
    stray = orphan(settings, OTHER, age=2 * 3600)
    code, out = await run_cli(capsys, "gc", "--dry-run", *where(settings))
    assert code == 0 and f"would remove blob {sha(OTHER)}" in out and stray.exists()
    code, out = await run_cli(capsys, "gc", *where(settings))
    assert code == 0 and f"removed blob {sha(OTHER)} ({len(OTHER)} bytes)" in out
    assert not stray.exists()
    assert (await download(client, sha(SONG)))[0] == SONG  # the listed song is untouched


async def test_gc_drops_expired_upload_sessions_and_keeps_live_ones(tmp_path, capsys):
    settings = make_settings(tmp_path / "data")
    clock = FakeClock(time.time() - 3 * 86400)  # the first session started 3 days ago
    async with App(settings, clock=clock) as app:
        client = await registered_client(app)
        for data in (LONG_ONE, LONG_TWO):
            await partial_upload(client, data, 100_000)
            clock.now = time.time()  # the second one starts now
            client.token = (await client.auth.Login(auth_pb2.LoginRequest(
                username="alice", password=PASSWORD))).token
        assert len(leftovers(settings.data_dir)) == 2
        code, out = await run_cli(capsys, "gc", *where(settings))
        assert code == 0 and "1 expired upload sessions and 1 partial files" in out
        assert len(leftovers(settings.data_dir)) == 1
        resumed = await client.file.StartUpload(file_pb2.StartUploadRequest(
            sha256=sha(LONG_TWO), size=len(LONG_TWO)), metadata=client.meta())
        assert resumed.offset == 100_000  # the live session kept its bytes
        await client.channel.close()


async def test_gc_leaves_an_upload_in_progress_alone(client, alice, settings, capsys):
    call = client.file.Upload(metadata=client.meta())
    await call.write(file_pb2.UploadRequest(metadata=file_pb2.FileMetadata(filename="slow.wav")))
    # A first batch of bytes (256 KiB): the server creates its temporary file with them.
    await call.write(file_pb2.UploadRequest(chunk=LONG_ONE[:300_000]))
    for _ in range(100):  # the server has the first bytes in its temporary file
        if leftovers(settings.data_dir):
            break
        await asyncio.sleep(0.02)
    assert leftovers(settings.data_dir)
    code, out = await run_cli(capsys, "gc", "--grace", "0s", *where(settings))
    assert code == 0
    code, out = await run_cli(capsys, "fsck", "--repair", "--grace", "0s",
                              *where(settings))
    assert code == 0, out
    await call.write(file_pb2.UploadRequest(chunk=LONG_ONE[300_000:]))
    await call.done_writing()
    assert (await call).hash == sha(LONG_ONE)
    assert (await download(client, sha(LONG_ONE)))[0] == LONG_ONE
    assert stored_blobs(settings.data_dir) == [blob_path(settings, sha(LONG_ONE))]


async def test_fsck_without_a_database_is_a_usage_error(tmp_path, capsys):
    code = await asyncio.to_thread(cli.main, ["fsck", "--data-dir", str(tmp_path / "none")])
    assert code == 2 and "no musicsync database at" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


async def test_fsck_finds_a_corrupt_object_in_s3(tmp_path, s3_server, s3_bucket, capsys):
    s3 = s3_server.settings(s3_bucket)
    settings = make_settings(tmp_path / "data", **s3)
    flags = [*where(settings), "--s3-endpoint", s3["s3_endpoint"],
             "--s3-access-key", s3["s3_access_key"], "--s3-secret-key", s3["s3_secret_key"],
             "--s3-bucket", s3_bucket]
    async with App(settings) as app:
        client = await registered_client(app)
        await upload(client, SONG)
        await upload(client, OTHER)
        code, out = await run_cli(capsys, "fsck", *flags)
        assert code == 0 and "2 blobs in S3 bucket" in out, out
        damaged = bytearray(SONG)
        damaged[1000] ^= 0xFF
        s3_server.client().put_object(s3_bucket, f"blobs/{sha(SONG)}", io.BytesIO(damaged),
                                      len(damaged))
        code, out = await run_cli(capsys, "fsck", "--repair", *flags)
        assert code == 1 and "corrupt" in out and sha(SONG) in out and sha(OTHER) not in out
        status, _ = await download_status(client, sha(SONG))
        assert status == grpc.StatusCode.DATA_LOSS
        await client.channel.close()


async def test_user_delete_removes_the_songs_no_other_library_holds_at_once(
        client, alice, settings, capsys):
    bob = (await client.auth.Register(auth_pb2.RegisterRequest(
        username="bob", password=PASSWORD, security_key=REGISTRATION_KEY))).token
    await upload(client, SONG, file_pb2.FileMetadata(filename="alice only.wav"))
    await upload(client, OTHER, file_pb2.FileMetadata(filename="both.wav"))
    await upload(client, OTHER, file_pb2.FileMetadata(filename="bob's.wav"), token=bob)
    await partial_upload(client, LONG_ONE, 100_000)
    assert len(leftovers(settings.data_dir)) == 1

    code = await asyncio.to_thread(cli.main, ["user", "delete", "alice", "--yes",
                                              *where(settings)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert stored_blobs(settings.data_dir) == [blob_path(settings, sha(OTHER))]
    assert leftovers(settings.data_dir) == []
    assert "deleted alice" in out and "removed 1 files" in out and "kept 1" in out
    assert "1 unfinished uploads" in out
    assert (await download(client, sha(OTHER), token=bob))[0] == OTHER
    code, out = await run_cli(capsys, "fsck", "--grace", "0s", *where(settings))
    assert code == 0 and "all is well" in out, out
    code, out = await run_cli(capsys, "gc", "--grace", "0s", *where(settings))
    assert code == 0 and "removed 0 unreferenced blobs" in out and "0 stale blob records" in out


async def test_user_delete_with_the_storage_down_deletes_the_user_and_leaves_blobs_to_gc(
        client, alice, settings, capsys):
    await upload(client, SONG)
    unreachable = ["--s3-endpoint", f"127.0.0.1:{free_port()}", "--s3-access-key", "key",
                   "--s3-secret-key", "secret", "--storage-timeout", "5s"]
    code = await asyncio.to_thread(cli.main, ["user", "delete", "alice", "--yes", *unreachable,
                                              *where(settings)])
    out, err = capsys.readouterr()
    assert code == 1
    assert "deleted alice" in out
    assert "1 files of alice are still in the storage" in err and "musicsync gc" in err
    assert "Traceback" not in err
    code, _ = await status_of(client.auth.Login(auth_pb2.LoginRequest(
        username="alice", password=PASSWORD)))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert blob_path(settings, sha(SONG)).exists()
    code, out = await run_cli(capsys, "gc", "--grace", "0s", *where(settings))
    assert code == 0 and f"removed blob {sha(SONG)}" in out
    assert stored_blobs(settings.data_dir) == []


async def test_user_delete_given_other_storage_than_the_servers_says_so_and_keeps_records(
        tmp_path, s3_server, s3_bucket, capsys):
    """Run where S3_* is not set (e.g. in the auth container) against a server storing in S3."""
    s3 = s3_server.settings(s3_bucket)
    settings = make_settings(tmp_path / "data", **s3)
    async with App(settings) as app:
        client = await registered_client(app)
        await upload(client, SONG)
        code = await asyncio.to_thread(cli.main, ["user", "delete", "alice", "--yes",
                                                  *where(settings)])
        out, err = capsys.readouterr()
        assert code == 1
        assert "removed 0 files" in out
        assert "1 files of alice were not in local folder" in err and "S3_ENDPOINT" in err
        flags = [*where(settings), "--s3-endpoint", s3["s3_endpoint"],
                 "--s3-access-key", s3["s3_access_key"], "--s3-secret-key",
                 s3["s3_secret_key"], "--s3-bucket", s3_bucket, "--grace", "0s"]
        code, out = await run_cli(capsys, "gc", *flags)
        assert code == 0 and f"removed blob {sha(SONG)}" in out
        code, out = await run_cli(capsys, "fsck", *flags)
        assert code == 0 and "all is well" in out, out
        await client.channel.close()
