"""Opening the metadata database, SQLite or PostgreSQL, and what its failures mean.

``DATABASE_URL`` (or the default file in ``DATA_DIR``) picks the database: an
SQLite file path or ``sqlite://`` URL (sqlite.py: one box, nothing to install),
or a ``postgresql://`` URL (postgres.py: several replicas sharing it). Both give
the domain the same five ways in, so the domain never asks which it has:

- ``read()``: a session seeing one consistent snapshot, never blocking writers;
- ``write()``: a session whose transaction is the only writer until it ends, so
  what it checks holds until it commits (SQLite's own lock; on PostgreSQL an
  advisory lock every replica takes);
- ``grouped_write(work)`` and ``quick_read(work)``: a plain function of a sync
  Session, for the short writes and reads on a hot path;
- ``close()``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from pathlib import Path
from typing import TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.util.concurrency import await_, in_greenlet

from ..errors import ConfigError, MusicsyncError

T = TypeVar("T")

_POSTGRES_SCHEMES = ("postgresql", "postgres")


def sqlalchemy_url(path_or_url: str) -> str:
    """The driver URL for a file path, an sqlite:// URL naming a file, or a postgresql:// URL."""
    if "://" not in path_or_url:
        return f"sqlite+aiosqlite:///{Path(path_or_url).expanduser().resolve()}"
    if path_or_url.split("://", 1)[0].split("+", 1)[0] == "postgres":  # Heroku-style alias
        path_or_url = "postgresql" + path_or_url[len("postgres"):]
    url = make_url(path_or_url)
    backend = url.get_backend_name()
    if backend == "postgresql":
        if not url.database:
            raise ConfigError("DATABASE_URL must name a PostgreSQL database, "
                              "e.g. postgresql://musicsync:PASSWORD@db:5432/musicsync")
        return url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    if backend != "sqlite":
        raise ConfigError(f"DATABASE_URL must be an SQLite file, an sqlite:// URL or a "
                          f"postgresql:// URL, not {url.drivername}")
    if not url.database or url.database == ":memory:":
        raise ConfigError("DATABASE_URL must name an SQLite file: an in-memory database would "
                          "lose every library at a restart")
    return url.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)


def is_postgres(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def database_file(url: str) -> Path:
    """The file of an SQLite URL."""
    return Path(make_url(url).database)


def asyncpg_dsn(url: str) -> str:
    """asyncpg's own form of a PostgreSQL URL: SQLAlchemy's without "+asyncpg"."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def described(url: str) -> str:
    """The database for messages and logs: its file, or its host and name (never a password)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return str(database_file(url))
    return f"PostgreSQL {parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database}"


class Database:
    """The metadata database (see the module's docstring for what it offers).

    ``Database(path_or_url)`` opens the kind the URL names: an SQLiteDatabase or a
    PostgresDatabase. ``path`` is the SQLite file (None on PostgreSQL).
    """

    dialect: str
    url: str
    description: str  # for messages and logs: the file, or host and database name
    path: Path | None = None
    engine: AsyncEngine

    def __new__(cls, path_or_url: str):
        if cls is Database:
            url = sqlalchemy_url(path_or_url)
            if is_postgres(url):
                from .postgres import PostgresDatabase
                cls = PostgresDatabase
            else:
                from .sqlite import SQLiteDatabase
                cls = SQLiteDatabase
        return super().__new__(cls)

    # The task inside a write transaction of this process, if any (set by write()).
    _writing: asyncio.Task | None = None

    def _refuse_nested_write(self) -> None:
        if self._writing is not None and self._writing is asyncio.current_task():
            raise RuntimeError("a write transaction inside another would wait for itself")

    def read(self) -> AbstractAsyncContextManager[AsyncSession]:
        raise NotImplementedError

    def write(self) -> AbstractAsyncContextManager[AsyncSession]:
        raise NotImplementedError

    async def grouped_write(self, work: Callable[[Session], T]) -> T:
        raise NotImplementedError

    async def quick_read(self, work: Callable[[Session], T]) -> T:
        raise NotImplementedError

    def content_lock(self, key: bytes) -> AbstractAsyncContextManager[None]:
        """Held by one holder of ``key`` (a content hash) at a time among every process
        sharing the database that takes it: none needed on SQLite, where one process
        publishes and deletes blobs (the file service) and maintenance checks inside its
        write transaction."""
        return nullcontext()

    async def answers(self) -> bool:
        """Whether the database answers a trivial query now (for the health service)."""
        return True

    async def long_read(self, work: Callable[[Session], T]) -> T:
        """As quick_read, for reads that may group a whole library (browsing, search,
        statistics): apart from the quick reads every call makes."""
        return await self.quick_read(work)

    def writer_engine(self) -> AsyncEngine:
        """The engine migrations run on (each transaction the only writer)."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


def await_in_work(awaitable: Awaitable[T], loop: asyncio.AbstractEventLoop) -> T:
    """The result of ``awaitable``, from inside a work function of grouped_write or
    quick_read: on SQLite the work runs in a worker thread, which hands the awaitable to
    the event loop and waits; on PostgreSQL it runs in the event loop's own thread, in
    SQLAlchemy's greenlet, which awaits it there."""
    if in_greenlet():
        return await_(awaitable)
    return asyncio.run_coroutine_threadsafe(awaitable, loop).result()


def database_failure(exc: BaseException) -> MusicsyncError | None:
    """What a failure of the database itself means for the client, or None if it is not one."""
    from .sqlite import sqlite_failure
    failure = sqlite_failure(exc)
    if failure is None and "asyncpg" in sys.modules:  # only a PostgreSQL server loads it
        from .postgres import postgres_failure
        failure = postgres_failure(exc)
    return failure
