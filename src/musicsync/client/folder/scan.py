"""Walks a music folder: which songs it holds now, hashing only what changed.

Only audio files count: a known extension and first bytes that start one of the
server's formats (musicsync.library.audio.looks_like_audio). Hidden names (a leading
dot, so DIR/.musicsync too), temporary and partial files, symlinked folders and
symlinks leading out of DIR are passed over. A file whose size, mtime_ns and
inode match the index keeps its hash; the others are hashed in threads
(hashlib releases the GIL while it hashes a 1 MiB block). A file that changes
while it is hashed is left for the next scan (it is being written).
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ...library.audio import SNIFF_BYTES, looks_like_audio
from .index import FolderIndex, IndexedFile

AUDIO_EXTENSIONS = frozenset({".mp3", ".flac", ".wav", ".ogg", ".oga", ".opus", ".m4a",
                              ".m4b", ".aac", ".wma"})
# Browsers, editors, downloaders and our own downloads (".musicsync-part") leave these.
PARTIAL_SUFFIXES = (".part", ".partial", ".tmp", ".temp", ".crdownload", ".download",
                    ".!qb", ".musicsync-part", "~")
BLOCK = 1 << 20


@dataclass(frozen=True)
class LocalFile:
    sha256: str
    size: int
    disk: str  # the name as the file system spells it, relative to DIR


@dataclass
class ScanResult:
    files: dict[str, LocalFile] = field(default_factory=dict)  # NFC relative path -> file
    seen: int = 0  # files with an audio name (before their first bytes are checked)
    hashed: int = 0
    bytes_hashed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (relative path, why)

    def songs(self) -> dict[str, str]:
        """path -> sha256, as the planner takes it."""
        return {path: f.sha256 for path, f in self.files.items()}


def is_candidate(name: str) -> bool:
    """Whether a file name may be a song: not hidden, not partial, an audio extension."""
    lower = name.lower()
    if name.startswith(".") or name.startswith("~$") or lower.endswith(PARTIAL_SUFFIXES):
        return False
    return os.path.splitext(lower)[1] in AUDIO_EXTENSIONS


class HashProgress(Protocol):
    """Told how much a scan hashes, then of each file hashed (for a progress bar)."""

    def start(self, files: int, total_bytes: int) -> None: ...

    def hashed(self, size: int) -> None: ...


def scan(root: Path, index: FolderIndex, *, workers: int | None = None,
         progress: HashProgress | None = None) -> ScanResult:
    """The songs in `root` now; the index is brought up to date (one transaction)."""
    root = Path(root)
    result = ScanResult()
    known = index.files()
    stats: dict[str, tuple[str, os.stat_result]] = {}
    for disk, st in _walk(root, root.resolve(), ""):
        key = unicodedata.normalize("NFC", disk)
        if key in stats:
            result.skipped.append((disk, f"another file is named the same ({stats[key][0]})"))
            continue
        stats[key] = (disk, st)
    result.seen = len(stats)

    unchanged: list[IndexedFile] = []
    to_hash: list[tuple[str, str, os.stat_result]] = []
    for key, (disk, st) in stats.items():
        entry = known.get(key)
        if entry and (entry.disk, entry.size, entry.mtime_ns, entry.inode) == \
                (disk, st.st_size, st.st_mtime_ns, st.st_ino):
            unchanged.append(entry)
        else:
            to_hash.append((key, disk, st))

    fresh: list[IndexedFile] = []
    if progress is not None:
        progress.start(len(to_hash), sum(st.st_size for _, _, st in to_hash))
    with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 2))) as pool:
        for (key, disk, st), outcome in zip(
                to_hash, pool.map(lambda item: _hash(root / item[1], item[2]), to_hash)):
            if progress is not None:
                progress.hashed(st.st_size)
            if isinstance(outcome, str):
                if outcome:  # "" = not audio after all: silently not a song
                    result.skipped.append((key, outcome))
                continue
            sha, after = outcome
            result.hashed += 1
            result.bytes_hashed += after.st_size
            fresh.append(IndexedFile(key, disk, after.st_size, after.st_mtime_ns,
                                     after.st_ino, sha))

    for entry in unchanged + fresh:
        result.files[entry.path] = LocalFile(entry.sha256, entry.size, entry.disk)
    with index.transaction():
        index.drop_files(set(known) - set(result.files))
        index.put_files(fresh)
    return result


def _walk(root: Path, real_root: Path, prefix: str):
    """(relative disk name, stat) of each candidate file under root/prefix."""
    try:
        entries = list(os.scandir(root / prefix if prefix else root))
    except (PermissionError, FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        relative = f"{prefix}/{entry.name}" if prefix else entry.name
        try:
            if entry.is_dir(follow_symlinks=False):
                yield from _walk(root, real_root, relative)
                continue
            if not is_candidate(entry.name):
                continue
            if entry.is_symlink():
                # A link to a song inside DIR counts; one leading out (or to a folder) not.
                target = Path(entry.path).resolve()
                if not target.is_relative_to(real_root) or not target.is_file():
                    continue
            elif not entry.is_file(follow_symlinks=False):
                continue
            yield relative, entry.stat(follow_symlinks=True)
        except OSError:
            continue  # vanished or unreadable meanwhile: not a song this time


def _hash(path: Path, before: os.stat_result) -> tuple[str, os.stat_result] | str:
    """(sha256, stat) of a song; '' if it is not audio; a reason if it could not be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as file:
            head = file.read(BLOCK)
            if not looks_like_audio(head[:SNIFF_BYTES]):
                return ""
            while head:
                digest.update(head)
                head = file.read(BLOCK)
            after = os.fstat(file.fileno())
    except FileNotFoundError:
        return ""
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        return "changed while it was read (still being written?); next time"
    return digest.hexdigest(), after
