"""The SQLite database: pragmas, transactions and session lifetimes.

SQLite allows one writer at a time. A transaction that starts as a reader and
later writes can fail at once with "database is locked" when another writer
got in between, whatever the busy timeout. So write transactions take the
write lock up front (BEGIN IMMEDIATE), while read transactions stay deferred
and never block anyone (WAL).

SQLite's busy handler polls, with sleeps growing to 100 ms, so under load a
writer could lose every race for the lock until its busy timeout ran out.
Writers therefore queue before they ask SQLite (``write``): those of this
process in order, on an asyncio lock; then every process on one file lock
(``flock`` of ``<database>-write-lock``), which the kernel hands to a waiter
the moment its holder lets go. Without it, the services run as separate
processes met in the busy handler: the sync service's one write per Diff (the
device's cursor) waited there behind the file service's uploads and deletes,
and Diff took longer than in one process (bench/soak.py, 20 devices, 120 s:
p50 385 ms against 227 ms; with the file lock, 35 ms; README, "Services in
separate processes"). The file lock only orders writers; SQLite's own lock
still guards the data, and the busy timeout still covers writers that do not
take it (an older musicsync, the sqlite3 shell).

Every aiosqlite call is a hand-off to its connection thread and back (a cursor,
each statement, each fetch, the rollback at the end), about ten per session,
which dominates a read of one row. ``quick_read`` runs a short read whole in a
worker thread on a plain sqlite3 engine over the same file instead: one
hand-off. The caller check of every call, the feed's "anything new?" and other
one-row lookups on the path of a call use it. ``grouped_write`` does the same
for short writes on a hot path, several tasks' in one transaction (group_commit.py).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

from ..errors import MusicsyncError, ResourceExhausted, Unavailable
from .engine import Database, database_file, sqlalchemy_url
from .group_commit import GroupCommit

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000
# How long a writer waits for the writers of other processes (the write-lock file)
# before it asks SQLite anyway, which then waits up to BUSY_TIMEOUT_MS more.
WRITE_QUEUE_TIMEOUT = 10.0
_BEGIN_OPTION = "musicsync_begin"
# Threads (and connections) for quick reads: they take well under a millisecond.
QUICK_READERS = 2
# Threads (and connections) for long reads: a search or a page of albums, tens of ms.
LONG_READERS = 2

T = TypeVar("T")


class SQLiteDatabase(Database):
    """The async engine with read and write session factories; close() disposes it."""

    dialect = "sqlite"

    def __init__(self, path_or_url: str) -> None:
        self.url = sqlalchemy_url(path_or_url)
        self.path = database_file(self.url)
        self.description = str(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_async_engine(self.url, pool_size=5, max_overflow=5)
        _install_sqlite_hooks(self.engine.sync_engine)
        self._writer = self.engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
        self._read_sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = async_sessionmaker(self._writer, expire_on_commit=False)
        self._write_turn = asyncio.Lock()
        self._writing: asyncio.Task | None = None
        self._write_lock = _WriterLock(self.path.with_name(self.path.name + "-write-lock"))
        self._quick = _ReadPool(self.url, QUICK_READERS, "musicsync-db-read")
        # Long reads (browsing, search, statistics) have threads of their own, so they never
        # hold up the one-row lookups every call makes.
        self._long = _ReadPool(self.url, LONG_READERS, "musicsync-db-long-read")
        self._group_engine = _plain_engine(self.url, connections=1)
        self._group = GroupCommit(
            self._group_engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"}),
            self._write_turn_held)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reading: one consistent snapshot, never blocks writers."""
        async with self._read_sessions() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session holding the write lock; commits on success, rolls back on error.

        Writers of this process take turns, first come first served (see above)."""
        self._refuse_nested_write()
        async with self._write_turn_held():
            async with self._write_sessions() as session, session.begin():
                # BEGIN IMMEDIATE now, not at the first statement: checks made in the
                # block (such as a blob's existence) then hold against other writers.
                await session.connection()
                yield session

    async def grouped_write(self, work: Callable[[Session], T]) -> T:
        """``work(session)`` in a write transaction, committed before this returns.

        For short writes on a hot path: the functions of every task waiting run one
        after the other in one transaction and one commit, in a worker thread
        (group_commit.py), each in a savepoint of its own (one that raises is rolled
        back alone). ``work`` must not block for long, and what it returns must be
        loaded.
        """
        self._refuse_nested_write()
        return await self._group.run(work)

    @asynccontextmanager
    async def _write_turn_held(self) -> AsyncIterator[None]:
        """This process's writers in turn, then every process's (see above)."""
        async with self._write_turn, self._write_lock:
            self._writing = asyncio.current_task()
            try:
                yield
            finally:
                self._writing = None

    async def quick_read(self, work: Callable[[Session], T]) -> T:
        """``work(session)`` in one read transaction, whole in a worker thread.

        For short reads on a hot path: ``work`` must not block for long, and what it
        returns must be loaded (plain values or fully loaded rows).
        """
        return await self._quick.run(work)

    async def long_read(self, work: Callable[[Session], T]) -> T:
        """As quick_read, for reads that may group a whole library, on threads of their own."""
        return await self._long.run(work)

    def writer_engine(self):
        """The engine whose transactions begin IMMEDIATE (for migrations)."""
        return self._writer

    async def close(self) -> None:
        # Reads still running belong to calls already cancelled; let them end.
        await self._quick.close()
        await self._long.close()
        await self._group.close()
        self._group_engine.dispose()
        await self.engine.dispose()
        self._write_lock.close()


class _ReadPool:
    """Read transactions run whole in worker threads, on a plain sqlite3 engine over the
    database file: one hand-off per read instead of aiosqlite's one per statement and fetch.
    Threads and connections are made at first use."""

    def __init__(self, url: str, threads: int, name: str) -> None:
        self._engine = _plain_engine(url, connections=threads)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        self._threads = ThreadPoolExecutor(threads, thread_name_prefix=name)

    async def run(self, work: Callable[[Session], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._threads, self._run, work)

    def _run(self, work: Callable[[Session], T]) -> T:
        with self._sessions() as session:
            return work(session)

    async def close(self) -> None:
        await asyncio.to_thread(self._threads.shutdown)
        self._engine.dispose()


class _WriterLock:
    """An exclusive ``flock`` on a file beside the database: one writer of all processes.

    Taken by one task at a time (``Database.write`` holds its asyncio lock around it).
    Waiting happens in a thread of its own, blocked in the kernel, so the lock passes
    to the waiter as soon as it is free; after WRITE_QUEUE_TIMEOUT the writer goes on
    without it. The file is opened at the first write, so opening a Database creates
    nothing until it writes.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._waiter = ThreadPoolExecutor(1, thread_name_prefix="musicsync-db-write-lock")

    async def __aenter__(self) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fd = self._fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        waiting = asyncio.get_running_loop().run_in_executor(
            self._waiter, fcntl.flock, fd, fcntl.LOCK_EX)
        try:
            await asyncio.wait_for(asyncio.shield(waiting), WRITE_QUEUE_TIMEOUT)
        except (asyncio.CancelledError, TimeoutError) as stop:
            # The thread takes the lock sooner or later: let it go then.
            waiting.add_done_callback(
                lambda done: done.cancelled() or done.exception() or self._release(fd))
            if isinstance(stop, asyncio.CancelledError):
                raise
            # A stuck program holds the file: fall back on SQLite's lock and busy timeout.
            log.warning("waited %.0f s for another process's write to the database; "
                        "going on without the write-lock file %s", WRITE_QUEUE_TIMEOUT,
                        self.path)

    async def __aexit__(self, *exc_info) -> None:
        self._release(self._fd)

    def _release(self, fd: int | None) -> None:
        if fd is not None and fd == self._fd:  # not a number reused after close()
            fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self._waiter.shutdown(wait=False, cancel_futures=True)
        if self._fd is not None:
            os.close(self._fd)  # the lock, if held, goes with it
            self._fd = None


def _switch_to_wal(cursor) -> None:
    """PRAGMA journal_mode = WAL, tried again while another connection holds the lock.

    Only a new database file is still in rollback mode; switching it needs a lock that
    SQLite does not wait for (no busy handler), so processes starting together on a new
    file met "database is locked" here."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _plain_engine(url: str, *, connections: int):
    """A sync engine on the sqlite3 module over the same file, at most ``connections``
    connections, with the server's pragmas and explicit BEGINs (for work run whole in a
    worker thread: quick and long reads, grouped writes)."""
    engine = create_engine(make_url(url).set(drivername="sqlite+pysqlite"),
                           pool_size=connections, max_overflow=0)
    _install_sqlite_hooks(engine)
    return engine


def _install_sqlite_hooks(sync_engine) -> None:
    @event.listens_for(sync_engine, "connect")
    def on_connect(dbapi_connection, _record) -> None:
        # Let SQLAlchemy's begin event below decide how transactions start
        # instead of the sqlite3 module's implicit BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def on_begin(connection) -> None:
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def sqlite_failure(exc: BaseException) -> MusicsyncError | None:
    """What a failure of SQLite itself means for the client, or None if it is not one."""
    if not isinstance(exc, OperationalError):
        return None
    reason = str(exc.orig).lower()
    log.warning("database: %s", exc.orig)
    if "locked" in reason or "busy" in reason:
        return Unavailable("the server's database is busy (another program is writing to "
                           "it); try again in a moment")
    if "full" in reason:
        return ResourceExhausted("the server's disk is full; ask its operator to free space")
    if "disk i/o" in reason or "unable to open" in reason or "readonly" in reason:
        return Unavailable("the server cannot write its database; try again later, or ask "
                           "its operator to check the disk")
    return None
