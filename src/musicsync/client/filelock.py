"""An advisory lock between the musicsync processes of one user (flock on a lock file)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Holds ``lock_file`` (made if need be, mode 0600) exclusively for the block; other
    processes, and other opens in this one, wait. Windows has no flock: no lock there
    (one process at a time is advised)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    lock_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock
