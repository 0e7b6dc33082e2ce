"""The metadata database: pragmas, writers taking turns, restarts (migrations:
test_migrations.py)."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading

import grpc
import pytest
from sqlalchemy import text

from musicsync.db import Database
from musicsync.db.migrations import migrate
from musicsync.errors import ConfigError
from musicsync.proto import auth_pb2, file_pb2
from musicsync.server import App

from .conftest import PASSWORD, REGISTRATION_KEY, make_settings
from .helpers import Client, status_of
from .transfer import download, upload, wav_bytes


async def test_connections_use_wal_foreign_keys_and_a_busy_timeout(app):
    async with app.db.read() as session:
        assert (await session.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await session.execute(text("PRAGMA foreign_keys"))).scalar() == 1
        assert (await session.execute(text("PRAGMA busy_timeout"))).scalar() > 0
    quick = await app.db.quick_read(lambda session: [
        session.execute(text(f"PRAGMA {name}")).scalar()
        for name in ("journal_mode", "foreign_keys", "busy_timeout")])
    assert quick[:2] == ["wal", 1] and quick[2] > 0


async def test_generated_keys_persist_so_tokens_survive_a_restart(tmp_path):
    settings = make_settings(tmp_path, secret_key=None, security_key=None)
    async with App(settings) as app, Client(app) as client:
        key = (settings.data_dir / "security_key").read_text().strip()
        token = (await client.auth.Register(auth_pb2.RegisterRequest(
            username="alice", password=PASSWORD, security_key=key))).token
    for name in ("secret_key", "security_key"):
        assert (settings.data_dir / name).stat().st_mode & 0o777 == 0o600
    async with App(settings) as app, Client(app) as client:
        from google.protobuf import empty_pb2
        await client.sync.GetSync(empty_pb2.Empty(), metadata=client.meta(token))
        assert (settings.data_dir / "security_key").read_text().strip() == key


async def test_database_url_accepts_a_path_or_a_sqlite_url(tmp_path):
    for url in (str(tmp_path / "a.db"), f"sqlite:///{tmp_path / 'b.db'}"):
        async with App(make_settings(tmp_path / "data", database_url=url)):
            pass
    assert (tmp_path / "a.db").exists() and (tmp_path / "b.db").exists()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_database_is_refused_as_it_would_lose_every_library(url):
    with pytest.raises(ConfigError, match="must name an SQLite file"):
        Database(url)


@pytest.fixture
def no_busy_wait(monkeypatch):
    """SQLite gives up at once on a locked database: any clash of writers shows."""
    monkeypatch.setattr("musicsync.db.sqlite.BUSY_TIMEOUT_MS", 0)


async def test_writers_of_one_process_take_turns_rather_than_clash(tmp_path, no_busy_wait):
    db = Database(str(tmp_path / "turns.db"))
    try:
        await migrate(db.writer_engine())

        async def writer(number: int) -> None:
            async with db.write() as session:
                await session.execute(text("INSERT INTO login_failures (username_key, failed_at) "
                                           "VALUES (:key, 0)"), {"key": f"user{number}"})
                await asyncio.sleep(0.001)  # hold the lock across a turn of the event loop
                await session.execute(text("UPDATE login_failures SET failed_at = 1 "
                                           "WHERE username_key = :key"), {"key": f"user{number}"})

        async with asyncio.TaskGroup() as group:
            for number in range(40):
                group.create_task(writer(number))
        async with db.read() as session:
            assert (await session.execute(text(
                "SELECT count(*) FROM login_failures WHERE failed_at = 1"))).scalar() == 40
    finally:
        await db.close()


async def test_a_database_another_program_locks_gives_unavailable_and_loses_nothing(
        tmp_path, monkeypatch):
    monkeypatch.setattr("musicsync.db.sqlite.BUSY_TIMEOUT_MS", 200)
    settings = make_settings(tmp_path / "data")
    async with App(settings) as app, Client(app) as client:
        client.token = (await client.auth.Register(auth_pb2.RegisterRequest(
            username="alice", password=PASSWORD, security_key=REGISTRATION_KEY))).token
        song = await upload(client, wav_bytes(1, salt=b"locked"))
        other_program = sqlite3.connect(settings.data_dir / "musicsync.db", isolation_level=None)
        try:
            other_program.execute("BEGIN IMMEDIATE")  # holds the write lock
            code, message = await status_of(client.file.Delete(
                file_pb2.DeleteRequest(hash=song.hash), metadata=client.meta()))
            assert code == grpc.StatusCode.UNAVAILABLE and "busy" in message
            other_program.execute("ROLLBACK")
        finally:
            other_program.close()
        assert (await download(client, song.hash))[0] == wav_bytes(1, salt=b"locked")
        assert (await client.file.Delete(file_pb2.DeleteRequest(hash=song.hash),
                                         metadata=client.meta())).success


async def test_a_write_session_holds_the_write_lock_before_its_first_statement(tmp_path):
    db = Database(str(tmp_path / "eager.db"))
    try:
        await migrate(db.writer_engine())
        other_program = sqlite3.connect(tmp_path / "eager.db", timeout=0, isolation_level=None)
        try:
            async with db.write():
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    other_program.execute("BEGIN IMMEDIATE")
            other_program.execute("BEGIN IMMEDIATE")  # free again once the session ends
            other_program.execute("ROLLBACK")
        finally:
            other_program.close()
    finally:
        await db.close()


def write_lock_is_free(database_file) -> bool:
    """Whether another program could take musicsync's write-lock file now."""
    fd = os.open(f"{database_file}-write-lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


async def mark(db: Database, key: str) -> None:
    """A write transaction that holds the lock across turns of the event loop."""
    async with db.write() as session:
        await session.execute(text("INSERT INTO login_failures (username_key, failed_at) "
                                   "VALUES (:key, 0)"), {"key": key})
        await asyncio.sleep(0.001)
        await session.execute(text("UPDATE login_failures SET failed_at = 1 "
                                   "WHERE username_key = :key"), {"key": key})


async def test_writers_of_several_processes_queue_rather_than_meet_in_sqlites_busy_handler(
        tmp_path, no_busy_wait):
    # Two Database objects open the file apart, as two processes (auth, file, sync) do.
    path = str(tmp_path / "processes.db")
    first, second = Database(path), Database(path)
    try:
        await migrate(first.writer_engine())
        async with asyncio.TaskGroup() as group:
            for number in range(40):
                group.create_task(mark((first, second)[number % 2], f"user{number}"))
        async with first.read() as session:
            assert (await session.execute(text(
                "SELECT count(*) FROM login_failures WHERE failed_at = 1"))).scalar() == 40
        assert write_lock_is_free(path)
    finally:
        await first.close()
        await second.close()


async def test_a_writer_cancelled_while_another_process_writes_leaves_the_lock_free(tmp_path):
    path = str(tmp_path / "cancel.db")
    first, second = Database(path), Database(path)
    try:
        await migrate(first.writer_engine())
        async with first.write():
            waiting = asyncio.create_task(mark(second, "cancelled"))
            async with asyncio.timeout(10):  # until it waits in its thread for the lock
                while not any(thread.name.startswith("musicsync-db-write-lock")
                              for thread in threading.enumerate()):
                    await asyncio.sleep(0.01)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        await mark(first, "after")  # neither process is left waiting for itself
        await mark(second, "after too")
        async with asyncio.timeout(10):  # the cancelled wait's lock is let go once taken
            while not write_lock_is_free(path):
                await asyncio.sleep(0.01)
    finally:
        await first.close()
        await second.close()


async def test_a_program_stuck_on_the_write_lock_file_delays_writers_but_does_not_stop_them(
        tmp_path, monkeypatch):
    monkeypatch.setattr("musicsync.db.sqlite.WRITE_QUEUE_TIMEOUT", 0.2)
    path = str(tmp_path / "stuck.db")
    db = Database(path)
    try:
        await migrate(db.writer_engine())
        stuck = os.open(f"{path}-write-lock", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(stuck, fcntl.LOCK_EX)
            await mark(db, "despite")
        finally:
            os.close(stuck)
        async with db.read() as session:
            assert (await session.execute(text(
                "SELECT count(*) FROM login_failures WHERE failed_at = 1"))).scalar() == 1
    finally:
        await db.close()
