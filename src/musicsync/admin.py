"""Operator tasks that run beside (or without) the server, on the same database."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from .auth.accounts import Accounts
from .auth.passwords import PasswordHasher
from .auth.tokens import AccessTokens
from .config import Settings
from .db import Database
from .db.migrations import migrate


@asynccontextmanager
async def open_accounts(settings: Settings) -> AsyncIterator[Accounts]:
    """Accounts over the configured database, upgraded to the current schema."""
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    db = Database(settings.database_path_or_url())
    try:
        await migrate(db.writer_engine())
        hasher = PasswordHasher(time_cost=settings.argon2_time_cost,
                                memory_kib=settings.argon2_memory_kib,
                                parallelism=settings.argon2_parallelism)
        # Admin commands never issue tokens: a throwaway signing key will do.
        tokens = AccessTokens(secrets.token_urlsafe(32), settings.access_token_ttl)
        yield Accounts(db, hasher, tokens)
    finally:
        await db.close()
