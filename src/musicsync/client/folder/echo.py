"""What sync passes did to their own folder, so `--watch` passes over the echo of it.

A pass's downloads, moves and deletes are file-system changes like any other: the
notifications they cause would start one more pass that finds nothing to do. Each
path a pass wrote, moved away or trashed is kept here with how it looked right
after (a file's inode, size and mtime; a folder's inode; or gone). A notification
about such a path is the pass's own echo while the path still looks exactly so;
once anyone changes it again it is a change like any other. Entries are
forgotten after KEEP_SECONDS (notifications arrive within a few seconds), and a
forgotten one costs at most that one extra pass.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

KEEP_SECONDS = 60.0

Look = tuple[int, ...] | None  # see _look


def _look(path: str) -> Look:
    try:
        st = os.lstat(path)
    except OSError:
        return None  # gone
    if stat.S_ISDIR(st.st_mode):
        return (st.st_ino,)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class OwnChanges:
    """The paths the passes changed lately, with how each looked right after."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._paths: dict[str, tuple[Look, float]] = {}

    def changed(self, *paths: Path) -> None:
        """Records ``paths`` as they are now (written, created, or gone)."""
        now = self._clock()
        for path in paths:
            self._paths[os.fspath(path)] = (_look(os.fspath(path)), now)
        if len(self._paths) > 1000:  # now and then, not on every call
            self._forget_old(now)

    def is_echo(self, path: str) -> bool:
        """Whether a notification about ``path`` is only the echo of a pass's change."""
        kept = self._paths.get(path)
        if kept is None:
            return False
        if self._clock() - kept[1] > KEEP_SECONDS:
            del self._paths[path]
            return False
        return _look(path) == kept[0]

    def _forget_old(self, now: float) -> None:
        self._paths = {path: kept for path, kept in self._paths.items()
                       if now - kept[1] <= KEEP_SECONDS}
