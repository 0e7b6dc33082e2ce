"""How the desktop commands show progress: rich bars on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def human_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def duration(ms: int) -> str:
    seconds = round(ms / 1000)
    return f"{seconds // 60}:{seconds % 60:02d}"


class Reporter:
    """Per-file lines and, on a terminal, a progress bar per transfer (``--quiet``: errors only)."""

    def __init__(self, *, quiet: bool = False, terminal: bool | None = None) -> None:
        self.quiet = quiet
        self.terminal = sys.stdout.isatty() if terminal is None else terminal
        self._progress = None

    @contextmanager
    def session(self) -> Iterator[Reporter]:
        """While open on a terminal (and not quiet), progress bars are shown."""
        if not (self.terminal and not self.quiet):
            yield self
            return
        from rich.progress import Progress
        self._progress = Progress(*self._columns(), transient=True)
        try:
            with self._progress:
                yield self
        finally:
            self._progress = None

    def _columns(self) -> tuple:
        """The columns of a bar: what it is, the bar, bytes, rate and time left."""
        from rich.progress import (BarColumn, DownloadColumn, TextColumn, TimeRemainingColumn,
                                   TransferSpeedColumn)
        return (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                TransferSpeedColumn(), TimeRemainingColumn())

    @contextmanager
    def transfer(self, description: str, total: int) -> Iterator[Callable[[int], None] | None]:
        """A progress callback (bytes done) for one transfer, or None without a bar."""
        if self._progress is None:
            yield None
            return
        task = self._progress.add_task(description, total=total)
        try:
            yield lambda done: self._progress.update(task, completed=done)
        finally:
            self._progress.remove_task(task)

    def line(self, text: str) -> None:
        if self.quiet:
            return
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            print(text, flush=True)

    @staticmethod
    def error(text: str) -> None:
        print(f"musicsync: {text}", file=sys.stderr, flush=True)
