"""What copying a whole database (ops/db_copy.py) needs to know of each dialect.

- ``snapshot(url)``: a connection inside one read-only transaction, so every table is
  read as of one moment. An SQLite source is opened read-only (``mode=ro``), never
  created; on read-only media with no write-ahead log left beside the file (a server
  stopped cleanly) SQLite cannot make its ``-shm`` file, so it is opened ``immutable``
  instead. A PostgreSQL source is read at REPEATABLE READ, READ ONLY.
- ``in_key_order(table, connection)``: rows by primary key, text compared byte by
  byte on both (PostgreSQL's default collation follows the locale, SQLite's does not),
  so both sides checksum the rows in the same order.
- ``id_high_water`` and ``move_ids_past``: explicit ids inserted on PostgreSQL leave its
  sequences behind (the next register would collide with user 1); on SQLite an
  AUTOINCREMENT table remembers the highest id ever given, deleted ones included, so
  no id is handed out twice. The target's generators are moved past both the ids
  copied and the source's own high-water mark.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import Integer, String, Table, event, func, select, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.sql import Select

from ..errors import ConfigError, FailedPrecondition
from .dialect import dialect_name
from .engine import Database, database_file, is_postgres, sqlalchemy_url
from .sqlite import BUSY_TIMEOUT_MS


@asynccontextmanager
async def snapshot(path_or_url: str) -> AsyncIterator[AsyncConnection]:
    """A connection in one read-only transaction over the database (see above)."""
    url = sqlalchemy_url(path_or_url)
    if is_postgres(url):
        db = Database(url)
        try:
            async with db.engine.connect() as connection:
                connection = await connection.execution_options(
                    isolation_level="REPEATABLE READ", postgresql_readonly=True)
                async with connection.begin():
                    yield connection
        finally:
            await db.close()
        return
    path = database_file(url)
    engine = create_async_engine(_read_only_url(path))
    _begin_explicitly(engine.sync_engine)
    try:
        async with engine.connect() as connection, connection.begin():
            yield connection
    finally:
        await engine.dispose()


def _read_only_url(path: Path) -> URL:
    """``mode=ro``, or ``immutable`` when the file's folder is read-only (see above)."""
    if not path.is_file():
        raise ConfigError(f"no database at {path}")
    mode = {"mode": "ro"}
    probe = None
    try:
        probe = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        probe.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError as exc:
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise FailedPrecondition(
                f"cannot read {path} ({exc}): its write-ahead log {wal.name} holds changes "
                "that a read-only reader cannot apply; start and stop the server once where "
                "the folder is writable, or copy the folder somewhere writable") from None
        mode = {"immutable": "1"}  # nothing beside the file: it is all in the file
    finally:
        if probe is not None:
            probe.close()
    return URL.create("sqlite+aiosqlite", database=path.resolve().as_uri(),
                      query={**mode, "uri": "true"})


def _begin_explicitly(sync_engine) -> None:
    """One BEGIN for the whole read: the sqlite3 module would run each SELECT on its own."""
    @event.listens_for(sync_engine, "connect")
    def on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def on_begin(connection) -> None:
        connection.exec_driver_sql("BEGIN")


async def table_names(connection: AsyncConnection) -> list[str]:
    """The tables the database holds (its default schema on PostgreSQL), but SQLite's
    full-text search tables and the statistics' running totals: derived from other
    tables, not copied (the target's triggers fill them as those tables' rows arrive)."""
    from sqlalchemy import inspect

    from . import summaries
    from .search_index import FTS_TABLES
    names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    return [name for name in names if name not in FTS_TABLES and name not in summaries.TABLES]


def in_key_order(table: Table, connection: AsyncConnection) -> Select:
    """Every row of ``table`` by primary key, text in byte order on both dialects."""
    order = []
    for column in table.primary_key.columns:
        if isinstance(column.type, String) and dialect_name(connection) == "postgresql":
            order.append(column.collate("C"))
        else:
            order.append(column)
    return select(*table.columns).order_by(*order)


def generated_id(table: Table):
    """The table's single integer primary key column, or None."""
    columns = list(table.primary_key.columns)
    if len(columns) == 1 and isinstance(columns[0].type, Integer):
        return columns[0]
    return None


async def id_high_water(connection: AsyncConnection, table: Table) -> int:
    """The highest id ``table``'s generator has handed out (0 if it keeps none)."""
    if dialect_name(connection) == "sqlite":
        if not await _has_sqlite_sequence(connection):
            return 0
        found = await connection.execute(
            text("SELECT seq FROM sqlite_sequence WHERE name = :name"), {"name": table.name})
        return found.scalar() or 0
    sequence = await _postgres_sequence(connection, table)
    if sequence is None:
        return 0
    found = await connection.execute(text(
        f"SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {sequence}"))
    return found.scalar_one()


async def move_ids_past(connection: AsyncConnection, tables: list[Table],
                        floors: Mapping[str, int]) -> None:
    """After rows were inserted with their ids: the next id of each table's generator is
    above its largest id and above ``floors[table]`` (the source's high-water mark)."""
    for table in tables:
        column = generated_id(table)
        if column is None:
            continue
        largest = (await connection.execute(select(func.max(column)))).scalar() or 0
        value = max(largest, floors.get(table.name, 0))
        if dialect_name(connection) == "sqlite":
            await _move_sqlite_sequence(connection, table, value)
            continue
        sequence = await _postgres_sequence(connection, table)
        if sequence is None:
            continue
        if value > 0:
            await connection.execute(text("SELECT setval(:sequence, :value, true)"),
                                     {"sequence": sequence, "value": value})
        else:  # nothing handed out yet: the next id is the first
            await connection.execute(text("SELECT setval(:sequence, 1, false)"),
                                     {"sequence": sequence})


async def _has_sqlite_sequence(connection: AsyncConnection) -> bool:
    found = await connection.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'")
    return found.first() is not None


async def _move_sqlite_sequence(connection: AsyncConnection, table: Table, value: int) -> None:
    """Only AUTOINCREMENT tables keep a high-water mark; the others take max(id) + 1."""
    definition = (await connection.execute(
        text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :name"),
        {"name": table.name})).scalar() or ""
    if "AUTOINCREMENT" not in definition.upper() or value <= 0:
        return
    # Inserting explicit ids already raised the mark to the largest of them.
    moved = await connection.execute(
        text("UPDATE sqlite_sequence SET seq = max(seq, :value) WHERE name = :name"),
        {"value": value, "name": table.name})
    if moved.rowcount == 0:
        await connection.execute(
            text("INSERT INTO sqlite_sequence (name, seq) VALUES (:name, :value)"),
            {"name": table.name, "value": value})


async def _postgres_sequence(connection: AsyncConnection, table: Table) -> str | None:
    """The sequence behind the table's id (serial or identity), or None."""
    column = generated_id(table)
    if column is None:
        return None
    found = await connection.execute(text("SELECT pg_get_serial_sequence(:table, :column)"),
                                     {"table": table.name, "column": column.name})
    return found.scalar()
