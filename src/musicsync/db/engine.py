"""The SQLite engine: pragmas, transactions and session lifetimes.

SQLite allows one writer at a time. A transaction that starts as a reader and
later writes can fail at once with "database is locked" when another writer
got in between, whatever the busy timeout. So write transactions take the
write lock up front (BEGIN IMMEDIATE) and wait their turn under the busy
timeout, while read transactions stay deferred and never block anyone (WAL).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from ..errors import ConfigError

BUSY_TIMEOUT_MS = 10_000
_BEGIN_OPTION = "musicsync_begin"


def sqlalchemy_url(path_or_url: str) -> str:
    """An aiosqlite URL from a file path or any sqlite:// URL."""
    if "://" not in path_or_url:
        return f"sqlite+aiosqlite:///{Path(path_or_url).expanduser().resolve()}"
    url = make_url(path_or_url)
    if url.get_backend_name() != "sqlite":
        raise ConfigError(f"DATABASE_URL must be an SQLite file or sqlite:// URL, not {url.drivername}")
    return url.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)


def database_file(url: str) -> Path | None:
    database = make_url(url).database
    return Path(database) if database and database != ":memory:" else None


class Database:
    """The async engine with read and write session factories; close() disposes it."""

    def __init__(self, path_or_url: str) -> None:
        self.url = sqlalchemy_url(path_or_url)
        self.path = database_file(self.url)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_async_engine(self.url, pool_size=5, max_overflow=5)
        _install_sqlite_hooks(self.engine.sync_engine)
        self._writer = self.engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
        self._read_sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = async_sessionmaker(self._writer, expire_on_commit=False)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reading: one consistent snapshot, never blocks writers."""
        async with self._read_sessions() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session holding the write lock; commits on success, rolls back on error."""
        async with self._write_sessions() as session, session.begin():
            yield session

    def writer_engine(self):
        """The engine whose transactions begin IMMEDIATE (for migrations)."""
        return self._writer

    async def close(self) -> None:
        await self.engine.dispose()


def _install_sqlite_hooks(sync_engine) -> None:
    @event.listens_for(sync_engine, "connect")
    def on_connect(dbapi_connection, _record) -> None:
        # Let SQLAlchemy's begin event below decide how transactions start
        # instead of the sqlite3 module's implicit BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def on_begin(connection) -> None:
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")
