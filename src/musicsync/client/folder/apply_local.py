"""The folder's half of a plan: deletes (to the trash), moves, and placing downloads.

Every method takes server paths (names.NameMap finds the local name), changes
one file, then updates the index (so the next scan does not hash it again) and
the ledger (so the base is right even if the run stops after this step).
Nothing is ever written over a file the plan did not expect there: a name
taken by other content makes the newcomer take a " (conflict)" name, and a
file changed since the scan is left alone (LocalChanged).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from .echo import OwnChanges
from .index import FolderIndex, IndexedFile
from .ledger import Ledger
from .names import NameMap
from .plan import LocalMove, conflict_name
from .trash import Trash

PART_SUFFIX = ".musicsync-part"


class LocalChanged(Exception):
    """The file changed since the scan; it is left as it is (the next sync sees it)."""


class LocalApplier:
    """Applies local actions to one folder."""

    def __init__(self, root: Path, index: FolderIndex, names: NameMap, trash: Trash,
                 ledger: Ledger, own_changes: OwnChanges | None = None):
        self.root = Path(root)
        self.index = index
        self.names = names
        self.trash = trash
        self.ledger = ledger
        self.files = index.files()  # local key -> what the scan saw
        self.own_changes = own_changes  # told of each path changed (sync --watch)

    # -- deletes --------------------------------------------------------------------------

    def delete(self, path: str) -> Path:
        """Moves the song at server path `path` to the trash; returns where it went."""
        local = self.names.to_local(path)
        entry = self._expect_unchanged(local)
        went = self.trash.put(entry.disk)
        self._changed(self.root / entry.disk)
        self._forget(local)
        self.ledger.local_changed(path, None)
        self._prune(entry.disk)
        return went

    # -- moves ----------------------------------------------------------------------------

    def move_all(self, moves: list[LocalMove]) -> list[tuple[LocalMove, Exception]]:
        """Applies `moves` in an order that frees each target first; a cycle (a swap)
        goes through a visible temporary name. Returns the moves that failed."""
        pending = list(moves)
        failed: list[tuple[LocalMove, Exception]] = []
        while pending:
            sources = {self.names.to_local(m.old_path) for m in pending}
            ready = [m for m in pending if self.names.to_local(m.new_path) not in sources]
            if not ready:  # every target is another move's source: break the cycle
                first = pending[0]
                hop = self._free_server_path(first.old_path, word="moving")
                try:
                    self.move(first.old_path, hop)
                except (OSError, LocalChanged) as exc:
                    failed.append((first, exc))
                    pending.pop(0)
                    continue
                pending[0] = LocalMove(first.sha256, hop, first.new_path)
                continue
            for m in ready:
                pending.remove(m)
                try:
                    self.move(m.old_path, m.new_path)
                except (OSError, LocalChanged) as exc:
                    failed.append((m, exc))
        return failed

    def move(self, old: str, new: str) -> str:
        """Renames the song at server path `old` to `new` (or a conflict name beside it
        if `new` is taken by other content). Returns the server path it got."""
        old_local = self.names.to_local(old)
        entry = self._expect_unchanged(old_local)
        new, new_local = self._free_target(new, entry.sha256)
        target = self.root / new_local
        target.parent.mkdir(parents=True, exist_ok=True)
        _rename_no_replace(self.root / entry.disk, target)
        self._changed(self.root / entry.disk, target, *self._folders_of(target))
        self._forget(old_local)
        self._record(new_local, entry.sha256)
        self.ledger.local_changed(old, None)
        self.ledger.local_changed(new, entry.sha256, entry.size)
        self._prune(entry.disk)
        return new

    # -- downloads ------------------------------------------------------------------------

    def temp_path(self, path: str, sha256: str) -> Path:
        """Where the download of `sha256` for server path `path` is written (a hidden
        partial name in the target's folder, the same on every run: resume from its size)."""
        local = self.names.to_local(path)
        folder = (self.root / local).parent
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f".{sha256[:32]}{PART_SUFFIX}"

    def place(self, temp: Path, path: str, sha256: str, *, replaces_local: bool = False) -> str:
        """Puts a downloaded, verified file at server path `path`; returns the server path
        it got (a conflict name when `path` holds other content the plan did not expect
        to replace). The file the plan replaces goes to the trash."""
        local = self.names.to_local(path)
        self.index.set_names(self.names.to_server_names)
        entry = self.files.get(local)
        if entry is not None and entry.sha256 == sha256 and self._unchanged(entry):
            temp.unlink()  # already here
            self.ledger.local_changed(path, sha256, entry.size)
            return path
        if replaces_local and entry is not None and self._unchanged(entry):
            self.trash.put(entry.disk)
            self._changed(self.root / entry.disk)
            self._forget(local)
        path, local = self._free_target(path, sha256)
        target = self.root / local
        target.parent.mkdir(parents=True, exist_ok=True)
        _rename_no_replace(temp, target)
        self._changed(target, *self._folders_of(target))
        size = self._record(local, sha256)
        self.ledger.local_changed(path, sha256, size)
        return path

    # -- helpers --------------------------------------------------------------------------

    def _free_target(self, path: str, sha256: str) -> tuple[str, str]:
        """(server path, local name) for content `sha256` wanted at `path`: `path` itself
        if its local name is free, else the first free conflict name."""
        local = self.names.to_local(path)
        if not _exists(self.root / local):
            return path, local
        path = self._free_server_path(path)
        return path, self.names.to_local(path)

    def _free_server_path(self, path: str, word: str = "conflict") -> str:
        taken = set(self.ledger.local) | set(self.ledger.remote) | set(self.ledger.base)
        while True:
            candidate = conflict_name(path, taken, word)
            if not _exists(self.root / self.names.to_local(candidate)):
                return candidate
            taken.add(candidate)

    def _unchanged(self, entry: IndexedFile) -> bool:
        try:
            st = os.stat(self.root / entry.disk)
        except OSError:
            return False
        return (st.st_size, st.st_mtime_ns, st.st_ino) == (entry.size, entry.mtime_ns,
                                                           entry.inode)

    def _expect_unchanged(self, local: str) -> IndexedFile:
        entry = self.files.get(local)
        if entry is None or not self._unchanged(entry):
            raise LocalChanged(f"{local} changed since the scan; left as it is")
        return entry

    def _record(self, local: str, sha256: str) -> int:
        st = os.stat(self.root / local)
        entry = IndexedFile(local, local, st.st_size, st.st_mtime_ns, st.st_ino, sha256)
        self.index.put_files([entry])
        self.files[local] = entry
        return st.st_size

    def _forget(self, local: str) -> None:
        self.index.drop_files([local])
        self.files.pop(local, None)

    def _prune(self, disk: str) -> None:
        """Removes the folders `disk` leaves empty, up to (not including) the root."""
        folder = (self.root / disk).parent
        while folder != self.root and self.root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return  # not empty (or not ours to remove)
            self._changed(folder)
            folder = folder.parent

    def _folders_of(self, target: Path) -> list[Path]:
        """The folders holding ``target`` below the root (a pass may have made them)."""
        return [folder for folder in target.parents if self.root in folder.parents]

    def _changed(self, *paths: Path) -> None:
        if self.own_changes is not None:
            self.own_changes.changed(*paths)


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _rename_no_replace(source: Path, target: Path) -> None:
    """Renames `source` to `target`, failing (FileExistsError) rather than replacing a file.

    A hard link fails atomically if the name is taken; file systems without hard
    links (FAT, exFAT, some network shares) get a check then a rename.
    """
    try:
        os.link(source, target, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK,
                             errno.ENOTSUP, errno.EACCES):
            raise
        if _exists(target):
            raise FileExistsError(errno.EEXIST, "file exists", str(target)) from exc
        os.rename(source, target)
        return
    os.unlink(source)
