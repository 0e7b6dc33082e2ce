"""The PostgreSQL database: several replicas of the server sharing one.

Writers take turns, as on SQLite: each write transaction first takes one
transaction-scoped advisory lock (``pg_advisory_xact_lock``) that every replica
asks for, so what a writer checks (a path free, a blob unreferenced, a quota not
exceeded) still holds when it commits, and a user's change sequence is taken by
one writer at a time, without gaps. Writes are short; reads never wait for them.
Writers of one process queue on an asyncio lock first, so a burst of them holds
one pooled connection waiting on the lock, not all of them.

Read transactions run at REPEATABLE READ: a snapshot, like SQLite's readers.
Connection trouble (the server down, restarting, refusing connections, out of
connection slots) reaches clients as UNAVAILABLE naming the database; the pool
checks a connection before handing it out, so service resumes by itself when
PostgreSQL is back. A serialization failure or deadlock is retried (grouped
writes) or answered ABORTED; never INTERNAL.

asyncpg is imported only by this module, only when a postgresql:// URL is used.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session

from ..errors import Aborted, MusicsyncError, ResourceExhausted, Unavailable
from .engine import Database, asyncpg_dsn, described, sqlalchemy_url

log = logging.getLogger(__name__)

T = TypeVar("T")

# The advisory lock key every writer takes ("musicsyn" in ASCII: clear in pg_locks).
WRITE_LOCK_KEY = 0x6D75736963737966
POOL_SIZE = 10
POOL_OVERFLOW = 10
LOCK_POOL_SIZE = 4
LOCK_POOL_OVERFLOW = 28
# Seconds to open a connection, and to wait for a free one in the pool.
CONNECT_TIMEOUT = 5.0
POOL_TIMEOUT = 10.0
# Serialization failures and deadlocks a grouped write is retried for.
RETRIES = 3

_TAKE_WRITE_LOCK = text(f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})")
# Content locks use PostgreSQL's other key space (two int4 keys, apart from the write
# lock's one bigint): the content hash's first 8 bytes.
_TAKE_CONTENT_LOCK = text("SELECT pg_advisory_xact_lock(:high, :low)")
_RETRYABLE = {"40001", "40P01"}  # serialization_failure, deadlock_detected
# Classes and codes meaning "the database is not there right now".
_UNAVAILABLE_CLASSES = ("08", "53", "57")
_DISK_FULL = "53100"


class PostgresDatabase(Database):
    """An async engine over asyncpg with read and write session factories."""

    dialect = "postgresql"

    def __init__(self, path_or_url: str) -> None:
        self.url = sqlalchemy_url(path_or_url)
        self.path = None
        self.description = described(self.url)
        self.engine = create_async_engine(
            self.url, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW, pool_pre_ping=True,
            pool_timeout=POOL_TIMEOUT, async_creator=self._connect)
        reader = self.engine.execution_options(isolation_level="REPEATABLE READ",
                                               postgresql_readonly=True)
        self._read_sessions = async_sessionmaker(reader, expire_on_commit=False)
        self._write_sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write_turn = asyncio.Lock()
        self._writing: asyncio.Task | None = None
        # Content locks hold a connection each for a publish or a deletion: a pool of their
        # own, so they never starve the reads and writes they wait for.
        self._lock_engine = create_async_engine(
            self.url, pool_size=LOCK_POOL_SIZE, max_overflow=LOCK_POOL_OVERFLOW,
            pool_pre_ping=True, pool_timeout=POOL_TIMEOUT, async_creator=self._connect)

    async def _connect(self):
        """A new asyncpg connection; Unavailable, naming the database, when there is none."""
        import asyncpg

        try:
            return await asyncpg.connect(asyncpg_dsn(self.url), timeout=CONNECT_TIMEOUT,
                                         server_settings={"application_name": "musicsync"})
        except (OSError, TimeoutError, asyncpg.PostgresError,
                asyncpg.exceptions.InterfaceError) as exc:
            log.warning("cannot connect to %s: %s", self.description, exc)
            raise Unavailable(f"the server's database ({self.description}) does not answer; "
                              "try again in a moment") from None

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reading: one snapshot, never blocks writers."""
        async with self._read_sessions() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction holds the writers' lock; commits on success."""
        self._refuse_nested_write()
        async with self._write_turn:
            self._writing = asyncio.current_task()
            try:
                async with self._write_sessions() as session, session.begin():
                    await session.execute(_TAKE_WRITE_LOCK)
                    yield session
            finally:
                self._writing = None

    @asynccontextmanager
    async def content_lock(self, key: bytes) -> AsyncIterator[None]:
        """A transaction-scoped advisory lock on ``key``'s first 8 bytes, on a connection
        of the lock pool, held until the block ends (waiting happens in PostgreSQL)."""
        padded = key[:8].ljust(8, b"\0")
        halves = {"high": int.from_bytes(padded[:4], "big", signed=True),
                  "low": int.from_bytes(padded[4:], "big", signed=True)}
        async with self._lock_engine.connect() as connection, connection.begin():
            await connection.execute(_TAKE_CONTENT_LOCK, halves)
            yield

    async def grouped_write(self, work: Callable[[Session], T]) -> T:
        """``work(session)`` in a write transaction of its own, retried on a conflict."""
        for attempt in range(1, RETRIES + 1):
            try:
                async with self.write() as session:
                    return await session.run_sync(work)
            except DBAPIError as exc:
                if _sqlstate(exc) not in _RETRYABLE or attempt == RETRIES:
                    raise
                log.info("retrying a write after %s", _sqlstate(exc))
        raise AssertionError("unreachable")  # pragma: no cover

    async def quick_read(self, work: Callable[[Session], T]) -> T:
        """``work(session)`` in one read transaction (asyncpg needs no worker thread)."""
        async with self._read_sessions() as session:
            return await session.run_sync(work)

    async def answers(self) -> bool:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT), self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            return True
        except Exception as exc:  # noqa: BLE001 - any failure means "not now"
            log.debug("database probe failed: %s", exc)
            return False

    def writer_engine(self):
        return self.engine

    async def close(self) -> None:
        await self._lock_engine.dispose()
        await self.engine.dispose()


def _sqlstate(exc: BaseException) -> str:
    """The SQLSTATE of a PostgreSQL error (SQLAlchemy's wrapper or asyncpg's own), or ""."""
    for candidate in (exc, getattr(exc, "orig", None),
                      getattr(getattr(exc, "orig", None), "__cause__", None)):
        state = getattr(candidate, "sqlstate", None)
        if isinstance(state, str):
            return state
    return ""


def postgres_failure(exc: BaseException) -> MusicsyncError | None:
    """What a failure of PostgreSQL during a statement means for the client, or None.

    (Failures to connect are answered where they happen, in PostgresDatabase._connect.)"""
    if not isinstance(exc, DBAPIError):
        return None
    state = _sqlstate(exc) or ("08000" if exc.connection_invalidated else "")
    if not state:
        return None
    log.warning("database: %s (SQLSTATE %s)", exc.orig, state)
    if state == _DISK_FULL:
        return ResourceExhausted("the server's database is out of disk space; ask its "
                                 "operator to free space")
    if state in _RETRYABLE:
        return Aborted("the server's database met a conflicting write; try again")
    if state.startswith(_UNAVAILABLE_CLASSES):
        return Unavailable("the server's database (PostgreSQL) does not answer; try again "
                           "in a moment")
    return None
