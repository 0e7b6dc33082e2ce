"""DIR/.musicsync/trash/: where the sync puts the local files it deletes or replaces.

A file goes to trash/<YYYY-MM-DD>/<its relative path> (a number added if that
name is taken that day) instead of being unlinked; days older than 30 are
purged at the start of a sync. The date comes from the folder's name, not the
files' times (a rename keeps a file's mtime), and the clock is a parameter.
"""

from __future__ import annotations

import datetime
import os
import shutil
import time
from pathlib import Path
from typing import Callable

from .index import MARKER

KEEP_DAYS = 30


class Trash:
    """The trash of one folder."""

    def __init__(self, root: Path, *, clock: Callable[[], float] = time.time):
        self.root = Path(root)
        self.folder = self.root / MARKER / "trash"
        self.clock = clock

    def _today(self) -> datetime.date:
        return datetime.datetime.fromtimestamp(self.clock(), datetime.timezone.utc).date()

    def put(self, relative: str) -> Path:
        """Moves DIR/relative into today's trash; returns where it went."""
        source = self.root / relative
        day = self.folder / self._today().isoformat()
        target = day / relative
        stem, suffix = target.stem, target.suffix
        number = 1
        while target.exists() or target.is_symlink():
            number += 1
            target = target.with_name(f"{stem} ({number}){suffix}")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(source, target)  # same file system: DIR and its marker folder
        return target

    def purge(self, keep_days: int = KEEP_DAYS) -> int:
        """Removes the days older than `keep_days`; returns how many files went."""
        if not self.folder.is_dir():
            return 0
        oldest = self._today() - datetime.timedelta(days=keep_days)
        removed = 0
        for day in self.folder.iterdir():
            try:
                date = datetime.date.fromisoformat(day.name)
            except ValueError:
                continue  # not ours
            if date < oldest and day.is_dir() and not day.is_symlink():
                removed += sum(len(files) for _, _, files in os.walk(day))
                shutil.rmtree(day)
        return removed
