"""What both sides hold while a plan is applied, and the base kept settled step by step.

After every finished action the caller says what changed on which side; the
ledger settles the base at the paths touched (see plan.settled_base: where both
sides now hold the same song, the base is that song; where neither holds
anything, nothing; where they still differ, it stays) and writes it to the
index at once, so a run interrupted anywhere resumes from what really happened.
"""

from __future__ import annotations

from typing import Mapping

from .index import BaseEntry, FolderIndex
from .plan import settled_base


class Ledger:
    """Local, remote and base states (server path -> sha256) during one run."""

    def __init__(self, index: FolderIndex, local: Mapping[str, str],
                 remote: Mapping[str, str], sizes: Mapping[str, int]):
        self.index = index
        self.local = dict(local)
        self.remote = dict(remote)
        self.sizes = dict(sizes)  # sha256 -> bytes
        self.base = {path: entry.sha256 for path, entry in index.base().items()}
        self._base_at = {sha: path for path, sha in self.base.items()}

    def local_changed(self, path: str, sha256: str | None, size: int | None = None) -> None:
        """The folder now holds `sha256` at `path` (None: nothing)."""
        self._change(self.local, path, sha256, size)

    def remote_changed(self, path: str, sha256: str | None, size: int | None = None) -> None:
        """The server now holds `sha256` at `path` (None: nothing)."""
        self._change(self.remote, path, sha256, size)

    def _change(self, side: dict[str, str], path: str, sha256: str | None,
                size: int | None) -> None:
        if sha256 is None:
            side.pop(path, None)
        else:
            side[path] = sha256
            if size is not None:
                self.sizes[sha256] = size
        self._settle(path)

    def _settle(self, path: str) -> None:
        mine, theirs = self.local.get(path), self.remote.get(path)
        with self.index.transaction():
            if mine is not None and mine == theirs:
                old_path = self._base_at.get(mine)
                if old_path is not None and old_path != path:  # settled at its new place
                    self._drop(old_path)
                self._drop(path)
                self.base[path] = mine
                self._base_at[mine] = path
                self.index.set_base(path, mine, self.sizes.get(mine, 0))
            elif mine is None and theirs is None:
                self._drop(path)

    def _drop(self, path: str) -> None:
        sha = self.base.pop(path, None)
        if sha is not None:
            if self._base_at.get(sha) == path:
                del self._base_at[sha]
            self.index.drop_base(path)

    def settle_all(self) -> None:
        """Settles every path (at the end of a run: songs both sides already held alike
        at the same path were touched by no action)."""
        self.base = settled_base(self.base, self.local, self.remote)
        self._base_at = {sha: path for path, sha in self.base.items()}
        self.index.replace_base(self.base_entries())

    def base_entries(self) -> dict[str, BaseEntry]:
        return {path: BaseEntry(sha, self.sizes.get(sha, 0)) for path, sha in self.base.items()}
