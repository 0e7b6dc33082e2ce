"""The schema, created and upgraded at start-up by Alembic on SQLite and PostgreSQL.

The revisions are in ``versions/`` (one file each, append-only: never edit one that
has shipped, add the next; on SQLite, changes to existing tables need Alembic's batch
mode). ``runner.py`` runs them on a connection, with no ``alembic.ini``.

Alembic and Mako cost a server some 10 MiB of memory once imported (measured: an
idle server at 70 MiB, at 81 MiB after creating its database through Alembic; the
budget is 80), and most starts have nothing to upgrade. So ``migrate`` first reads
the database's revision with plain SQL and compares it with ``HEAD_REVISION`` (a
test checks it is the scripts' head); Alembic is imported only when they differ.
An empty database is not upgraded through every revision but created at the head
from the models and stamped there (Alembic's own recipe for a new database), so a
first start does not import Alembic either; tests check, on both databases, that
the revisions build exactly the models' schema.

Each upgrade runs in one transaction (both databases have transactional DDL), so a
crash leaves the old schema or the new one. Several processes or replicas starting
at once upgrade once: on SQLite the transaction begins IMMEDIATE (the writer engine),
on PostgreSQL it first takes an advisory lock; the others then find the head.

SQLite databases from before Alembic (``PRAGMA user_version`` 1 to 4) are brought to
version 4 by the steps they were made with (legacy.py), stamped at revision 0001
(the same schema), then upgraded like any other. Once Alembic manages an SQLite
database its user_version is ``LATEST_VERSION``, 5: a musicsync from before Alembic
refuses it as too new instead of running on a schema it does not know.
"""

from __future__ import annotations

import logging

from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import legacy

log = logging.getLogger(__name__)

# The newest revision in versions/ (tests/test_migrations.py checks it).
HEAD_REVISION = "0004"
# The revision whose schema is legacy version 4: where databases from before Alembic start.
LEGACY_REVISION = "0001"
# PRAGMA user_version of an SQLite database that Alembic manages (see above).
LATEST_VERSION = legacy.LATEST_VERSION + 1
# The advisory lock PostgreSQL starters take turns on ("musicmig" in ASCII). Not the
# writers' lock: a replica already serving keeps writing until the DDL needs its tables.
UPGRADE_LOCK_KEY = 0x6D757369636D6967


class SchemaTooNew(RuntimeError):
    """The database was written by a newer musicsync than this one."""


def too_new(found: object, understood: object) -> SchemaTooNew:
    return SchemaTooNew(
        f"the database has schema version {found}, newer than this musicsync "
        f"understands ({understood}); upgrade musicsync or restore a backup")


async def migrate(engine: AsyncEngine) -> None:
    """Upgrade the schema to the head revision, creating it in an empty database.

    ``engine`` is ``Database.writer_engine()``: on SQLite its transactions begin
    IMMEDIATE, so concurrent starters serialise on the check of the revision.
    Raises SchemaTooNew for a database written by a newer musicsync.
    """
    if engine.dialect.name == "sqlite":
        async with engine.begin() as conn:
            await _migrate_sqlite(conn)
        return
    async with engine.connect() as conn:
        found = await _postgres_revision(conn)
    if found == HEAD_REVISION:
        return
    async with engine.begin() as conn:
        # Held until this transaction ends: whoever comes next sees its outcome.
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                           {"key": UPGRADE_LOCK_KEY})
        found = await _postgres_revision(conn)
        if found is None and await _is_empty(conn):
            await _create(conn)
        elif found != HEAD_REVISION:
            await _upgrade(conn, found)


async def _migrate_sqlite(conn: AsyncConnection) -> None:
    version = (await conn.exec_driver_sql("PRAGMA user_version")).scalar_one()
    if version > LATEST_VERSION:
        raise too_new(version, LATEST_VERSION)
    managed = (await conn.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
    )).first() is not None
    found = await _revision(conn) if managed else None
    if found == HEAD_REVISION and version == LATEST_VERSION:
        return
    if not managed and version == 0 and await _is_empty(conn):
        await _create(conn)
    elif not managed and version > 0:
        await legacy.upgrade(conn, version)
        await _upgrade(conn, found, stamp=LEGACY_REVISION)
    elif found != HEAD_REVISION:
        await _upgrade(conn, found)
    await conn.exec_driver_sql(f"PRAGMA user_version = {LATEST_VERSION}")


async def schema_of(conn: AsyncConnection) -> tuple[str, int]:
    """The database's schema as (what to call it, -1 older / 0 current / 1 newer than this
    musicsync's): for commands that need a database at the head revision (db copy)."""
    if conn.dialect.name == "sqlite":
        version = (await conn.exec_driver_sql("PRAGMA user_version")).scalar_one()
        if version != LATEST_VERSION:
            return str(version), (version > LATEST_VERSION) - (version < LATEST_VERSION)
        found = await _revision(conn)
    else:
        found = await _postgres_revision(conn)
    if found == HEAD_REVISION:
        return f"revision {found}", 0
    return f"revision {found or '(none)'}", -1 if found is None else 1


async def has_schema(conn: AsyncConnection) -> bool:
    """Whether the database holds musicsync's tables at all (any version of them)."""
    return not await _is_empty(conn)


async def _postgres_revision(conn: AsyncConnection) -> str | None:
    # Not to_regclass(): after waiting for the lock it may answer from this connection's
    # catalog cache, from before another starter created the table.
    if (await conn.execute(text(
            "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema() "
            "AND tablename = 'alembic_version'"))).first() is None:
        return None
    return await _revision(conn)


async def _revision(conn: AsyncConnection) -> str | None:
    return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()


async def _is_empty(conn: AsyncConnection) -> bool:
    """Whether the database has no tables at all (a new file, a new PostgreSQL database)."""
    tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
    return not tables


async def _create(conn: AsyncConnection) -> None:
    """The head schema in an empty database, from the models, stamped at the head revision."""
    from ..models import Base

    log.info("creating the database schema (revision %s)", HEAD_REVISION)
    await conn.run_sync(Base.metadata.create_all)
    # The full-text index and the statistics' running totals are no models.
    from .. import search_index, summaries
    await conn.run_sync(search_index.create_index)
    await conn.run_sync(summaries.create)
    # Alembic's own table, as Alembic makes it.
    await conn.execute(text(
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
        "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"))
    await conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:head)"),
                       {"head": HEAD_REVISION})


async def _upgrade(conn: AsyncConnection, found: str | None, *, stamp: str | None = None) -> None:
    from . import runner  # Alembic and Mako: only now (see above)

    log.info("upgrading database schema from revision %s to %s",
             stamp or found or "(empty)", HEAD_REVISION)
    await conn.run_sync(runner.upgrade, stamp=stamp)
