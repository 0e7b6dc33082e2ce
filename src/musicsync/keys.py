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


# -- How strong a key the operator sets must be ------------------------------------

# The signing key (SECRET_KEY) is attacked offline: one captured token lets anyone
# test guesses at full speed, so it must be as long as an HS256 key (32 bytes).
SIGNING_KEY_MIN_BYTES = 32
# The registration key (SECURITY_KEY) is typed by people into phones and can only
# be guessed online, one Register call at a time.
REGISTRATION_KEY_MIN_CHARS = 12
# Fewer distinct characters than this is a pattern, not a random key.
SIGNING_KEY_MIN_DISTINCT = 10
REGISTRATION_KEY_MIN_DISTINCT = 5
GENERATE_HINT = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'
# Words of the example values (k8s/secret.yaml, .env.example, docs) and of common
# stand-ins, compared with letters and digits only, case-insensitively.
_PLACEHOLDER_WORDS = ("changeme", "placeholder", "replaceme", "example", "yoursecret",
                      "yourkey", "secretkey", "securitykey", "notsecret", "insecure")
_WEAK_VALUES = frozenset({"secret", "password", "musicsync", "default", "admin", "test",
                          "letmein", "qwerty"})


def weakness(key: str, *, min_length: int, min_distinct: int, in_bytes: bool = False) -> str | None:
    """Why ``key`` is too weak to use, or None when it is acceptable."""
    length = len(key.encode("utf-8")) if in_bytes else len(key)
    if length < min_length:
        unit = "bytes" if in_bytes else "characters"
        unit = unit if length != 1 else unit[:-1]
        return f"is {length} {unit} long; it must be at least {min_length}"
    letters = "".join(char for char in key.lower() if char.isalnum())
    if letters in _WEAK_VALUES or any(word in letters for word in _PLACEHOLDER_WORDS):
        return "is a placeholder or a well-known value"
    if len(set(key)) < min_distinct:
        return f"has fewer than {min_distinct} different characters"
    if _is_repetition(key) or _is_run(key):
        return "is a repeated or consecutive pattern"
    return None


def signing_key_weakness(key: str) -> str | None:
    return weakness(key, min_length=SIGNING_KEY_MIN_BYTES,
                    min_distinct=SIGNING_KEY_MIN_DISTINCT, in_bytes=True)


def registration_key_weakness(key: str) -> str | None:
    return weakness(key, min_length=REGISTRATION_KEY_MIN_CHARS,
                    min_distinct=REGISTRATION_KEY_MIN_DISTINCT)


def _is_repetition(key: str) -> bool:
    """'abcabcabcabc': the key is a shorter string repeated (the last copy may be cut)."""
    return any(key == (key[:period] * (len(key) // period + 1))[:len(key)]
               for period in range(1, len(key) // 2 + 1))


def _is_run(key: str) -> bool:
    """'abcdefgh...', '1234567890...', '98765...': mostly one step from the character before
    (a random key has about one such step in 64)."""
    steps = [ord(b) - ord(a) for a, b in zip(key, key[1:])]
    return any(steps.count(step) >= 0.75 * len(steps) for step in (1, -1))
