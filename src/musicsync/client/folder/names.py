"""Server paths and the names this computer's file system can hold.

A server path is any NFC Unicode, '/'-separated, each segment at most 255 bytes
of UTF-8. Windows cannot hold some of those (CON, names ending in a dot, a ':'
...), and a name can outgrow a file system's limit (NFD on macOS takes more
bytes). `local_path` maps such a path to a name that fits: a forbidden
character becomes its fullwidth lookalike (':' -> '：'), a reserved name gets
a '_' (CON.mp3 -> CON_.mp3), a trailing dot or space its lookalike, and an
over-long segment is cut with a short hash of the whole kept (so two long names
stay apart). The folder's index records every mapped name (`NameMap`), so the
way back is exact: a file genuinely named with a lookalike is not changed back.
A path that cannot be held at all raises Unstorable, for one file's report.
"""

from __future__ import annotations

import hashlib
import sys
import unicodedata
from dataclasses import dataclass
from typing import Literal, Mapping

System = Literal["posix", "windows", "macos"]

MAX_SEGMENT_BYTES = 255  # the server's limit on one path segment (UTF-8)
MAX_PATH_BYTES = 4096  # and on a whole path

_WINDOWS_FORBIDDEN = '<>:"\\|?*'
_LOOKALIKE = {c: chr(ord(c) + 0xFEE0) for c in _WINDOWS_FORBIDDEN}  # fullwidth forms
_TRAILING = {".": "\uff0e", " ": "\u3000"}  # fullwidth full stop, ideographic space
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                     *(f"LPT{i}" for i in range(1, 10))}


class Unstorable(ValueError):
    """A server path this folder cannot hold (the message says why)."""


@dataclass(frozen=True)
class NameRules:
    """What the local file system accepts: its family, and how it counts a name's length."""

    system: System = "posix"
    max_name: int = 255  # per segment, in `unit`s
    unit: Literal["utf8", "utf16"] = "utf8"

    @classmethod
    def for_this_system(cls) -> NameRules:
        if sys.platform == "win32":
            return cls("windows", 255, "utf16")
        if sys.platform == "darwin":
            return cls("macos", 255, "utf8")
        return cls("posix", 255, "utf8")

    def length(self, name: str) -> int:
        if self.system == "macos":  # stored decomposed
            name = unicodedata.normalize("NFD", name)
        if self.unit == "utf16":
            return len(name.encode("utf-16-le")) // 2
        return len(name.encode("utf-8"))


def server_path_problem(path: str) -> str | None:
    """Why the server would refuse `path` as a song's path (None: it would not)."""
    if not path:
        return "the path is empty"
    if path != unicodedata.normalize("NFC", path):
        return "the path is not NFC-normalised"
    if path.startswith("/"):
        return "the path is absolute"
    if len(path.encode("utf-8")) > MAX_PATH_BYTES:
        return f"the path is longer than {MAX_PATH_BYTES} bytes"
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            return "the path has an empty, '.' or '..' segment"
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in segment):
            return "the path has a control character"
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            return f"a folder or file name is longer than {MAX_SEGMENT_BYTES} bytes"
    return None


def local_path(server_path: str, rules: NameRules) -> str:
    """The relative '/'-separated name under which this folder holds `server_path`."""
    problem = server_path_problem(server_path)
    if problem:
        raise Unstorable(problem)
    return "/".join(_local_segment(segment, rules) for segment in server_path.split("/"))


def _local_segment(segment: str, rules: NameRules) -> str:
    if rules.system == "windows":
        segment = "".join(_LOOKALIKE.get(c, c) for c in segment)
        if segment[-1] in _TRAILING:  # Windows drops a trailing dot or space
            segment = segment[:-1] + _TRAILING[segment[-1]]
        stem, dot, rest = segment.partition(".")
        if stem.rstrip(" ").upper() in _WINDOWS_RESERVED:
            segment = f"{stem}_{dot}{rest}"
    if rules.length(segment) > rules.max_name:
        segment = _shortened(segment, rules)
    return segment


def _shortened(segment: str, rules: NameRules) -> str:
    """`segment` cut to fit, keeping its extension and a hash of the whole name."""
    stem, dot, extension = segment.rpartition(".")
    if not dot or not stem or len(extension) > 16:
        stem, extension = segment, ""
    tail = f"~{hashlib.sha256(segment.encode('utf-8')).hexdigest()[:8]}" + \
        (f".{extension}" if extension else "")
    while stem and rules.length(stem + tail) > rules.max_name:
        stem = stem[:-1]
    if not stem:
        raise Unstorable("a file name is too long for this folder's file system")
    return stem.rstrip(" .") + tail


class NameMap:
    """The folder's mapped names: local relative path <-> server path.

    Only names that differ are kept; every other name is the same on both sides.
    """

    def __init__(self, rules: NameRules, mapped: Mapping[str, str] | None = None):
        self.rules = rules
        self.to_server_names: dict[str, str] = dict(mapped or {})  # local -> server
        self._to_local = {server: local for local, server in self.to_server_names.items()}

    def to_local(self, server_path: str) -> str:
        """The local name of `server_path`, recording it when it differs. Unstorable."""
        if server_path in self._to_local:
            return self._to_local[server_path]
        local = local_path(server_path, self.rules)
        if local != server_path:
            self.to_server_names[local] = server_path
            self._to_local[server_path] = local
        return local

    def to_server(self, local: str) -> str:
        return self.to_server_names.get(local, local)

    def server_view(self, files: Mapping[str, str]) -> tuple[dict[str, str], list[tuple[str, str]]]:
        """A scan's {local name: sha256} as {server path: sha256}, and the [(local name,
        why)] the server would refuse as a path (reported, not synced)."""
        view: dict[str, str] = {}
        refused: list[tuple[str, str]] = []
        for local, sha in files.items():
            server = self.to_server(local)
            problem = server_path_problem(server)
            if problem:
                refused.append((local, problem))
            else:
                view[server] = sha
        return view, refused

    def forget(self, local: str) -> None:
        server = self.to_server_names.pop(local, None)
        if server is not None:
            self._to_local.pop(server, None)
