"""`musicsync sync DIR --watch`: a first pass, then a pass whenever either side changes.

Local changes come from file-system notifications (watchfiles) on DIR, hidden
and partial files (so DIR/.musicsync and downloads in progress) ignored, and
taken once the folder has been quiet for half a second (a file being copied in
is not read half-written). The notices a pass's own downloads, moves and
deletes cause are passed over (echo.OwnChanges): they would start a pass with
nothing to do. Server changes come from Watch after the folder's cursor, through
livefeed.LiveFeed (a dropped stream, e.g. the server restarting, is opened again
from its last cursor with a growing pause); once the server is back, a pass
takes the local changes that waited for it.

Passes never overlap: a change during a pass asks for one more pass after it.
Events this folder's own passes caused come back through Watch; those at or
before the cursor a pass reached start nothing. SIGINT or SIGTERM cancels a
pass in progress (every finished step is in the ledger; partial downloads are
hidden and resumed next time) and ends with exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import deque
from pathlib import Path

import grpc

from ...proto import sync_pb2
from ..errors import ClientError, NotSignedIn, Refused
from ..livefeed import FIRST_PAUSE, MAX_PAUSE, LiveFeed, drop_reason
from ..models import ChangeEvent
from .echo import OwnChanges
from .guard import FolderRefused
from .plan import MassDelete
from .report import Reporter
from .scan import PARTIAL_SUFFIXES
from .session import Account, PassOptions, sync_pass

QUIET_MS = 500  # a local change is taken once the folder was quiet this long
MAX_GATHER_MS = 5000  # ... or after this long, if it never is
POLL_SECONDS = 10  # without notifications, a pass this often
OK, FAILED, USAGE = 0, 1, 2


class Watcher:
    """Runs the passes of one watched folder until stopped."""

    def __init__(self, client, directory: str, account: Account, options: PassOptions,
                 reporter: Reporter) -> None:
        self.client = client
        self.directory = directory
        # As guard.open_folder spells it: the paths the passes report match the notices'.
        self.root = Path(os.path.abspath(os.path.expanduser(directory)))
        self.account = account
        self.options = options
        self.reporter = reporter
        self.stop = asyncio.Event()
        self.wake = asyncio.Event()
        self.cursor: int | None = None  # where the last finished pass left the feed
        self.local_dirty = True  # the first pass
        self.remote_seen = 0  # the newest event heard through Watch
        self.cursor_known = asyncio.Event()  # set by the first finished pass
        self.pass_done = asyncio.Event()  # set after each finished pass
        self.server_back = asyncio.Event()  # set when a dropped Watch stream is up again
        self.outage = False
        self.own_changes = OwnChanges()  # the passes' own writes: their echo starts nothing
        self.noticed: deque[str] = deque(maxlen=100)  # paths whose notices started passes
        self.passes = 0
        self.exit_code = OK

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop.set)
        helpers = [asyncio.create_task(self._local_changes()),
                   asyncio.create_task(self._remote_changes())]
        try:
            await self._passes()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            self.stop.set()  # the file watcher's thread ends at its next step
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
        return self.exit_code

    # -- passes -----------------------------------------------------------------------------

    def _wanted(self) -> bool:
        return self.local_dirty or self.cursor is None or self.remote_seen > self.cursor

    async def _passes(self) -> None:
        pause = FIRST_PAUSE
        while not self.stop.is_set():
            if not self._wanted():
                await _first(self.wake.wait(), self.stop.wait())
                self.wake.clear()
                continue
            self.local_dirty = False
            self.wake.clear()
            work = asyncio.create_task(self._one_pass())
            stopper = asyncio.create_task(self.stop.wait())
            await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if not work.done():  # stopped meanwhile: every finished step is recorded
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await work
                return
            retry = work.result()
            if retry:  # the server was out of reach: try again in a while, or once it is back
                self.local_dirty = True
                self.server_back.clear()
                await _first(asyncio.sleep(pause), self.stop.wait(), self.server_back.wait())
                pause = min(pause * 2, MAX_PAUSE)
            else:
                pause = FIRST_PAUSE

    async def _one_pass(self) -> bool:
        """One pass, its outcome reported; True if it should be tried again soon."""
        try:
            with self.reporter.session():
                summary = await sync_pass(self.client, self.directory, self.account,
                                          self.options, self.reporter, self.own_changes)
        except (FolderRefused, NotSignedIn) as exc:
            self.reporter.error(getattr(exc, "message", None) or str(exc))
            self.exit_code = USAGE
            self.stop.set()
            return False
        except MassDelete as exc:
            self.reporter.error(f"{exc} (still watching)")
            return False
        except ClientError as exc:
            self.reporter.error(f"{exc.message} (trying again)")
            return True
        self.passes += 1
        if summary.cursor is not None:
            self.cursor = summary.cursor
            self.cursor_known.set()
        self.pass_done.set()
        if summary.changed_meanwhile:
            self.local_dirty = True  # one more pass applies them
        if self.passes == 1 or summary.did_something():
            self.reporter.summary(summary)
        return False

    # -- triggers ---------------------------------------------------------------------------

    async def _local_changes(self) -> None:
        from watchfiles import awatch

        try:
            # rust_timeout=0: no periodic timeout, whose reset could drop a change that
            # arrives at that instant (watchfiles clears its batch after finding it empty).
            async for changes in awatch(self.root, watch_filter=self._interesting,
                                        step=QUIET_MS, debounce=MAX_GATHER_MS,
                                        stop_event=self.stop, rust_timeout=0):
                self.noticed.extend(sorted(path for _, path in changes))
                self.local_dirty = True
                self.wake.set()
        except Exception as exc:  # e.g. out of inotify watches: look now and then instead
            self.reporter.error(f"file-system notifications for {self.root} stopped ({exc}); "
                                f"looking for changes every {POLL_SECONDS} s instead")
            while not self.stop.is_set():
                await asyncio.sleep(POLL_SECONDS)
                self.local_dirty = True
                self.wake.set()

    def _interesting(self, change, path: str) -> bool:
        try:
            relative = Path(path).relative_to(self.root)
        except ValueError:
            return False
        if any(part.startswith(".") for part in relative.parts):
            return False  # .musicsync, hidden files, our partial downloads
        if relative.name.lower().endswith(PARTIAL_SUFFIXES):
            return False
        return not self.own_changes.is_echo(path)

    async def _remote_changes(self) -> None:
        await _first(self.cursor_known.wait(), self.stop.wait())  # the first pass's cursor
        while not self.stop.is_set():
            feed = LiveFeed(self.client, self.cursor, on_drop=self._dropped,
                            on_back=self._back, subjects=self._subjects())
            try:
                async for item in feed:
                    if isinstance(item, ChangeEvent) and item.seq > self.cursor:
                        self.remote_seen = max(self.remote_seen, item.seq)
                        self.wake.set()
            except NotSignedIn as exc:
                self.reporter.error(exc.message)
                self.exit_code = USAGE
                self.stop.set()
                return
            except Refused as exc:
                if exc.code != grpc.StatusCode.FAILED_PRECONDITION:
                    self.reporter.error(f"watching the library: {exc.message}")
                    await _first(asyncio.sleep(MAX_PAUSE), self.stop.wait())
                    continue
                # The server does not know the cursor (its feed was pruned, or it is
                # another server): a pass lists the library afresh and moves the cursor.
                passes = self.passes
                self.local_dirty = True
                self.wake.set()
                while self.passes == passes and not self.stop.is_set():
                    await _first(self.pass_done.wait(), self.stop.wait())
                    self.pass_done.clear()

    def _subjects(self) -> tuple[int, ...]:
        """Songs, and playlists when the passes keep them (a change of one starts a pass)."""
        if self.options.playlists and self.options.direction == "both":
            return (sync_pb2.SUBJECT_SONG, sync_pb2.SUBJECT_PLAYLIST)
        return ()

    def _dropped(self, error: ClientError | None, pause: float) -> None:
        if not self.outage:  # said once per outage
            self.reporter.error(f"{drop_reason(error)} (reconnecting)")
        self.outage = True

    def _back(self) -> None:
        # Local changes meanwhile were waiting for the server: a pass takes them now.
        self.outage = False
        self.local_dirty = True
        self.wake.set()
        self.server_back.set()
        self.reporter.line("the server is back")


async def _first(*awaitables) -> None:
    """Waits until the first of ``awaitables`` is done; cancels the others."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
