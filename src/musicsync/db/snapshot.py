"""A consistent copy of an SQLite database file, and SQLite's check of the copy.

``VACUUM INTO`` reads the database inside one read transaction, so the copy is a
snapshot of committed data even while services keep writing (in WAL mode a reader
never blocks writers, nor they it). ops/backup.py makes a safe backup file of it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..errors import FailedPrecondition
from .sqlite import BUSY_TIMEOUT_MS


def vacuum_into(source: Path, destination: Path) -> None:
    """Writes a consistent copy of the database file ``source`` into the empty file
    ``destination``."""
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


def check_copy(copy: Path) -> tuple[int, int]:
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
