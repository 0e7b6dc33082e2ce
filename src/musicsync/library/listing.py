"""Listing a user's library: all at once (legacy GetSync) or page by page.

Pages follow the entries' ids (keyset paging): a page token is the last id
seen, so a page costs the same at any depth and entries added or removed
between calls never shift what the next page returns.
"""

from __future__ import annotations

import base64
import binascii

from sqlalchemy import select

from ..db import Database
from ..db.models import LibraryEntry
from ..errors import InvalidArgument
from ..limits import MAX_PAGE_TOKEN_CHARS

_TOKEN_PREFIX = b"after:"
# Entry ids are SQLite integers: a token naming a larger one cannot be ours.
_MAX_ID = 2**63 - 1


def encode_page_token(last_id: int) -> str:
    return base64.urlsafe_b64encode(_TOKEN_PREFIX + str(last_id).encode()).decode()


def decode_page_token(token: str) -> int:
    """The id a page token continues after; InvalidArgument for one this server did not issue."""
    if not token:
        return 0
    if len(token) <= MAX_PAGE_TOKEN_CHARS:
        try:
            raw = base64.urlsafe_b64decode(token.encode("ascii"))
        except (UnicodeEncodeError, binascii.Error, ValueError):
            raw = b""
        digits = raw[len(_TOKEN_PREFIX):]
        # Only what encode_page_token writes: ASCII digits, no sign, no leading zeros.
        if (raw.startswith(_TOKEN_PREFIX) and digits.isdigit()
                and digits == str(int(digits)).encode() and int(digits) <= _MAX_ID):
            return int(digits)
    raise InvalidArgument("page_token is not one this server issued; pass the "
                          "next_page_token of the previous page, or nothing to start over")


async def all_names(db: Database, user_id: int) -> list[tuple[bytes, str, str]]:
    """(sha256, filename, path) of every entry, oldest first."""
    async with db.read() as session:
        rows = await session.execute(
            select(LibraryEntry.sha256, LibraryEntry.filename, LibraryEntry.path)
            .where(LibraryEntry.user_id == user_id).order_by(LibraryEntry.id))
        return [(sha, name, path) for sha, name, path in rows]


async def page(db: Database, user_id: int, token: str, size: int
               ) -> tuple[list[LibraryEntry], str]:
    """A page of entries after ``token``, and the token of the next page ('' at the end)."""
    after = decode_page_token(token)
    async with db.read() as session:
        entries = list(await session.scalars(
            select(LibraryEntry).where(LibraryEntry.user_id == user_id, LibraryEntry.id > after)
            .order_by(LibraryEntry.id).limit(size + 1)))
    if len(entries) > size:
        return entries[:size], encode_page_token(entries[size - 1].id)
    return entries, ""
