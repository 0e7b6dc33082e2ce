"""Schema migrations (db/migrations) on SQLite and on PostgreSQL: new databases, upgrades of
databases from before Alembic, starters racing, a schema too new, and Alembic kept out of
memory when nothing is due."""

from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Column, inspect, select, text

from musicsync.db import Database
from musicsync.db.migrations import (HEAD_REVISION, LATEST_VERSION, LEGACY_REVISION,
                                     SchemaTooNew, legacy, migrate)
from musicsync.db.models import Base, Blob, UploadSession, User
from musicsync.db.search_index import GIN_INDEX
from musicsync.proto import auth_pb2
from musicsync.server import App

from .conftest import PASSWORD, REGISTRATION_KEY, make_settings
from .helpers import Client

SRC = Path(__file__).resolve().parent.parent / "src"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """An empty database of each kind: an SQLite file that does not exist yet, or a fresh
    PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "musicsync.db")
    return request.getfixturevalue("postgres_url")


async def execute(database_url: str, *statements: str) -> None:
    """Statements run on the database in one transaction, outside musicsync's migrations."""
    db = Database(database_url)
    try:
        async with db.engine.begin() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await db.close()


async def revisions_run(db: Database) -> None:
    """Every revision applied by Alembic, as an existing database would go through them
    (``migrate`` creates an empty database from the models instead)."""
    from musicsync.db.migrations import runner

    async with db.writer_engine().begin() as conn:
        await conn.run_sync(runner.upgrade)


async def legacy_database(path: Path, version: int) -> None:
    """An SQLite file as musicsync left it at legacy schema ``version`` (before Alembic)."""
    old = Database(str(path))
    try:
        async with old.writer_engine().begin() as conn:
            await legacy.upgrade(conn, 0, version)
    finally:
        await old.close()


async def revision_of(db: Database) -> list[str]:
    async with db.read() as session:
        return list((await session.execute(text("SELECT version_num FROM alembic_version")))
                    .scalars())


def differences_from_models(connection) -> list:
    """What Alembic's autogenerate would change to make the database match the models."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    # Alembic compares expression indexes by their text, which PostgreSQL rewrites ('' is
    # ''::text): describe_schema compares them instead, as each database reads them back.
    expression_indexes = {index.name for table in Base.metadata.tables.values()
                          for index in table.indexes
                          if any(not isinstance(part, Column) for part in index.expressions)}
    expression_indexes.add(GIN_INDEX)  # no model's (search_index.create_index makes it)
    context = MigrationContext.configure(connection, opts={
        "compare_type": True, "compare_server_default": True,
        "include_name": lambda name, kind, _parents: (
            (kind != "table" or name in Base.metadata.tables) and
            (kind != "index" or name not in expression_indexes)),
        "include_object": lambda _object, name, kind, _reflected, _compare_to: (
            kind != "index" or name not in expression_indexes)})
    differences = compare_metadata(context, Base.metadata)
    if connection.dialect.name == "sqlite":
        # SQLAlchemy does not read ON DELETE back from SQLite (describe_schema asks SQLite),
        # and an INTEGER PRIMARY KEY is the rowid, never NULL whatever the DDL says.
        differences = [d for d in differences if not (
            d[0] in ("add_fk", "remove_fk") or
            isinstance(d, list) and all(change[0] == "modify_nullable" and change[3] in
                                        Base.metadata.tables[change[2]].primary_key.columns
                                        for change in d))]
    return differences


def describe_schema(connection) -> dict:
    """Tables with their columns (type, nullability, default), keys, indexes and, on SQLite,
    which tables never reuse a deleted row's id."""
    inspector = inspect(connection)
    sqlite = connection.dialect.name == "sqlite"
    schema = {}
    for table in inspector.get_table_names():
        primary_key = tuple(inspector.get_pk_constraint(table)["constrained_columns"])
        if sqlite:
            # SQLAlchemy's reflection misses ON DELETE of inline REFERENCES: ask SQLite.
            foreign_keys = sorted((row[3], row[2], row[4], row[6]) for row in
                                  connection.exec_driver_sql(f"PRAGMA foreign_key_list({table})"))
            sql = connection.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = ?",
                                             (table,)).scalar()
            never_reused = "AUTOINCREMENT" in sql.upper()
        else:
            foreign_keys = sorted(
                (fk["constrained_columns"][0], fk["referred_table"], fk["referred_columns"][0],
                 fk["options"].get("ondelete", "NO ACTION"))
                for fk in inspector.get_foreign_keys(table))
            never_reused = None
        schema[table] = {
            # An INTEGER PRIMARY KEY is the rowid, never NULL, whatever the DDL says.
            "columns": {c["name"]: (str(c["type"]),
                                    c["nullable"] and c["name"] not in primary_key, c["default"])
                        for c in inspector.get_columns(table)},
            "primary_key": primary_key,
            "foreign_keys": foreign_keys,
            # Expression indexes (browsing's, PostgreSQL's search index) by their expressions.
            "indexes": sorted((ix["name"], tuple(map(str, ix.get("expressions") or
                                                     ix["column_names"])), bool(ix["unique"]))
                              for ix in inspector.get_indexes(table)),
            "unique": sorted(tuple(uc["column_names"])
                             for uc in inspector.get_unique_constraints(table)),
            "never_reused": never_reused,
        }
    if sqlite:
        # SQLAlchemy skips SQLite's expression indexes, and triggers (the search index's
        # FTS5 table is kept by triggers): compare their SQL, spaces and quotes aside.
        schema["sqlite_master"] = sorted(
            (kind, name, "".join(sql.replace('"', "").split()).lower())
            for kind, name, sql in connection.exec_driver_sql(
                "SELECT type, name, sql FROM sqlite_master "
                "WHERE type IN ('index', 'trigger') AND sql IS NOT NULL"))
    else:
        # Nor PostgreSQL's triggers and their functions (the statistics' running totals).
        schema["triggers"] = sorted(connection.exec_driver_sql(
            "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal"))
        schema["functions"] = sorted(connection.exec_driver_sql(
            "SELECT proname, prosrc FROM pg_proc "
            "WHERE pronamespace = current_schema()::regnamespace"))
    return schema


async def schema_of(db: Database) -> tuple[dict, list]:
    async with db.engine.connect() as conn:
        return (await conn.run_sync(describe_schema), await conn.run_sync(differences_from_models))


def test_head_revision_is_the_newest_script_and_legacy_starts_at_the_first():
    from musicsync.db.migrations import runner

    scripts = runner.scripts()
    assert scripts.get_current_head() == HEAD_REVISION
    assert list(scripts.get_bases()) == [LEGACY_REVISION]
    assert LATEST_VERSION > legacy.LATEST_VERSION  # a musicsync from before Alembic refuses it


async def test_revisions_build_exactly_the_schema_the_models_describe(database_url, tmp_path):
    """On each database: Alembic's revisions, the models' schema that a new database gets,
    and (on SQLite) the legacy steps plus the revisions, all build the same schema."""
    migrated = Database(database_url)
    try:
        await revisions_run(migrated)
        through_revisions, differences = await schema_of(migrated)
    finally:
        await migrated.close()
    assert differences == []
    assert "users" in through_revisions and "alembic_version" in through_revisions

    if database_url.startswith("postgresql"):
        await execute(database_url, "DROP SCHEMA public CASCADE", "CREATE SCHEMA public")
    else:
        database_url = str(tmp_path / "created.db")
    created = Database(database_url)
    try:
        await migrate(created.writer_engine())
        assert await schema_of(created) == (through_revisions, [])
    finally:
        await created.close()

    if not database_url.startswith("postgresql"):
        await legacy_database(tmp_path / "legacy.db", 1)
        upgraded = Database(str(tmp_path / "legacy.db"))
        try:
            await migrate(upgraded.writer_engine())
            assert await schema_of(upgraded) == (through_revisions, [])
        finally:
            await upgraded.close()


async def test_postgresql_keeps_ids_sizes_times_and_sequences_in_64_bits(postgres_url):
    db = Database(postgres_url)
    big = 5 * 2**30  # a 5 GiB song; also a time in milliseconds, a long change feed
    try:
        await migrate(db.writer_engine())
        async with db.write() as session:
            session.add(User(id=2**40, username="a", username_key="a", password_hash="x",
                             created_at=big, quota_bytes=2**50, last_seq=big, disabled=True))
            session.add(Blob(sha256=b"s" * 32, size=big, created_at=big, corrupt=True))
            await session.flush()
            session.add(UploadSession(id="u", user_id=2**40, sha256=b"s" * 32, size=big,
                                      committed=big, created_at=big, expires_at=big))
        async with db.read() as session:
            user = (await session.execute(select(User))).scalar_one()
            blob = (await session.execute(select(Blob).where(Blob.corrupt.is_(True)))).scalar_one()
            upload = (await session.execute(select(UploadSession))).scalar_one()
        assert (user.id, user.quota_bytes, user.last_seq) == (2**40, 2**50, big)
        assert user.disabled is True
        assert (blob.size, upload.committed) == (big, big)
    finally:
        await db.close()


async def test_a_new_database_is_created_at_the_head_revision(database_url):
    db = Database(database_url)
    try:
        await migrate(db.writer_engine())
        await migrate(db.writer_engine())  # and the second start finds nothing to do
        assert await revision_of(db) == [HEAD_REVISION]
        if db.path is not None:
            with sqlite3.connect(db.path) as plain:
                assert plain.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
    finally:
        await db.close()


async def test_starters_racing_on_a_new_database_create_its_schema_once(database_url, caplog):
    caplog.set_level(logging.INFO, logger="musicsync.db.migrations")
    # Each Database has its own engine and connections, as separate processes do.
    starters = [Database(database_url) for _ in range(4)]
    try:
        await asyncio.gather(*(migrate(db.writer_engine()) for db in starters))
        assert await revision_of(starters[0]) == [HEAD_REVISION]
    finally:
        for db in starters:
            await db.close()
    assert [r.message for r in caplog.records if "schema" in r.message] == [
        f"creating the database schema (revision {HEAD_REVISION})"]


async def test_starters_racing_to_upgrade_apply_the_revisions_once(database_url, caplog):
    """A database holding a table of someone else's has no schema of ours yet: it goes
    through the revisions (Alembic), once however many start together."""
    await execute(database_url, "CREATE TABLE someone_elses (x INTEGER)")
    caplog.set_level(logging.INFO, logger="musicsync.db.migrations")
    starters = [Database(database_url) for _ in range(4)]
    try:
        await asyncio.gather(*(migrate(db.writer_engine()) for db in starters))
        assert await revision_of(starters[0]) == [HEAD_REVISION]
        assert (await schema_of(starters[0]))[1] == []
    finally:
        for db in starters:
            await db.close()
    assert [r.message for r in caplog.records if "schema" in r.message] == [
        f"upgrading database schema from revision (empty) to {HEAD_REVISION}"]


async def test_an_upgrade_that_fails_leaves_the_database_as_it_was(database_url):
    """Each upgrade is one transaction: a revision failing half-way keeps nothing of it."""
    await execute(database_url, "CREATE TABLE blobs (x INTEGER)")  # revision 0001 makes one
    db = Database(database_url)
    try:
        with pytest.raises(Exception, match="(?i)already exists"):
            await migrate(db.writer_engine())
        async with db.engine.connect() as conn:
            assert await conn.run_sync(lambda c: inspect(c).get_table_names()) == ["blobs"]
    finally:
        await db.close()


async def test_a_database_from_a_newer_musicsync_is_refused(database_url):
    db = Database(database_url)
    try:
        await migrate(db.writer_engine())
        async with db.write() as session:
            await session.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(SchemaTooNew, match="schema version '9999', newer than this "
                                               "musicsync understands.*upgrade musicsync"):
            await migrate(db.writer_engine())
    finally:
        await db.close()


async def test_server_refuses_a_database_from_a_newer_version(tmp_path):
    settings = make_settings(tmp_path / "data")
    settings.data_dir.mkdir()
    with sqlite3.connect(settings.data_dir / "musicsync.db") as db:
        db.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    with pytest.raises(SchemaTooNew, match="upgrade musicsync"):
        async with App(settings):
            pass


async def test_server_upgrades_an_older_database_without_losing_accounts(tmp_path):
    settings = make_settings(tmp_path)
    async with App(settings) as app, Client(app) as client:
        await client.auth.Register(auth_pb2.RegisterRequest(
            username="alice", password=PASSWORD, security_key=REGISTRATION_KEY))
    # Rebuild the database as version 1 would have left it, with Alice in it.
    path = settings.data_dir / "musicsync.db"
    with sqlite3.connect(path) as db:
        alice = db.execute("SELECT username, username_key, password_hash, created_at "
                           "FROM users").fetchone()
    path.unlink()
    await legacy_database(path, 1)
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO users (username, username_key, password_hash, created_at) "
                   "VALUES (?, ?, ?, ?)", alice)
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    async with App(settings) as app, Client(app) as client:
        login = await client.auth.Login(auth_pb2.LoginRequest(username="alice", password=PASSWORD))
        assert login.token
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [
            (HEAD_REVISION,)]
        assert db.execute("SELECT last_seq FROM users").fetchone() == (0,)


@pytest.mark.parametrize("version", range(1, legacy.LATEST_VERSION + 1))
async def test_sqlite_databases_of_every_legacy_version_upgrade_keeping_their_accounts(
        tmp_path, version):
    path = tmp_path / "musicsync.db"
    await legacy_database(path, version)
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO users (id, username, username_key, password_hash, created_at) "
                   "VALUES (7, 'Alice', 'alice', 'hash', 1700000000)")
        db.execute("INSERT INTO refresh_tokens (user_id, family_id, token_hash, issued_at, "
                   "expires_at) VALUES (7, 'f', x'01', 1, 2)")
    upgraded = Database(str(path))
    try:
        await migrate(upgraded.writer_engine())
        assert (await schema_of(upgraded))[1] == []
    finally:
        await upgraded.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT id, username, username_key, password_hash, created_at, "
                          "disabled FROM users").fetchall() == [
            (7, "Alice", "alice", "hash", 1700000000, 0)]
        assert db.execute("SELECT user_id, family_id FROM refresh_tokens").fetchall() == [
            (7, "f")]
        assert db.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [
            (HEAD_REVISION,)]


async def test_upgrading_gives_every_song_a_path_unique_per_user_and_loses_nothing(tmp_path):
    path = tmp_path / "data" / "musicsync.db"
    path.parent.mkdir()
    await legacy_database(path, 3)  # before songs had paths
    songs = [(1, b"a" * 32, "x.mp3"), (1, b"b" * 32, "x.mp3"), (1, b"c" * 32, "y"),
             (1, b"d" * 32, "y"), (2, b"e" * 32, "x.mp3")]
    with sqlite3.connect(path) as db:
        for user in (1, 2):
            db.execute("INSERT INTO users (id, username, username_key, password_hash, "
                       "created_at) VALUES (?, ?, ?, 'x', 0)", (user, f"u{user}", f"u{user}"))
        for user, sha256, filename in songs:
            db.execute("INSERT OR IGNORE INTO blobs (sha256, size, created_at) "
                       "VALUES (?, 1, 0)", (sha256,))
            db.execute("INSERT INTO library (user_id, sha256, filename, size, title, "
                       "created_at, updated_at, seq) VALUES (?, ?, ?, 1, ?, 0, 0, 1)",
                       (user, sha256, filename, f"title of {sha256[:1].decode()}"))
        db.execute("INSERT INTO changes (user_id, seq, kind, sha256, at) "
                   "VALUES (1, 1, 1, ?, 0)", (b"a" * 32,))

    upgraded = Database(str(path))
    await migrate(upgraded.writer_engine())
    await upgraded.close()

    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT user_id, sha256, filename, path, title FROM library "
                          "ORDER BY id").fetchall()
        assert rows == [
            (1, b"a" * 32, "x.mp3", "x.mp3", "title of a"),
            (1, b"b" * 32, "x (2).mp3", "x (2).mp3", "title of b"),
            (1, b"c" * 32, "y", "y", "title of c"),
            (1, b"d" * 32, "y (2)", "y (2)", "title of d"),
            (2, b"e" * 32, "x.mp3", "x.mp3", "title of e")]
        assert db.execute("SELECT replaces FROM changes").fetchall() == [(None,)]
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            db.execute("UPDATE library SET path = 'x.mp3' WHERE sha256 = ?", (b"b" * 32,))


START_SERVER = """
import asyncio, sys
from pathlib import Path
from musicsync.config import Settings
from musicsync.server import App

async def main():
    settings = Settings(data_dir=Path(sys.argv[1]), database_url=sys.argv[2], host="127.0.0.1",
                        auth_port=0, file_port=0, sync_port=0, security_key="registration",
                        secret_key=sys.argv[3], argon2_time_cost=1, argon2_memory_kib=1024,
                        argon2_parallelism=1)
    async with App(settings):
        pass

asyncio.run(main())
loaded = {name.split(".")[0] for name in sys.modules} | set(sys.modules)
print(sorted(loaded & {"alembic", "mako", "asyncpg", "sqlalchemy.dialects.postgresql"}))
"""


def tools_a_server_start_imported(data_dir: Path, database_url: str) -> str:
    """Which of Alembic, Mako, asyncpg and SQLAlchemy's PostgreSQL dialect a server process
    had imported once started (then stopped)."""
    result = subprocess.run([sys.executable, "-c", START_SERVER, str(data_dir), database_url,
                             secrets.token_urlsafe(32)],
                            capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


async def test_a_server_imports_alembic_only_when_an_upgrade_is_due_and_asyncpg_only_on_postgresql(
        database_url, tmp_path):
    # About 10 MiB of the idle server's 80 MiB budget (the dialect alone 2 MiB).
    data_dir = tmp_path / "data"
    driver = ("['asyncpg', 'sqlalchemy.dialects.postgresql']"
              if database_url.startswith("postgresql") else "[]")
    assert tools_a_server_start_imported(data_dir, database_url) == driver  # a new database
    assert tools_a_server_start_imported(data_dir, database_url) == driver  # up to date
    if database_url.startswith("postgresql"):
        return
    legacy_file = tmp_path / "legacy.db"
    await legacy_database(legacy_file, 4)
    assert tools_a_server_start_imported(data_dir, str(legacy_file)) == (
        "['alembic', 'mako', 'sqlalchemy.dialects.postgresql']")  # Alembic loads every dialect
