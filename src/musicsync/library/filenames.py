"""Filenames as listed in a library: a safe base name, whatever the client sent."""

from __future__ import annotations

import unicodedata

from ..limits import MAX_FILENAME_BYTES


def sanitize_filename(raw: str) -> str:
    """The base name of ``raw`` without separators or control characters, <= 255 UTF-8 bytes.

    Returns '' when nothing usable is left (the caller picks a default).
    """
    name = unicodedata.normalize("NFC", raw).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    name = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in name
                   if unicodedata.category(c) not in ("Cf", "Cs", "Co", "Cn"))
    name = " ".join(name.split())  # collapse runs of blanks, strip both ends
    name = name.rstrip(".").lstrip()
    if name in ("", ".", ".."):
        return ""
    return _truncate(name)


def default_filename(artist: str, title: str, sha256: str, extension: str) -> str:
    """A name for a song the client sent without one: 'Artist - Title.ext' or the hash."""
    if title:
        stem = f"{artist} - {title}" if artist else title
        stem = sanitize_filename(stem) or sha256[:16]
    else:
        stem = sha256[:16]
    return _truncate(stem + extension)


def _truncate(name: str) -> str:
    """Cuts the stem so the whole name fits MAX_FILENAME_BYTES, keeping the extension."""
    if len(name.encode("utf-8")) <= MAX_FILENAME_BYTES:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension.encode("utf-8")) > 16:
        stem, extension = name, ""
    suffix = f".{extension}" if extension else ""
    budget = MAX_FILENAME_BYTES - len(suffix.encode("utf-8"))
    encoded = stem.encode("utf-8")[:budget]
    return encoded.decode("utf-8", errors="ignore").rstrip() + suffix
