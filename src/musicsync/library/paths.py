"""Where a song sits in its user's folder tree: the rules of a path, and free variants.

A path is relative and '/'-separated ("Artist/Album/01 Song.flac"). It is
NFC-normalised first (a Mac and a Linux box spell "é" differently, and must
meet at one path), then checked:

- not empty, not absolute (no leading '/');
- no empty, "." or ".." segment (no "a//b", no trailing '/');
- no control character (Unicode category Cc: U+0000-U+001F, U+007F-U+009F);
- no backslash: Windows reads it as a separator, so "a\\b.mp3" would name a
  different place on different computers (a client maps it, as it maps other
  characters its file system cannot hold);
- each segment at most MAX_FILENAME_BYTES (255) bytes of UTF-8, the whole at
  most MAX_PATH_BYTES (4,096).

A violation is INVALID_ARGUMENT naming the rule. Paths compare as exact
strings after NFC: "A.mp3" and "a.mp3" are two paths.
"""

from __future__ import annotations

import unicodedata

from ..errors import InvalidArgument
from ..limits import MAX_FILENAME_BYTES, MAX_PATH_BYTES

SEPARATOR = "/"
# An extension longer than this is taken for part of the name when suffixing.
_MAX_EXTENSION_BYTES = 16


def normalise_path(raw: str, field: str = "path") -> str:
    """``raw`` in NFC if it follows every rule above; InvalidArgument naming the first broken."""
    if len(raw.encode("utf-8")) > 4 * MAX_PATH_BYTES:  # NFC may grow a string, a little
        raise InvalidArgument(f"{field} may be at most {MAX_PATH_BYTES:,} bytes of UTF-8")
    path = unicodedata.normalize("NFC", raw)
    if not path:
        raise InvalidArgument(f"{field} must not be empty")
    size = len(path.encode("utf-8"))
    if size > MAX_PATH_BYTES:
        raise InvalidArgument(f"{field} may be at most {MAX_PATH_BYTES:,} bytes of UTF-8 "
                              f"(got {size:,})")
    if path.startswith(SEPARATOR):
        raise InvalidArgument(f"{field} must be relative: no leading '/' ({_show(path)})")
    if "\\" in path:
        raise InvalidArgument(f"{field} must separate folders with '/', and may not contain "
                              f"'\\' ({_show(path)})")
    for char in path:
        if unicodedata.category(char) == "Cc":
            raise InvalidArgument(f"{field} may not contain control characters (found "
                                  f"U+{ord(char):04X} in {_show(path)})")
    for segment in path.split(SEPARATOR):
        if not segment:
            raise InvalidArgument(f"{field} may not have an empty segment ('//' or a "
                                  f"trailing '/'): {_show(path)}")
        if segment in (".", ".."):
            raise InvalidArgument(f"{field} segment '{segment}' is not allowed "
                                  f"({_show(path)})")
        length = len(segment.encode("utf-8"))
        if length > MAX_FILENAME_BYTES:
            raise InvalidArgument(f"{field} segment {_show(segment)} is {length} bytes of "
                                  f"UTF-8; a segment may be at most {MAX_FILENAME_BYTES}")
    return path


def basename(path: str) -> str:
    """The last segment: the entry's filename."""
    return path.rpartition(SEPARATOR)[2]


def dirname(path: str) -> str:
    """The folders before the last segment ('' at the top)."""
    return path.rpartition(SEPARATOR)[0]


def join(folder: str, name: str) -> str:
    return f"{folder}{SEPARATOR}{name}" if folder else name


def numbered(path: str, number: int | None = None) -> str:
    """``path`` with " (number)" before its extension ("a/x.mp3" -> "a/x (2).mp3"; None:
    no number), its name's stem cut so that the segment and the whole fit their limits."""
    folder, name = dirname(path), basename(path)
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension.encode("utf-8")) > _MAX_EXTENSION_BYTES:
        stem, dot, extension = name, "", ""
    tail = (f" ({number})" if number is not None else "") + dot + extension
    tail_bytes = len(tail.encode("utf-8"))
    room = MAX_FILENAME_BYTES - tail_bytes
    if folder:
        room = min(room, MAX_PATH_BYTES - len(folder.encode("utf-8")) - 1 - tail_bytes)
    encoded = stem.encode("utf-8")
    if len(encoded) > room:
        stem = encoded[:max(room, 1)].decode("utf-8", errors="ignore").rstrip() or "_"
    return join(folder, stem + tail)


def _show(text: str) -> str:
    """``text`` quoted for a message, cut to a readable length."""
    return repr(text if len(text) <= 80 else text[:77] + "...")
