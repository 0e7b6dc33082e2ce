"""The folder's own index: DIR/.musicsync/index.db (SQLite, this computer only).

- files: what the last scan found, per local relative path (NFC): the name as it
  is on disk, size, mtime_ns and inode, and the SHA-256 they were hashed to, so
  an unchanged file is never hashed again;
- base: per server path, the song both sides held after the last sync;
- names: local names that differ from their server paths (names.NameMap);
- remote: the server's library (path, sha256, size) as it stood at the cursor,
  so the next run needs only the changes after it (folder.remote);
- state: server address, user name, this folder's device id (made once),
  the change-feed cursor, the last sync's time;
- playlists: per file in DIR/Playlists, the playlist it holds (id, version), the
  entries last written to it (hash and library path each) and the written file's
  SHA-256, size and mtime_ns, so an edit of the file is told from the sync's own
  writing (folder.playlists).
Each change is one transaction; WAL so a reader never waits for the writer.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

MARKER = ".musicsync"
INDEX_NAME = "index.db"

# Made when the folder first gets a playlist file: a folder without playlists keeps the
# index it had (pages of its own, on a disk that may be nearly full).
_PLAYLISTS = """
CREATE TABLE IF NOT EXISTS playlists (
    file TEXT PRIMARY KEY, playlist_id INTEGER NOT NULL UNIQUE, version INTEGER NOT NULL,
    entries TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL)
"""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, disk TEXT NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS base (
    path TEXT PRIMARY KEY, sha256 TEXT NOT NULL, size INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS remote (
    path TEXT PRIMARY KEY, sha256 TEXT NOT NULL, size INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS names (local TEXT PRIMARY KEY, server TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class IndexedFile:
    path: str  # relative, '/'-separated, NFC: the key
    disk: str  # the same name as the file system spells it (NFD on macOS)
    size: int
    mtime_ns: int
    inode: int
    sha256: str


@dataclass(frozen=True)
class BaseEntry:
    sha256: str
    size: int


@dataclass(frozen=True)
class PlaylistFile:
    """A playlist file as the sync last wrote it (entries: (sha256, library path))."""

    file: str  # its name in DIR/Playlists
    playlist_id: int
    version: int
    entries: tuple[tuple[str, str], ...]
    sha256: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class FolderState:
    device_id: str
    server: str | None = None
    username: str | None = None
    cursor: str | None = None
    last_sync: float | None = None


def index_path(root: Path) -> Path:
    return root / MARKER / INDEX_NAME


class FolderIndex:
    """One folder's index; open with `FolderIndex.open(root)`, close when done."""

    def __init__(self, connection: sqlite3.Connection, path: Path):
        self._db = connection
        self.path = path

    @classmethod
    def open(cls, root: Path) -> FolderIndex:
        """Opens DIR/.musicsync/index.db, creating it (mode 0600) and the marker if needed."""
        path = index_path(root)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # private before SQLite writes a byte
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
        db.executescript(_SCHEMA)
        index = cls(db, path)
        with index.transaction():
            if index._get("device_id") is None:
                index._set("device_id", secrets.token_hex(16))
        return index

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> FolderIndex:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All changes inside happen together or not at all (nesting joins the outer one)."""
        if self._db.in_transaction:
            yield
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- files ----------------------------------------------------------------------------

    def files(self) -> dict[str, IndexedFile]:
        rows = self._db.execute("SELECT path, disk, size, mtime_ns, inode, sha256 FROM files")
        return {row[0]: IndexedFile(*row) for row in rows}

    def put_files(self, files: Iterable[IndexedFile]) -> None:
        with self.transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?)",
                [(f.path, f.disk, f.size, f.mtime_ns, f.inode, f.sha256) for f in files])

    def drop_files(self, paths: Iterable[str]) -> None:
        with self.transaction():
            self._db.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in paths])

    # -- base -----------------------------------------------------------------------------

    def base(self) -> dict[str, BaseEntry]:
        rows = self._db.execute("SELECT path, sha256, size FROM base")
        return {path: BaseEntry(sha, size) for path, sha, size in rows}

    def set_base(self, path: str, sha256: str, size: int) -> None:
        with self.transaction():
            self._db.execute("INSERT OR REPLACE INTO base VALUES (?, ?, ?)", (path, sha256, size))

    def drop_base(self, path: str) -> None:
        with self.transaction():
            self._db.execute("DELETE FROM base WHERE path = ?", (path,))

    def replace_base(self, base: dict[str, BaseEntry]) -> None:
        with self.transaction():
            self._db.execute("DELETE FROM base")
            self._db.executemany("INSERT INTO base VALUES (?, ?, ?)",
                                 [(p, e.sha256, e.size) for p, e in base.items()])

    # -- the server's library at the cursor ----------------------------------------------

    def remote(self) -> dict[str, BaseEntry]:
        rows = self._db.execute("SELECT path, sha256, size FROM remote")
        return {path: BaseEntry(sha, size) for path, sha, size in rows}

    def replace_remote(self, remote: dict[str, BaseEntry], cursor: int) -> None:
        """Keeps the server's library as it stood at `cursor`, with the cursor, together."""
        with self.transaction():
            self._db.execute("DELETE FROM remote")
            self._db.executemany("INSERT INTO remote VALUES (?, ?, ?)",
                                 [(p, e.sha256, e.size) for p, e in remote.items()])
            self._set("cursor", str(cursor))

    def forget_sync(self) -> None:
        """Forgets the last sync (base, server snapshot, cursor; not the scan's hashes): the
        next run starts afresh, deleting nothing on either side."""
        with self.transaction():
            for table in ("base", "remote"):
                self._db.execute(f"DELETE FROM {table}")
            if self._has_playlists():
                self._db.execute("DELETE FROM playlists")
            self._db.execute("DELETE FROM state WHERE key IN "
                             "('cursor', 'last_sync', 'server', 'username')")

    # -- playlist files -------------------------------------------------------------------

    def _has_playlists(self) -> bool:
        return self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                                "AND name = 'playlists'").fetchone() is not None

    def playlists(self) -> dict[str, PlaylistFile]:
        if not self._has_playlists():
            return {}
        rows = self._db.execute("SELECT file, playlist_id, version, entries, sha256, size, "
                                "mtime_ns FROM playlists")
        return {row[0]: PlaylistFile(row[0], row[1], row[2],
                                     tuple(tuple(e) for e in json.loads(row[3])), *row[4:])
                for row in rows}

    def put_playlist(self, record: PlaylistFile) -> None:
        """Remembers ``record`` (replacing what was kept for its file or its playlist)."""
        with self.transaction():
            self._db.execute(_PLAYLISTS)
            self._db.execute("DELETE FROM playlists WHERE file = ? OR playlist_id = ?",
                             (record.file, record.playlist_id))
            self._db.execute("INSERT INTO playlists VALUES (?, ?, ?, ?, ?, ?, ?)", (
                record.file, record.playlist_id, record.version,
                json.dumps([list(e) for e in record.entries], ensure_ascii=False),
                record.sha256, record.size, record.mtime_ns))

    def drop_playlist(self, file: str) -> None:
        if not self._has_playlists():
            return
        with self.transaction():
            self._db.execute("DELETE FROM playlists WHERE file = ?", (file,))

    # -- mapped names ---------------------------------------------------------------------

    def names(self) -> dict[str, str]:
        """local name -> server path, for the names that differ."""
        return dict(self._db.execute("SELECT local, server FROM names"))

    def set_names(self, mapped: dict[str, str]) -> None:
        with self.transaction():
            self._db.execute("DELETE FROM names")
            self._db.executemany("INSERT INTO names VALUES (?, ?)", list(mapped.items()))

    # -- folder state ---------------------------------------------------------------------

    def state(self) -> FolderState:
        values = dict(self._db.execute("SELECT key, value FROM state"))
        last = values.get("last_sync")
        return FolderState(device_id=values["device_id"], server=values.get("server"),
                           username=values.get("username"), cursor=values.get("cursor"),
                           last_sync=float(last) if last is not None else None)

    def update_state(self, *, server: str | None = None, username: str | None = None,
                     cursor: str | None = None, last_sync: float | None = None) -> None:
        """Sets the given fields (None: unchanged) in one transaction."""
        with self.transaction():
            for key, value in (("server", server), ("username", username),
                               ("cursor", cursor), ("last_sync", last_sync)):
                if value is not None:
                    self._set(key, str(value))

    def _get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, value))
