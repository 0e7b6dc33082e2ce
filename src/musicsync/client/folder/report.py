"""What a sync pass tells its user: progress while it runs, a summary at the end.

On a terminal, rich progress bars for hashing, uploading and downloading (bytes and
files, rate, ETA); otherwise one plain line per action. ``--quiet`` prints errors
only; ``--json`` prints one JSON summary object per pass and nothing else on stdout.
Errors always go to stderr.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from .. import output
from ..output import human_size

from .plan import Plan


@dataclass
class Summary:
    """What one pass did; ``failed`` and ``skipped`` hold (path, why)."""

    uploaded: int = 0
    downloaded: int = 0
    deleted_local: int = 0
    deleted_remote: int = 0
    moved_local: int = 0
    moved_remote: int = 0
    conflicts: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    bytes_sent: int = 0
    bytes_received: int = 0
    files_hashed: int = 0
    bytes_hashed: int = 0
    listing_bytes: int = 0  # the library's listing and changes, as received
    listed_in_full: bool = False
    seconds: float = 0.0
    dry_run: bool = False
    plan: dict | None = None  # --dry-run: what would be done
    cursor: int | None = None  # the library's change-feed position this pass reached
    changed_meanwhile: bool = False  # another device changed the library during the pass
    playlists: list = field(default_factory=list)  # playlists.PlaylistAction, in order

    def did_something(self) -> bool:
        return bool(self.uploaded or self.downloaded or self.deleted_local
                    or self.deleted_remote or self.moved_local or self.moved_remote
                    or self.conflicts or self.failed or self.playlists)

    def as_json(self) -> dict:
        data = {
            "uploaded": self.uploaded, "downloaded": self.downloaded,
            "deleted_local": self.deleted_local, "deleted_remote": self.deleted_remote,
            "deleted": self.deleted_local + self.deleted_remote,
            "moved_local": self.moved_local, "moved_remote": self.moved_remote,
            "moved": self.moved_local + self.moved_remote, "conflicts": self.conflicts,
            "skipped": len(self.skipped), "failed": len(self.failed),
            "bytes_sent": self.bytes_sent, "bytes_received": self.bytes_received,
            "files_hashed": self.files_hashed, "bytes_hashed": self.bytes_hashed,
            "listing_bytes": self.listing_bytes, "listed_in_full": self.listed_in_full,
            "seconds": round(self.seconds, 3),
            "failures": [{"path": p, "error": why} for p, why in self.failed],
            "skips": [{"path": p, "reason": why} for p, why in self.skipped],
            "playlists": [action.as_json() for action in self.playlists],
        }
        if self.dry_run:
            data["dry_run"] = True
            data["plan"] = self.plan
        return data

    def text(self) -> str:
        return (f"uploaded {self.uploaded}, downloaded {self.downloaded}, deleted "
                f"{self.deleted_local} here and {self.deleted_remote} on the server, moved "
                f"{self.moved_local + self.moved_remote}, conflicts {self.conflicts}, skipped "
                f"{len(self.skipped)}, failed {len(self.failed)}"
                f"{f', playlists {len(self.playlists)}' if self.playlists else ''}; sent "
                f"{human_size(self.bytes_sent)}, received {human_size(self.bytes_received)}, "
                f"hashed {self.files_hashed} files, in {self.seconds:.1f} s")


def plan_as_json(plan: Plan) -> dict:
    return {
        "upload": [{"path": u.path, "sha256": u.sha256, "replaces": u.replaces}
                   for u in plan.uploads],
        "download": [{"path": d.path, "sha256": d.sha256, "replaces": d.replaces_local}
                     for d in plan.downloads],
        "delete_local": list(plan.local_deletes), "delete_remote": list(plan.remote_deletes),
        "move_local": [{"from": m.old_path, "to": m.new_path} for m in plan.local_moves],
        "move_remote": [{"from": m.old_path, "to": m.new_path} for m in plan.remote_moves],
        "conflicts": [{"path": c.path, "remote_renamed_to": c.renamed_to}
                      for c in plan.conflicts],
    }


def plan_lines(plan: Plan) -> list[str]:
    """The plan as a person reads it, one action a line."""
    lines = [f"up        {u.path}{' (replaces the old version)' if u.replaces else ''}"
             for u in plan.uploads]
    lines += [f"down      {d.path}{' (replaces the old version)' if d.replaces_local else ''}"
              for d in plan.downloads]
    lines += [f"delete    {path} (here)" for path in plan.local_deletes]
    lines += [f"delete    {path} (on the server)" for path in plan.remote_deletes]
    lines += [f"move      {m.old_path} -> {m.new_path} (here)" for m in plan.local_moves]
    lines += [f"move      {m.old_path} -> {m.new_path} (on the server)"
              for m in plan.remote_moves]
    lines += [f"conflict  {c.path}: both sides changed it; the server's version becomes "
              f"{c.renamed_to}" for c in plan.conflicts]
    counts = plan.counts()
    lines.append(f"plan: {counts['upload']} up, {counts['download']} down, "
                 f"{counts['delete_local'] + counts['delete_remote']} delete, "
                 f"{counts['move_local'] + counts['move_remote']} move, "
                 f"{counts['conflict']} conflicts (dry run: nothing changed)")
    return lines


class Reporter(output.Reporter):
    """Prints a pass's progress and results as the options ask."""

    def __init__(self, *, quiet: bool = False, as_json: bool = False,
                 terminal: bool | None = None) -> None:
        super().__init__(quiet=quiet or as_json, terminal=terminal)
        self.as_json = as_json
        self._lock = threading.Lock()  # hashing reports from the scan's thread

    def _columns(self) -> tuple:
        """A phase's bar also counts files."""
        from rich.progress import (BarColumn, DownloadColumn, TextColumn, TimeRemainingColumn,
                                   TransferSpeedColumn)
        return (TextColumn("{task.description:<11}"), BarColumn(), DownloadColumn(),
                TextColumn("{task.fields[files]}"), TransferSpeedColumn(),
                TimeRemainingColumn())

    @contextmanager
    def phase(self, name: str, total_bytes: int, total_files: int) -> Iterator[Phase]:
        """Progress of one kind of work (hashing, uploading, downloading)."""
        task = None
        if self._progress is not None and total_files:
            task = self._progress.add_task(name, total=total_bytes or 1,
                                           files=f"0/{total_files} files")
        phase = Phase(self, task, total_files)
        try:
            yield phase
        finally:
            if task is not None:
                self._progress.remove_task(task)

    def summary(self, summary: Summary) -> None:
        if self.as_json:
            print(json.dumps(summary.as_json(), ensure_ascii=False), flush=True)
            return
        if summary.failed:
            self.error(f"{len(summary.failed)} failed:")
            for path, why in summary.failed:
                print(f"  {path}: {why}", file=sys.stderr, flush=True)
        if not self.quiet:
            for path, why in summary.skipped:
                self.line(f"skipped   {path}: {why}")
            self.line(summary.text())


class Phase:
    """One progress bar's share: per-file callbacks add up to the phase's bytes."""

    def __init__(self, reporter: Reporter, task, total_files: int) -> None:
        self._reporter = reporter
        self._task = task
        self._files_total = total_files
        self._files = 0
        self._done = 0

    def file(self) -> Callable[[int], None] | None:
        """A progress callback for one file (bytes of it done so far), or None."""
        if self._task is None:
            return None
        seen = 0

        def progress(done: int) -> None:
            nonlocal seen
            self.add(done - seen)
            seen = done
        return progress

    def add(self, amount: int) -> None:
        if self._task is None:
            return
        with self._reporter._lock:
            self._done += amount
            self._reporter._progress.update(self._task, completed=self._done)

    def file_done(self) -> None:
        if self._task is None:
            return
        with self._reporter._lock:
            self._files += 1
            self._reporter._progress.update(
                self._task, files=f"{self._files}/{self._files_total} files")


class HashingBar:
    """The hashing bar, fed by scan.scan (a scan.HashProgress); ``close`` removes it."""

    def __init__(self, reporter: Reporter) -> None:
        self._reporter = reporter
        self._task = None
        self._phase: Phase | None = None

    def start(self, files: int, total_bytes: int) -> None:
        progress = self._reporter._progress
        if progress is not None and files:
            with self._reporter._lock:
                self._task = progress.add_task("hashing", total=total_bytes or 1,
                                               files=f"0/{files} files")
            self._phase = Phase(self._reporter, self._task, files)

    def hashed(self, size: int) -> None:
        if self._phase is not None:
            self._phase.add(size)
            self._phase.file_done()

    def close(self) -> None:
        if self._task is not None and self._reporter._progress is not None:
            self._reporter._progress.remove_task(self._task)
            self._task = None
