"""`musicsync backup FILE`: a consistent copy of the database of a running server."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import stat
import sys
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update

from musicsync import cli
from musicsync.db.migrations import LATEST_VERSION
from musicsync.db.models import Blob, Change, LibraryEntry, User
from musicsync.library.entries import Tags, ensure_blob, put_entry
from musicsync.sync.changes import ChangeKind
from musicsync.proto import auth_pb2
from musicsync.server import App

from .conftest import PASSWORD, make_settings
from .helpers import Client


def backup(settings, target: Path, *extra: str) -> int:
    return cli.main(["backup", str(target), "--data-dir", str(settings.data_dir), *extra])


async def user_id(app: App, username: str) -> int:
    async with app.db.read() as session:
        return await session.scalar(select(User.id).where(User.username == username))


async def add_songs(app: App, uid: int, first: int, count: int) -> None:
    """Adds songs number first..first+count-1 to the library in one transaction."""
    async with app.db.write() as session:
        for number in range(first, first + count):
            digest = hashlib.sha256(str(number).encode()).digest()
            await session.run_sync(ensure_blob, digest, 1000 + number, 1_700_000_000)
            await session.run_sync(put_entry, uid, digest, 1000 + number, f"song {number}.mp3",
                                   Tags(title=f"Song {number}", artist="Artist"), 1_700_000_000)


async def fill_library(app: App, uid: int, count: int) -> None:
    """A big library in one quick transaction, as put_entry would leave it."""
    rows = [(hashlib.sha256(str(number).encode()).digest(), number + 1)
            for number in range(count)]
    async with app.db.write() as session:
        await session.execute(insert(Blob), [
            {"sha256": digest, "size": 1000, "created_at": 1, "corrupt": False}
            for digest, _ in rows])
        await session.execute(insert(LibraryEntry), [
            {"user_id": uid, "sha256": digest, "filename": f"song {seq}.mp3",
             "path": f"song {seq}.mp3", "size": 1000,
             "title": f"A song with a title long enough to fill pages {seq}",
             "created_at": 1, "updated_at": 1, "seq": seq} for digest, seq in rows])
        await session.execute(insert(Change), [
            {"user_id": uid, "seq": seq, "kind": int(ChangeKind.ADDED), "sha256": digest,
             "at": 1} for digest, seq in rows])
        await session.execute(update(User).where(User.id == uid).values(last_seq=count))


def read_copy(path: Path) -> dict:
    with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as connection:
        def one(sql: str):
            return connection.execute(sql).fetchone()[0]

        return {
            "check": one("PRAGMA integrity_check"),
            "version": one("PRAGMA user_version"),
            "journal": one("PRAGMA journal_mode"),
            "users": [row[0] for row in connection.execute("SELECT username FROM users")],
            "songs": one("SELECT count(*) FROM library"),
            "last_seq": one("SELECT max(last_seq) FROM users"),
            "changes": one("SELECT count(*) FROM changes"),
            "max_change": one("SELECT coalesce(max(seq), 0) FROM changes"),
        }


async def test_backup_while_songs_are_being_added_is_a_consistent_snapshot(app, alice, tmp_path):
    uid = await user_id(app, "alice")
    await fill_library(app, uid, 10_000)  # enough pages that copying takes a moment
    committed = 10_000
    stop = asyncio.Event()

    async def keep_adding() -> None:
        nonlocal committed
        while not stop.is_set():
            await add_songs(app, uid, committed, 5)
            committed += 5

    writer = asyncio.create_task(keep_adding())
    before = committed
    target = tmp_path / "backup.db"
    # A process of its own, as an operator runs it beside the server.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "musicsync.cli", "backup", str(target),
        "--data-dir", str(app.settings.data_dir), stdout=asyncio.subprocess.PIPE)
    output, _ = await process.communicate()
    after = committed
    stop.set()
    await writer

    assert process.returncode == 0, output
    assert b"schema version" in output and b"1 users" in output
    copy = read_copy(target)
    print(f"committed {before} before the backup, {after} after; the copy holds {copy['songs']}")
    assert copy["check"] == "ok"
    assert copy["version"] == LATEST_VERSION
    assert copy["journal"] == "delete"  # one self-contained file, no -wal beside it
    assert copy["users"] == ["alice"]
    assert before <= copy["songs"] <= after + 5
    assert copy["songs"] % 5 == 0  # whole transactions only
    # The library, its change feed and the user's sequence agree with each other.
    assert copy["songs"] == copy["changes"] == copy["max_change"] == copy["last_seq"]


async def test_backup_leaves_out_a_transaction_still_open(app, alice, tmp_path):
    uid = await user_id(app, "alice")
    await add_songs(app, uid, 0, 10)
    target = tmp_path / "backup.db"
    async with app.db.write() as session:  # holds SQLite's write lock meanwhile
        digest = hashlib.sha256(b"uncommitted").digest()
        await session.run_sync(ensure_blob, digest, 1, 1_700_000_000)
        await session.run_sync(put_entry, uid, digest, 1, "late.mp3", Tags(), 1_700_000_000)
        code = await asyncio.to_thread(backup, app.settings, target)
    assert code == 0
    assert read_copy(target)["songs"] == 10


async def test_restored_backup_serves_the_accounts_it_held(app, alice, tmp_path):
    target = tmp_path / "backup.db"
    assert await asyncio.to_thread(backup, app.settings, target) == 0
    restored = tmp_path / "restored"
    restored.mkdir()
    target.rename(restored / "musicsync.db")
    async with App(make_settings(restored)) as second, Client(second) as client:
        response = await client.auth.Login(auth_pb2.LoginRequest(
            username="alice", password=PASSWORD))
    assert response.token


async def test_backup_refuses_to_replace_a_file_without_force(app, tmp_path, capsys):
    target = tmp_path / "backup.db"
    target.write_bytes(b"last week's backup")
    code = await asyncio.to_thread(backup, app.settings, target)
    assert code == 1
    assert "--force" in capsys.readouterr().err
    assert target.read_bytes() == b"last week's backup"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup.db", "data"]


async def test_backup_with_force_replaces_the_file(app, alice, tmp_path):
    target = tmp_path / "backup.db"
    target.write_bytes(b"last week's backup")
    assert await asyncio.to_thread(backup, app.settings, target, "--force") == 0
    assert read_copy(target)["users"] == ["alice"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup.db", "data"]


async def test_backup_is_readable_by_its_owner_only(app, tmp_path):
    target = tmp_path / "backup.db"
    assert await asyncio.to_thread(backup, app.settings, target) == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_backup_without_a_database_is_a_usage_error_and_creates_none(tmp_path, capsys):
    settings = make_settings(tmp_path / "empty")
    settings.data_dir.mkdir()
    assert backup(settings, tmp_path / "backup.db") == 2  # as fsck, gc and user commands
    assert f"no musicsync database at {settings.data_dir / 'musicsync.db'}" in \
        capsys.readouterr().err
    assert list(settings.data_dir.iterdir()) == []
    assert not (tmp_path / "backup.db").exists()


@pytest.mark.parametrize("where", ["folder", "missing/backup.db"])
async def test_backup_to_a_folder_or_a_missing_folder_is_refused(app, tmp_path, where, capsys):
    (tmp_path / "folder").mkdir()
    assert await asyncio.to_thread(backup, app.settings, tmp_path / where) == 1
    assert capsys.readouterr().err.startswith("musicsync: ")


async def test_backup_over_the_database_itself_is_refused(app, capsys):
    database = app.settings.data_dir / "musicsync.db"
    assert await asyncio.to_thread(backup, app.settings, database, "--force") == 1
    assert "database itself" in capsys.readouterr().err
