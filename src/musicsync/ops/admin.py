"""Operator tasks that run beside (or without) the server, on the same database.

Only `musicsync serve` creates a database. Every other command opens the one
the settings name and refuses, naming the path it looked at, when there is
none: run from the wrong folder, `musicsync user add` would otherwise start a
new, empty database there that the running server never sees. The first
`user add` before the first `serve` says so explicitly with ``--create``.
On PostgreSQL the same holds for a database without musicsync's schema.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from ..auth.accounts import Accounts
from ..auth.passwords import PasswordHasher
from ..auth.tokens import AccessTokens
from ..config import Settings
from ..db import Database
from ..db.engine import database_file, is_postgres, sqlalchemy_url
from ..db.migrations import has_schema, migrate
from ..errors import ConfigError


def database_path(settings: Settings) -> Path | None:
    """The absolute path of the SQLite file the settings name (None: PostgreSQL)."""
    url = sqlalchemy_url(settings.database_path_or_url())
    return None if is_postgres(url) else database_file(url).expanduser().resolve()


def require_database(settings: Settings, *, can_create: bool = False) -> Path | None:
    """The SQLite database's path; ConfigError naming it when there is no such file.

    On PostgreSQL (None) open_database checks for the schema instead. ``can_create``:
    the command takes ``--create``, and the message says so."""
    path = database_path(settings)
    if path is not None and not path.is_file():
        raise ConfigError(f"no musicsync database at {path}; pass --data-dir or DATABASE_URL "
                          f"of the server's data{_CREATE_HINT if can_create else ''}")
    return path


_CREATE_HINT = ", or --create to start a new one"


@asynccontextmanager
async def open_database(settings: Settings, *, create: bool = False,
                        can_create: bool = False) -> AsyncIterator[Database]:
    """The configured database, upgraded to the current schema.

    It must exist unless ``create`` (then DATA_DIR is made, mode 0700, when the
    database lives there); ``can_create`` only changes the refusal's message."""
    if create:
        if not settings.database_url:
            settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    else:
        require_database(settings, can_create=can_create)
    db = Database(settings.database_path_or_url())
    try:
        if not create and db.dialect == "postgresql":
            async with db.engine.connect() as connection:
                found = await has_schema(connection)
            if not found:
                raise ConfigError(f"{db.description} holds no musicsync database; check "
                                  f"DATABASE_URL{_CREATE_HINT if can_create else ''}")
        await migrate(db.writer_engine())
        yield db
    finally:
        await db.close()


def accounts_over(db: Database, settings: Settings) -> Accounts:
    """Accounts for admin commands, which check and set passwords but issue no tokens."""
    hasher = PasswordHasher(time_cost=settings.argon2_time_cost,
                            memory_kib=settings.argon2_memory_kib,
                            parallelism=settings.argon2_parallelism)
    # Admin commands never issue tokens: a throwaway signing key will do.
    tokens = AccessTokens(secrets.token_urlsafe(32), settings.access_token_ttl)
    return Accounts(db, hasher, tokens)


@asynccontextmanager
async def open_accounts(settings: Settings, *, create: bool = False,
                        can_create: bool = False) -> AsyncIterator[Accounts]:
    """Accounts over the configured database (see ``open_database``)."""
    async with open_database(settings, create=create, can_create=can_create) as db:
        yield accounts_over(db, settings)
