"""Pages of listings: their size and their opaque tokens.

A page token is the position after the last row of a page (keyset paging): the values of
its sort key, with the name of the listing it belongs to, as base64 of JSON. A page costs
the same at any depth, and rows added or removed between calls never make the next page
repeat or skip one. Tokens hold at most two tag values (clipped to MAX_TAG_CHARS at
upload) or a song's path (MAX_PATH_BYTES), so MAX_BROWSE_TOKEN_CHARS bounds every token
this server gives.

A listing of one user's or one album's rows names them in its listing (``scoped``): a
token given for another user, album or listing is INVALID_ARGUMENT, as is one that is not
a token (bad base64, wrong shape, an integer past its column's, text a database cannot
hold).
A token is a position, not a permission: the query around it still reads only the
caller's rows, so a token a client makes up can at most skip some of its own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import InvalidArgument
from ..limits import DEFAULT_BROWSE_PAGE, MAX_BROWSE_PAGE, MAX_BROWSE_TOKEN_CHARS

_TYPES = {"s": str, "i": int, "n": int}
# What an integer of a token may be: a BIGINT ("i") or an INTEGER column's value ("n"):
# past them PostgreSQL refuses the comparison, which must be the client's error.
_RANGES = {"i": range(-2 ** 63, 2 ** 63), "n": range(-2 ** 31, 2 ** 31)}


def page_size(size: int) -> int:
    """The rows a page holds: ``size``, or DEFAULT_BROWSE_PAGE for 0."""
    if size == 0:
        return DEFAULT_BROWSE_PAGE
    if not 0 < size <= MAX_BROWSE_PAGE:
        raise InvalidArgument(f"page.size must be between 1 and {MAX_BROWSE_PAGE} "
                              f"(0 for {DEFAULT_BROWSE_PAGE}); got {size}")
    return size


def scoped(listing: str, *scope) -> str:
    """The name of ``listing`` for one scope (a user id, an album's key): a short digest
    of it, so a token of another scope does not continue this one."""
    digest = hashlib.sha256(json.dumps(scope, ensure_ascii=False).encode("utf-8",
                                                                         "surrogatepass"))
    return f"{listing}:{digest.hexdigest()[:16]}"


@dataclass(frozen=True)
class Page:
    """Rows of a page, and how to make the token of the position after any of them."""

    rows: list
    more: bool
    listing: str
    key: Callable  # row -> its sort key (a tuple of str and int)

    def token_after(self, index: int) -> str:
        return encode_token(self.listing, self.key(self.rows[index]))


def encode_token(listing: str, values: tuple) -> str:
    """The token of the position after a row whose sort key is ``values``."""
    raw = json.dumps([listing, *values], ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii")


def decode_token(token: str, listing: str, shape: str) -> tuple | None:
    """The sort key a token continues after (None for the first page): ``shape`` spells
    its values' types, "s" for text, "i" for a 64-bit integer and "n" for a 32-bit one
    ("si": text, then integer)."""
    if not token:
        return None
    if len(token) <= MAX_BROWSE_TOKEN_CHARS:
        try:
            found = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        except (UnicodeError, binascii.Error, ValueError):
            found = None
        if (isinstance(found, list) and len(found) == len(shape) + 1 and found[0] == listing
                and all(_fits(value, kind) for value, kind in zip(found[1:], shape))):
            return tuple(found[1:])
    raise InvalidArgument("page.token is not a token of this listing; pass the "
                          "next_page_token of its previous page (with the same sort, "
                          "filters and album, as the same user), or nothing to start over")


def _fits(value, kind: str) -> bool:
    """Whether a token's value has its type and could come from a database row."""
    if type(value) is not _TYPES[kind]:
        return False
    if kind in _RANGES:
        return value in _RANGES[kind]
    try:
        value.encode("utf-8")  # no lone surrogates (JSON's "\ud800")
    except UnicodeError:
        return False
    return "\x00" not in value  # PostgreSQL text holds no NUL
