"""What a valid username and password look like, and how usernames compare."""

from __future__ import annotations

import unicodedata

from ..errors import InvalidArgument

USERNAME_MIN_CHARS = 3
USERNAME_MAX_CHARS = 64
PASSWORD_MIN_CHARS = 8
PASSWORD_MAX_BYTES = 1024


def username_key(raw: str) -> str:
    """The form usernames are unique in and looked up by: NFC, case-folded."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", raw).casefold())


def valid_username(raw: str) -> str:
    """The username as stored (NFC), or InvalidArgument naming the broken rule."""
    name = unicodedata.normalize("NFC", raw)
    if not USERNAME_MIN_CHARS <= len(name) <= USERNAME_MAX_CHARS:
        raise InvalidArgument(
            f"username must be {USERNAME_MIN_CHARS} to {USERNAME_MAX_CHARS} characters long "
            f"(got {len(name)})")
    for char in name:
        if unicodedata.category(char)[0] == "C" or char in "\u2028\u2029":
            raise InvalidArgument(
                f"username must not contain control characters (found U+{ord(char):04X})")
    if name != name.strip():
        raise InvalidArgument("username must not start or end with whitespace")
    return name


def check_password(password: str) -> None:
    """InvalidArgument naming the broken rule, if the password breaks one."""
    if len(password) < PASSWORD_MIN_CHARS:
        raise InvalidArgument(f"password must be at least {PASSWORD_MIN_CHARS} characters long")
    if len(password.encode("utf-8")) > PASSWORD_MAX_BYTES:
        raise InvalidArgument(f"password must be at most {PASSWORD_MAX_BYTES} bytes of UTF-8")
