"""The documentation says what the server does: statuses, limits, ports.

Each check runs the behaviour against a real server and then reads what
README.md and docs/android.md say about it.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2

from musicsync.proto import file_pb2, sync_pb2

from .helpers import sha, status_of
from .transfer import stream_status, wav_bytes

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
ANDROID = (ROOT / "docs" / "android.md").read_text()
SONG = wav_bytes(20, salt=b"docs")  # 320 KB


def error_table() -> list[tuple[str, str]]:
    """(status, when) of each row of docs/android.md's error table."""
    section = ANDROID.split("## 5. Errors", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].isupper() and cells[0].replace("_", "").isalpha():
            rows.append((cells[0], cells[1]))
    return rows


def documented_under(phrase: str) -> set[str]:
    """The statuses whose rows mention ``phrase``."""
    return {status for status, when in error_table() if phrase.lower() in when.lower()}


async def upload_status(client, *messages) -> tuple[grpc.StatusCode, str]:
    call = client.file.Upload(metadata=client.meta())
    for message in messages:
        await call.write(message)
    await call.done_writing()
    return await status_of(call)


async def test_the_error_table_lists_each_upload_and_sync_failure_under_its_real_status(
        client, alice):
    session = await client.file.StartUpload(file_pb2.StartUploadRequest(
        sha256=sha(SONG), size=len(SONG)), metadata=client.meta())
    first = file_pb2.FileMetadata(upload_id=session.upload_id, offset=0)
    seen = {
        "unknown or expired upload session": await upload_status(
            client, file_pb2.UploadRequest(metadata=file_pb2.FileMetadata(
                upload_id="no-such-session", offset=0))),
        "an `offset` other than the session's": await upload_status(
            client, file_pb2.UploadRequest(metadata=file_pb2.FileMetadata(
                upload_id=session.upload_id, offset=1000))),
        "a stream ended before the last byte": await upload_status(
            client, file_pb2.UploadRequest(metadata=first),
            file_pb2.UploadRequest(chunk=SONG[:100_000])),
        "`Download` of a hash not in the user's library": await stream_status(
            client.file.Download(file_pb2.DownloadRequest(hash="0" * 64),
                                 metadata=client.meta())),
        "unknown to the server": await status_of(client.sync.Changes(
            sync_pb2.ChangesRequest(since=10**6), metadata=client.meta())),
    }
    for phrase, (code, message) in seen.items():
        assert code != grpc.StatusCode.OK, phrase
        assert documented_under(phrase) == {code.name}, (phrase, code, message)


def stated_getsync_capacity(text: str) -> list[tuple[int, int]]:
    """(songs, filename characters) pairs the text gives for GetSync's one message."""
    found = re.findall(r"([\d,]+) songs with (\d+)-character filenames|"
                       r"([\d,]+) with (\d+)-character ones", " ".join(text.split()))
    return [(int((a or c).replace(",", "")), int(b or d)) for a, b, c, d in found]


def fill_library(database: Path, songs: int, name_length: int) -> None:
    """``songs`` entries of alice (user 1) with filenames of ``name_length`` characters,
    written as uploads would (the rows only: GetSync reads nothing else)."""
    now = int(time.time())
    with sqlite3.connect(database, timeout=30) as db:
        db.execute("DELETE FROM library")
        db.execute("DELETE FROM blobs")
        rows = [(hashlib.sha256(b"docs %d" % n).digest(), n) for n in range(songs)]
        db.executemany("INSERT INTO blobs (sha256, size, created_at, corrupt) "
                       "VALUES (?, 1000, ?, 0)", ((sha256, now) for sha256, _ in rows))
        db.executemany(
            "INSERT INTO library (user_id, sha256, filename, path, size, created_at, "
            "updated_at, seq) VALUES (1, ?, ?, ?, 1000, ?, ?, ?)",
            ((sha256, name, name, now, now, n + 1) for sha256, n in rows
             for name in (f"{n:09d}".ljust(name_length, "x"),)))


async def test_the_documented_getsync_capacity_is_the_servers_within_2_percent(
        client, alice, settings):
    readme, android = stated_getsync_capacity(README), stated_getsync_capacity(ANDROID)
    assert readme and readme == android, (readme, android)
    for songs, name_length in readme:
        fill_library(settings.data_dir / "musicsync.db", int(songs * 0.98), name_length)
        code, message = await status_of(client.sync.GetSync(empty_pb2.Empty(),
                                                            metadata=client.meta()))
        assert code == grpc.StatusCode.OK, (songs, name_length, message)
        fill_library(settings.data_dir / "musicsync.db", int(songs * 1.02), name_length)
        code, _ = await status_of(client.sync.GetSync(empty_pb2.Empty(),
                                                      metadata=client.meta()))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, (songs, name_length)


@pytest.mark.parametrize("name, text", [("README.md", README), ("docs/android.md", ANDROID)])
def test_every_port_serving_every_service_is_said_only_of_one_process(name, text):
    """Services run separately answer only on their own port (pinned by
    test_cli.test_single_auth_service_listens_on_port_from_the_environment)."""
    sentences = re.split(r"(?<=[.:;])\s", " ".join(text.split()))
    claim = re.compile(r"every port serves every service|ports? serves? all of them", re.I)
    claims = [s for s in sentences if claim.search(s)]
    assert claims, f"{name} no longer says which ports serve what"
    for sentence in claims:
        assert "one process" in sentence, (name, sentence)


async def test_the_sync_limits_in_the_guide_are_the_ones_the_server_enforces(client, alice):
    text = " ".join(ANDROID.split())
    assert "The id is 1 to 128 printable characters and the name at most 256" in text
    assert "500 if 0, at most 1,000" in text and "10 to 3,600; 30 if 0" in text

    async def changes(**fields) -> grpc.StatusCode:
        return (await status_of(client.sync.Changes(sync_pb2.ChangesRequest(**fields),
                                                    metadata=client.meta())))[0]

    def device(id_length: int, name_length: int = 0) -> sync_pb2.Device:
        return sync_pb2.Device(id="d" * id_length, name="n" * name_length)

    assert await changes(device=device(128, 256), limit=1000) == grpc.StatusCode.OK
    assert await changes(device=device(129)) == grpc.StatusCode.INVALID_ARGUMENT
    assert await changes(device=device(8, 257)) == grpc.StatusCode.INVALID_ARGUMENT
    assert await changes(limit=1001) == grpc.StatusCode.INVALID_ARGUMENT
    watch = client.sync.Watch(sync_pb2.WatchRequest(heartbeat_seconds=3601),
                              metadata=client.meta())
    assert (await stream_status(watch))[0] == grpc.StatusCode.INVALID_ARGUMENT
    code, _ = await status_of(client.sync.Ack(sync_pb2.AckRequest(cursor=0),
                                              metadata=client.meta()))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
