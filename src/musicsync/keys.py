"""Secrets the server generates for itself when the operator sets none.

A generated key is written once to the data directory with mode 0600 and read
back on every later start, so tokens and the registration key survive
restarts. Several services sharing one data directory may start at the same
moment: the key is written under a temporary name and hard-linked into place,
which fails for all but the first, and every process then reads the winner.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
from pathlib import Path

log = logging.getLogger(__name__)


def load_or_create_key(path: Path, *, nbytes: int) -> tuple[str, bool]:
    """The key stored at ``path``, creating a random one first if there is none.

    Returns the key and whether this call created it.
    """
    created = False
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(nbytes) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.link(temp, path)
            created = True
        except FileExistsError:
            pass  # another process created it first; use theirs
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("%s was readable by others (mode %o); setting it to 0600", path, mode)
        path.chmod(0o600)
    key = path.read_text().strip()
    if not key:
        raise RuntimeError(f"{path} is empty; delete it to generate a new key")
    return key, created
