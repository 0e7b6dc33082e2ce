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
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..db.snapshot import check_copy, vacuum_into
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
        vacuum_into(source, temporary)
        schema_version, users = check_copy(temporary)
        _fsync(temporary)
        _publish(temporary, target, force)
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_folder(target.parent)
    return BackupResult(target, target.stat().st_size, schema_version, users)


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
