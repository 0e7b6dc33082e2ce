"""Which folders this computer syncs, and the refusal to sync one that has gone.

config_dir()/folders.json remembers each synced folder (absolute path -> device
id); its changes are made under a lock (folders.lock), as syncs of different
folders may run at once. A remembered folder whose DIR/.musicsync/ marker is missing is refused: an
unmounted or emptied disk must not read as "the user deleted every song" (nor
fill the disk underneath with downloads). A new folder gets the marker and its
index; a folder with a marker but not remembered (copied, or a new config) is
adopted as it is.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..dirs import config_dir
from ..filelock import exclusive
from .index import MARKER, FolderIndex, index_path

FOLDERS_FILE = "folders.json"
FOLDERS_LOCK = "folders.lock"


class FolderRefused(Exception):
    """A folder that must not be synced now; the message says why and what to do."""


@dataclass(frozen=True)
class SyncFolder:
    root: Path  # absolute
    device_id: str


def folders_file() -> Path:
    return config_dir() / FOLDERS_FILE


def remembered() -> dict[str, dict]:
    """absolute path -> {"device_id": ...} of the folders synced from this computer."""
    try:
        data = json.loads(folders_file().read_text("utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise FolderRefused(f"{folders_file()} cannot be read ({exc}); fix or remove it") \
            from exc
    return dict(data.get("folders", {}))


def open_folder(directory: str | os.PathLike) -> tuple[SyncFolder, FolderIndex]:
    """Checks `directory` may be synced, marks it if new, remembers it; opens its index.

    Raises FolderRefused (the caller exits 2 with the message).
    """
    root = Path(os.path.abspath(os.path.expanduser(directory)))
    if not root.exists():
        raise FolderRefused(f"{root} does not exist")
    if not root.is_dir():
        raise FolderRefused(f"{root} is not a folder")
    folders = remembered()
    marker = root / MARKER
    if str(root) in folders and not index_path(root).is_file():
        raise FolderRefused(
            f"{root} was synced before but its {MARKER} folder is gone: is the disk "
            f"mounted, or was the folder emptied or replaced? Nothing was changed. To sync "
            f"it from scratch (nothing is deleted on either side, missing songs are copied), "
            f"run `musicsync sync --forget {root}` first")
    if marker.exists() and not marker.is_dir():
        raise FolderRefused(f"{marker} is in the way: it should be musicsync's folder")
    try:
        index = FolderIndex.open(root)
    except (OSError, sqlite3.Error) as exc:  # e.g. a read-only file system
        reason = getattr(exc, "strerror", None) or str(exc)
        raise FolderRefused(f"cannot write {marker}: {reason}; the folder must be "
                            "writable to be synced") from exc
    device_id = index.state().device_id
    if folders.get(str(root), {}).get("device_id") != device_id:
        with _registry_locked():  # read again: another sync may have written it meanwhile
            folders = remembered()
            folders[str(root)] = {"device_id": device_id}
            _write(folders)
    return SyncFolder(root, device_id), index


def forget(directory: str | os.PathLike) -> bool:
    """Forgets a folder (its marker, if any, is left); whether it was remembered."""
    root = str(Path(os.path.abspath(os.path.expanduser(directory))))
    with _registry_locked():
        folders = remembered()
        if folders.pop(root, None) is None:
            return False
        _write(folders)
    return True


def _registry_locked():
    """Held while folders.json is read, changed and written: two syncs of two folders
    starting together must not each write the file without the other's folder."""
    return exclusive(config_dir() / FOLDERS_LOCK)


def _write(folders: dict[str, dict]) -> None:
    """Replaces folders.json atomically (a temporary file, fsync, rename), mode 0600."""
    target = folders_file()
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".folders-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:  # mkstemp makes it 0600
            json.dump({"folders": folders}, file, indent=2, sort_keys=True)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        os.unlink(temporary)
        raise
