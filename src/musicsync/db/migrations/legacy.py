"""The four SQLite schema versions before Alembic, tracked by ``PRAGMA user_version``.

Databases made by musicsync before Alembic managed the schema (user_version 1 to 4,
no ``alembic_version`` table) are brought to version 4 by these steps, then stamped
at Alembic's first revision, which is the same schema (see the package docstring).
Nothing new goes here: the steps are kept as shipped, for databases still on them.
Each step runs inside the caller's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncConnection

log = logging.getLogger(__name__)

# A step is an SQL statement, or a coroutine function given the connection (for data
# that SQL alone cannot reshape). Steps must not depend on code that may change later.
Step = str | Callable[[AsyncConnection], Awaitable[None]]


async def _fill_library_paths(conn: AsyncConnection) -> None:
    """Each entry's path from its filename, unique per user: "name (2).ext" and so on.

    The filename follows (it is always the path's last segment)."""
    rows = (await conn.exec_driver_sql(
        "SELECT id, user_id, filename FROM library ORDER BY user_id, id")).all()
    taken: set[tuple[int, str]] = set()
    for entry_id, user_id, filename in rows:
        path = _first_free(user_id, filename or f"song {entry_id}", taken)
        taken.add((user_id, path))
        await conn.exec_driver_sql("UPDATE library SET path = ?, filename = ? WHERE id = ?",
                                   (path, path, entry_id))


def _first_free(user_id: int, name: str, taken: set[tuple[int, str]]) -> str:
    if (user_id, name) not in taken:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension) > 16:
        stem, dot, extension = name, "", ""
    number = 2
    while (user_id, f"{stem} ({number}){dot}{extension}") in taken:
        number += 1
    return f"{stem} ({number}){dot}{extension}"


MIGRATIONS: tuple[tuple[str, tuple[Step, ...]], ...] = (
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
    ("songs keep their place in the folder tree; replaced songs in the change feed", (
        # SQLite adds a NOT NULL column only with a default; every row gets its own path
        # next, and the unique index then guards it.
        "ALTER TABLE library ADD COLUMN path TEXT NOT NULL DEFAULT ''",
        _fill_library_paths,
        "CREATE UNIQUE INDEX uq_library_user_path ON library (user_id, path)",
        "ALTER TABLE changes ADD COLUMN replaces BLOB",
    )),
)

LATEST_VERSION = len(MIGRATIONS)


async def upgrade(conn: AsyncConnection, found: int, target: int = LATEST_VERSION) -> None:
    """Apply versions ``found + 1`` to ``target`` in the caller's (SQLite) transaction."""
    for version in range(found + 1, target + 1):
        name, steps = MIGRATIONS[version - 1]
        log.info("upgrading database schema to version %d (%s)", version, name)
        for step in steps:
            if isinstance(step, str):
                await conn.exec_driver_sql(step)
            else:
                await step(conn)
        await conn.exec_driver_sql(f"PRAGMA user_version = {version}")
