"""A consistent copy of the SQLite database, taken while the server runs.

``VACUUM INTO`` reads the database inside one read transaction, so the copy is
a snapshot of committed data even while services keep writing (in WAL mode a
reader never blocks writers, nor they it). The copy is a single compact file
without a WAL, ready to open or to restore by putting it back in place of
``musicsync.db`` while the server is stopped.

It is written to a temporary file next to the target (mode 0600: it holds
password hashes), checked, flushed to disk, and only then given the target's
name, so a crash or a full disk never leaves a half-written backup under it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..db.engine import BUSY_TIMEOUT_MS
from ..errors import FailedPrecondition, InvalidArgument, NotFound


@dataclass(frozen=True)
class BackupResult:
    """What was written."""

    path: Path
    size: int
    schema_version: int
    users: int


def backup_database(source: Path, target: Path, *, force: bool = False) -> BackupResult:
    """Copies the database at ``source`` to ``target``; ``force`` allows replacing a file."""
    if not source.is_file():
        raise NotFound(f"no database at {source}; check --data-dir or DATABASE_URL")
    if target.is_dir():
        raise InvalidArgument(f"{target} is a folder; name the backup file, e.g. "
                              f"{target / 'musicsync-backup.db'}")
    if not target.parent.is_dir():
        raise NotFound(f"folder {target.parent} does not exist")
    if target.exists():
        if not force:
            raise FailedPrecondition(f"{target} exists; add --force to replace it")
        if os.path.samefile(source, target):
            raise InvalidArgument("the backup must not replace the database itself")

    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)  # VACUUM INTO writes into an empty file; mkstemp made it 0600
    temporary = Path(name)
    try:
        _vacuum_into(source, temporary)
        schema_version, users = _check(temporary)
        _fsync(temporary)
        _publish(temporary, target, force)
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_folder(target.parent)
    return BackupResult(target, target.stat().st_size, schema_version, users)


def _vacuum_into(source: Path, destination: Path) -> None:
    # mode=rw: never create an empty database where the real one is missing.
    connection = sqlite3.connect(f"{source.resolve().as_uri()}?mode=rw", uri=True,
                                 isolation_level=None)
    try:
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        connection.execute("VACUUM INTO ?", (str(destination),))
    except sqlite3.Error as exc:
        raise FailedPrecondition(f"cannot copy {source}: {exc}") from exc
    finally:
        connection.close()


def _check(copy: Path) -> tuple[int, int]:
    """Schema version and user count of the copy, after SQLite's own consistency check."""
    connection = sqlite3.connect(f"{copy.resolve().as_uri()}?mode=ro", uri=True)
    try:
        verdict = connection.execute("PRAGMA quick_check").fetchone()[0]
        if verdict != "ok":
            raise FailedPrecondition(f"the copy failed SQLite's check ({verdict}); "
                                     "run `PRAGMA integrity_check` on the database")
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        users = connection.execute("SELECT count(*) FROM users").fetchone()[0]
        return version, users
    except sqlite3.Error as exc:
        raise FailedPrecondition(f"the copy cannot be read back: {exc}") from exc
    finally:
        connection.close()


def _publish(temporary: Path, target: Path, force: bool) -> None:
    if force:
        os.replace(temporary, target)
        return
    try:
        os.link(temporary, target)  # atomic, and fails rather than replace a file
    except FileExistsError:
        raise FailedPrecondition(
            f"{target} appeared meanwhile; add --force to replace it") from None
    except OSError:  # a file system without hard links
        if target.exists():
            raise FailedPrecondition(f"{target} exists; add --force to replace it") from None
        os.replace(temporary, target)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a folder
        _fsync(path)
