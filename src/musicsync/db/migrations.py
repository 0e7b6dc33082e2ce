"""Schema versions, applied in order at start-up.

The database's ``PRAGMA user_version`` records how many migrations it has.
Each migration runs in one transaction together with the version bump, so a
crash leaves the database at the old version or the new one, never between;
several processes starting at once take turns on SQLite's write lock and only
the first applies anything. Migrations are append-only: never edit one that
has shipped, add the next.

A hand-rolled runner rather than Alembic: the schema is SQLite-only and
linear, and this keeps Alembic and Mako out of a server meant for a Pi.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

MIGRATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("accounts", (
        """CREATE TABLE users (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            username TEXT NOT NULL,
            username_key TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL,
            disabled INTEGER NOT NULL DEFAULT 0,
            tokens_valid_after INTEGER NOT NULL DEFAULT 0,
            created_at INTEGER NOT NULL
        )""",
        """CREATE TABLE refresh_tokens (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            family_id TEXT NOT NULL,
            token_hash BLOB NOT NULL UNIQUE,
            issued_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            rotated_at INTEGER,
            revoked_at INTEGER
        )""",
        "CREATE INDEX ix_refresh_tokens_family ON refresh_tokens (family_id)",
        "CREATE INDEX ix_refresh_tokens_user ON refresh_tokens (user_id)",
        """CREATE TABLE login_failures (
            id INTEGER PRIMARY KEY,
            username_key TEXT NOT NULL,
            failed_at INTEGER NOT NULL
        )""",
        "CREATE INDEX ix_login_failures_key ON login_failures (username_key, failed_at)",
    )),
    ("library and change feed", (
        "ALTER TABLE users ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE users ADD COLUMN pruned_seq INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE users ADD COLUMN quota_bytes INTEGER",
        """CREATE TABLE blobs (
            sha256 BLOB NOT NULL PRIMARY KEY,
            size INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            corrupt INTEGER NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE library (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            sha256 BLOB NOT NULL REFERENCES blobs(sha256),
            filename TEXT NOT NULL,
            size INTEGER NOT NULL,
            title TEXT NOT NULL DEFAULT '',
            artist TEXT NOT NULL DEFAULT '',
            album TEXT NOT NULL DEFAULT '',
            album_artist TEXT NOT NULL DEFAULT '',
            genre TEXT NOT NULL DEFAULT '',
            track INTEGER NOT NULL DEFAULT 0,
            disc INTEGER NOT NULL DEFAULT 0,
            year INTEGER NOT NULL DEFAULT 0,
            duration_ms INTEGER NOT NULL DEFAULT 0,
            bitrate INTEGER NOT NULL DEFAULT 0,
            sample_rate INTEGER NOT NULL DEFAULT 0,
            channels INTEGER NOT NULL DEFAULT 0,
            codec TEXT NOT NULL DEFAULT '',
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            CONSTRAINT uq_library_user_sha256 UNIQUE (user_id, sha256)
        )""",
        "CREATE INDEX ix_library_sha256 ON library (sha256)",
        """CREATE TABLE changes (
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            kind INTEGER NOT NULL,
            sha256 BLOB NOT NULL,
            at INTEGER NOT NULL,
            PRIMARY KEY (user_id, seq)
        )""",
        """CREATE TABLE devices (
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            device_id TEXT NOT NULL,
            name TEXT NOT NULL DEFAULT '',
            cursor INTEGER NOT NULL DEFAULT 0,
            last_seen INTEGER NOT NULL,
            PRIMARY KEY (user_id, device_id)
        )""",
        """CREATE TABLE upload_sessions (
            id TEXT NOT NULL PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            sha256 BLOB NOT NULL,
            size INTEGER NOT NULL,
            committed INTEGER NOT NULL DEFAULT 0,
            created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            CONSTRAINT uq_upload_sessions_user_sha256 UNIQUE (user_id, sha256)
        )""",
        "CREATE INDEX ix_upload_sessions_expires ON upload_sessions (expires_at)",
    )),
    ("sign-in throttling per address, revocable sign-ins", (
        # The old table kept every failed username whole, attacker-sized: drop it all.
        "DROP TABLE login_failures",
        """CREATE TABLE login_failures (
            username_key TEXT NOT NULL,
            address TEXT NOT NULL DEFAULT '',
            failures INTEGER NOT NULL DEFAULT 0,
            failed_at INTEGER NOT NULL DEFAULT 0,
            last_success INTEGER,
            PRIMARY KEY (username_key, address)
        )""",
        "CREATE INDEX ix_login_failures_failed_at ON login_failures (failed_at)",
        "DROP INDEX ix_refresh_tokens_family",
        "CREATE INDEX ix_refresh_tokens_family ON refresh_tokens (family_id, revoked_at)",
    )),
)

LATEST_VERSION = len(MIGRATIONS)


class SchemaTooNew(RuntimeError):
    """The database was written by a newer musicsync than this one."""


async def migrate(engine: AsyncEngine, *, target: int = LATEST_VERSION) -> int:
    """Upgrade the schema to ``target`` (default: the latest); returns the version found.

    ``engine`` must begin its transactions IMMEDIATE (``Database.writer_engine``)
    so concurrent starters serialise on the check of the version.
    """
    async with engine.begin() as conn:
        found = (await conn.exec_driver_sql("PRAGMA user_version")).scalar_one()
        if found > LATEST_VERSION:
            raise SchemaTooNew(
                f"the database has schema version {found}, newer than this musicsync "
                f"understands ({LATEST_VERSION}); upgrade musicsync or restore a backup")
        for version in range(found + 1, target + 1):
            name, statements = MIGRATIONS[version - 1]
            log.info("upgrading database schema to version %d (%s)", version, name)
            for statement in statements:
                await conn.exec_driver_sql(statement)
            await conn.exec_driver_sql(f"PRAGMA user_version = {version}")
    return found
