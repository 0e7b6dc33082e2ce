"""Who may read the server's files: their owner only.

The database holds password hashes and refresh-token hashes; DATA_DIR also
holds the generated keys. ``musicsync`` runs its writing commands under umask
077 (see cli.py), so what it creates is private; these checks at start-up
cover what was created before that, or by a server embedded without the CLI:
our own files are set to 0600, and a DATA_DIR others may read is reported
(the folder is the operator's: a mount point or volume may be meant that way).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

# The database and the files SQLite keeps beside it in WAL mode.
SQLITE_SUFFIXES = ("", "-wal", "-shm")


def warn_if_open_to_others(folder: Path) -> None:
    """Logs a warning when users other than the owner may read or enter ``folder``."""
    mode = stat.S_IMODE(folder.stat().st_mode)
    if mode & 0o077:
        log.warning("DATA_DIR %s is open to other users of this machine (mode %04o); the "
                    "files in it are kept private, but `chmod 700 %s` closes the folder too",
                    folder, mode, folder)


def create_private(path: Path) -> None:
    """Creates ``path`` empty with mode 0600 unless it exists (SQLite then copies its mode
    to the -wal and -shm files it makes beside it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def make_private(*paths: Path) -> None:
    """Sets each existing file of ``paths`` that others may read to mode 0600, saying so."""
    for path in paths:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            log.warning("%s was readable by other users (mode %04o); setting it to 0600",
                        path, mode)
            path.chmod(0o600)


def database_files(database: Path) -> list[Path]:
    """The database file and its -wal and -shm companions."""
    return [database.with_name(database.name + suffix) for suffix in SQLITE_SUFFIXES]
