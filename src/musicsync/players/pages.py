"""Pages of browsing and search answers: their size and their opaque tokens.

A page token is the position after the last row of a page (keyset paging): the values of
its sort key, with the name of the listing it belongs to, as base64 of JSON. A page costs
the same at any depth, and rows added or removed between calls never make the next page
repeat or skip one. Tokens hold at most two tag values (clipped to MAX_TAG_CHARS at
upload), so MAX_BROWSE_TOKEN_CHARS bounds every token this server gives; a token that is
not one (wrong listing, bad base64, wrong shape) is INVALID_ARGUMENT.
"""

from __future__ import annotations

import base64
import binascii
import json

from ..errors import InvalidArgument
from ..limits import DEFAULT_BROWSE_PAGE, MAX_BROWSE_PAGE, MAX_BROWSE_TOKEN_CHARS

_TYPES = {"s": str, "i": int}


def page_size(size: int) -> int:
    """The rows a page holds: ``size``, or DEFAULT_BROWSE_PAGE for 0."""
    if size == 0:
        return DEFAULT_BROWSE_PAGE
    if not 0 < size <= MAX_BROWSE_PAGE:
        raise InvalidArgument(f"page.size must be between 1 and {MAX_BROWSE_PAGE} "
                              f"(0 for {DEFAULT_BROWSE_PAGE}); got {size}")
    return size


def encode_token(listing: str, values: tuple) -> str:
    """The token of the position after a row whose sort key is ``values``."""
    raw = json.dumps([listing, *values], ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii")


def decode_token(token: str, listing: str, shape: str) -> tuple | None:
    """The sort key a token continues after (None for the first page): ``shape`` spells
    its values' types, "s" for text and "i" for an integer ("si": text, then integer)."""
    if not token:
        return None
    if len(token) <= MAX_BROWSE_TOKEN_CHARS:
        try:
            found = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        except (UnicodeError, binascii.Error, ValueError):
            found = None
        if (isinstance(found, list) and len(found) == len(shape) + 1 and found[0] == listing
                and all(type(value) is _TYPES[kind] for value, kind in zip(found[1:], shape))):
            return tuple(found[1:])
    raise InvalidArgument("page.token is not a token of this listing; pass the "
                          "next_page_token of its previous page (with the same sort and "
                          "filters), or nothing to start over")
