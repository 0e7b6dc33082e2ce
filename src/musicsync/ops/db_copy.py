"""Copying the whole metadata database, SQLite to PostgreSQL or back (`musicsync db copy`).

Nothing is left behind: every table of the models (users and password hashes,
refresh tokens, login failures, blobs, libraries, the change feed, devices and
their cursors, upload sessions), in the order their foreign keys need, with
their primary keys, so tokens, cursors and upload sessions go on working.

- The source is read in one read-only transaction (db/copying.py ``snapshot``):
  every table as of one moment, even if a server still writes to it (it should be
  stopped: what it writes after that moment is not copied). Its schema must be
  the one this musicsync writes; an older or newer one is refused, not upgraded.
- The target is brought to the latest schema, then must hold no rows at all.
- Rows stream in batches of ``BATCH_ROWS``, by primary key: memory stays flat
  whatever the size of the library or the feed.
- Everything is written in ONE transaction on the target, on both dialects, and
  verified inside it before the commit: per table, the row count and a SHA-256
  over the rows in key order (``Checksum``), read back from the target, against
  the same over the rows read from the source. A difference, an error or an
  interruption rolls it all back, so the target ends empty or complete. On
  SQLite one transaction costs disk, not memory: pages that do not fit in the
  cache spill into the write-ahead log, which grows to about the size of the
  data until the checkpoint after the commit.
- Id generators are moved past the ids copied (PostgreSQL's sequences; SQLite's
  AUTOINCREMENT mark), so the next account gets a fresh id.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Table, literal, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db import Database
from ..db.copying import id_high_water, in_key_order, move_ids_past, snapshot, table_names
from ..db.engine import database_file, described, is_postgres, sqlalchemy_url
from ..db.migrations import HEAD_REVISION, LATEST_VERSION, migrate, schema_of
from ..db.models import Base
from ..errors import FailedPrecondition, InvalidArgument

BATCH_ROWS = 1000
# A progress line for a long table at most this often (seconds).
PROGRESS_EVERY = 10.0
# Tables besides the models' that a musicsync database may hold.
BOOKKEEPING_TABLES = frozenset({"alembic_version", "sqlite_sequence"})


class Checksum:
    """SHA-256 over rows in order, each value by its kind and length, so both dialects agree.

    Drivers hand out ints, str, bytes (or memoryview) and None for our columns; booleans
    count as ints. The encoding is unambiguous: ("ab", "c") and ("a", "bc") differ."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.rows = 0

    def add(self, row) -> None:
        parts = []
        for value in row:
            if value is None:
                parts.append(b"n")
            elif isinstance(value, int):  # bool included
                parts.append(b"i%d;" % value)
            elif isinstance(value, str):
                encoded = value.encode("utf-8", "surrogatepass")
                parts.append(b"s%d:" % len(encoded) + encoded)
            elif isinstance(value, (bytes, bytearray, memoryview)):
                raw = bytes(value)
                parts.append(b"b%d:" % len(raw) + raw)
            else:
                raise TypeError(f"no checksum for a {type(value).__name__}")
        parts.append(b"\n")
        self._hash.update(b"".join(parts))
        self.rows += 1

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


@dataclass
class TableCopy:
    """One table: what was read from the source and what the target holds."""

    name: str
    rows: int
    checksum: str
    seconds: float
    target_rows: int = -1
    target_checksum: str = ""

    @property
    def ok(self) -> bool:
        return self.rows == self.target_rows and self.checksum == self.target_checksum

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float(self.rows)


@dataclass
class CopyReport:
    """The outcome: ``committed`` only when every table verified."""

    source: str
    target: str
    schema_version: str
    tables: list[TableCopy] = field(default_factory=list)
    seconds: float = 0.0
    committed: bool = False

    @property
    def rows(self) -> int:
        return sum(table.rows for table in self.tables)

    @property
    def differing(self) -> list[str]:
        return [table.name for table in self.tables if not table.ok]


@dataclass(frozen=True)
class Progress:
    """A table being copied: rows so far, and whether it is done."""

    table: str
    rows: int
    seconds: float
    done: bool

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float(self.rows)


class _Differs(Exception):
    """Leaves the target's transaction, rolling it back."""


async def copy_database(source: str, target: str, *,
                        progress: Callable[[Progress], None] | None = None) -> CopyReport:
    """Copies every row of ``source`` into the empty ``target`` (paths or URLs), verified."""
    source_url, target_url = sqlalchemy_url(source), sqlalchemy_url(target)
    _refuse_same_database(source_url, target_url)
    tables = Base.metadata.sorted_tables  # parents before children
    started = time.monotonic()
    async with snapshot(source_url) as reader:
        version, age = await schema_of(reader)
        report = CopyReport(described(source_url), described(target_url), version)
        if age:
            raise FailedPrecondition(_version_refusal(report.source, version, age))
        db = Database(target_url)
        try:
            async with db.engine.connect() as connection:  # before migrate() changes anything
                await _refuse_unless_empty(connection, tables, report.target)
            await migrate(db.writer_engine())
            try:
                async with db.write() as session:
                    writer = await session.connection()
                    await _refuse_unless_empty(writer, tables, report.target)
                    high_water = {}
                    for table in tables:
                        high_water[table.name] = await id_high_water(reader, table)
                        report.tables.append(await _copy_table(reader, writer, table, progress,
                                                               report.target))
                    await move_ids_past(writer, tables, high_water)
                    for table, copied in zip(tables, report.tables):
                        copied.target_rows, copied.target_checksum = await _checksum(writer, table)
                    if report.differing:
                        raise _Differs
            except _Differs:
                pass
            else:
                report.committed = True
        finally:
            await db.close()
    report.seconds = time.monotonic() - started
    return report


async def table_checksum(path_or_url: str, table: Table) -> tuple[int, str]:
    """Row count and checksum of one table of a database, as the copy computes them."""
    async with snapshot(sqlalchemy_url(path_or_url)) as reader:
        return await _checksum(reader, table)


async def _copy_table(reader: AsyncConnection, writer: AsyncConnection, table: Table,
                      progress: Callable[[Progress], None] | None, target: str) -> TableCopy:
    checksum = Checksum()
    keys = [column.key for column in table.columns]
    started = last_report = time.monotonic()
    rows = await reader.stream(in_key_order(table, reader))
    try:
        async for batch in rows.partitions(BATCH_ROWS):
            for row in batch:
                checksum.add(row)
            await writer.execute(table.insert(), [dict(zip(keys, row)) for row in batch])
            now = time.monotonic()
            if progress is not None and now - last_report >= PROGRESS_EVERY:
                progress(Progress(table.name, checksum.rows, now - started, done=False))
                last_report = now
    except DBAPIError as exc:
        raise FailedPrecondition(f"cannot write table {table.name} into {target}: "
                                 f"{_first_line(exc.orig)}; nothing was written") from None
    finally:
        await rows.close()
    seconds = time.monotonic() - started
    if progress is not None:
        progress(Progress(table.name, checksum.rows, seconds, done=True))
    return TableCopy(table.name, checksum.rows, checksum.hexdigest(), seconds)


async def _checksum(connection: AsyncConnection, table: Table) -> tuple[int, str]:
    checksum = Checksum()
    rows = await connection.stream(in_key_order(table, connection))
    try:
        async for batch in rows.partitions(BATCH_ROWS):
            for row in batch:
                checksum.add(row)
    finally:
        await rows.close()
    return checksum.rows, checksum.hexdigest()


async def _refuse_unless_empty(connection: AsyncConnection, tables: list[Table],
                               target: str) -> None:
    """FailedPrecondition unless the target holds nothing but musicsync's empty tables."""
    present = set(await table_names(connection))
    ours = {table.name for table in tables}
    foreign = sorted(present - ours - BOOKKEEPING_TABLES)
    if foreign:
        raise FailedPrecondition(
            f"{target} holds tables that are not musicsync's ({', '.join(foreign[:5])}); "
            "copy into an empty database")
    filled = []
    for table in tables:
        if table.name in present:
            found = await connection.execute(select(literal(1)).select_from(table).limit(1))
            if found.first() is not None:
                filled.append(table.name)
    if filled:
        raise FailedPrecondition(
            f"{target} is not empty (rows in {', '.join(filled)}); the copy goes only into "
            "an empty database, so that nothing in it is mixed with or overwritten by the "
            "source: create a new one (or drop this one's tables) and run the copy again")


def _refuse_same_database(source_url: str, target_url: str) -> None:
    if is_postgres(source_url) or is_postgres(target_url):
        if described(source_url) == described(target_url):  # whoever signs in
            raise InvalidArgument("SOURCE and TARGET are the same database")
        return
    source, target = database_file(source_url), database_file(target_url)
    if source.resolve() == target.resolve() or (
            target.exists() and source.exists() and Path.samefile(source, target)):
        raise InvalidArgument("SOURCE and TARGET are the same database file")


def _version_refusal(source: str, version: str, age: int) -> str:
    ours = f"{LATEST_VERSION}, revision {HEAD_REVISION}"
    if age > 0:
        return (f"{source} has schema version {version}, newer than this musicsync writes "
                f"({ours}): run the copy with the musicsync version that served it")
    return (f"{source} has schema version {version}, older than this musicsync's "
            f"({ours}): start this musicsync's server on it once (it upgrades the "
            "schema at start-up), stop it, and run the copy again; or copy with the musicsync "
            "version that served it")


def _first_line(error: BaseException | None) -> str:
    return str(error).strip().splitlines()[0] if error is not None and str(error).strip() else \
        type(error).__name__
