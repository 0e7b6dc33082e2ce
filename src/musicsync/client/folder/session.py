"""One sync pass of a folder: guard, scan, the server's state, plan, apply, settle.

Every finished step is written to the folder's ledger at once, so a pass stopped
anywhere (Ctrl-C, SIGKILL, a server gone) resumes from what really happened. A
step that fails for one file (a refusal, a full disk, a file changed meanwhile)
is recorded in the summary and the rest go on; losing the server or the sign-in
ends the pass (ServerUnavailable, NotSignedIn propagate).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ClientError, NotFound, NotSignedIn, ServerUnavailable
from ..models import Device
from ..transfer import partial_path
from . import remote as remote_state
from .apply_local import LocalApplier, LocalChanged
from .echo import OwnChanges
from .guard import FolderRefused, open_folder
from .index import FolderIndex
from .ledger import Ledger
from .names import NameMap, NameRules, Unstorable
from .plan import Download, Options, Plan, Upload, plan, sequence_moves, unique_songs
from .playlists import PlaylistSync
from .report import HashingBar, Reporter, Summary, plan_as_json, plan_lines
from .scan import scan
from .trash import Trash

# What ends a whole pass rather than one file's step.
FATAL = (ServerUnavailable, NotSignedIn)
# What fails one file's step (sqlite3.Error: the index could not record it, e.g. a full
# disk; the next scan finds the file as it is).
PER_FILE = (ClientError, OSError, LocalChanged, Unstorable, sqlite3.Error)


@dataclass(frozen=True)
class PassOptions:
    direction: str = "both"
    no_delete: bool = False
    max_delete: float = 50.0
    force: bool = False
    dry_run: bool = False
    jobs: int = 4
    playlists: bool = True  # DIR/Playlists/*.m3u8 both ways (folder.playlists)

    def plan_options(self) -> Options:
        return Options(direction=self.direction, no_delete=self.no_delete,
                       max_delete=self.max_delete, force=self.force)


@dataclass(frozen=True)
class Account:
    """Who the pass syncs as: the folder must not change hands silently."""

    server: str
    username: str


def device_for(root: Path, device_id: str) -> Device:
    """Each synced folder is a device of its own on the server: "<host>:<folder name>"."""
    host = socket.gethostname() or "desktop"
    return Device(device_id, f"{host}:{root.name}"[:100])


async def sync_pass(client, directory: str | os.PathLike, account: Account,
                    options: PassOptions, reporter: Reporter,
                    own_changes: OwnChanges | None = None) -> Summary:
    """Syncs ``directory`` once. Raises FolderRefused, plan.MassDelete (nothing changed),
    and the FATAL client errors; every other failure is in the summary. ``own_changes``
    is told of every path the pass changes in the folder (sync --watch)."""
    started = time.monotonic()
    counters = (client.bytes_sent, client.bytes_received, client.listing_bytes)
    summary = Summary(dry_run=options.dry_run)
    folder, index = open_folder(directory)
    try:
        _check_account(folder.root, index, account)
        client.device = device_for(folder.root, folder.device_id)
        trash = Trash(folder.root)
        trash.purge()
        bar = HashingBar(reporter)
        try:
            scanned = await _in_thread(lambda: scan(folder.root, index, progress=bar))
        finally:
            bar.close()
        summary.files_hashed, summary.bytes_hashed = scanned.hashed, scanned.bytes_hashed
        summary.skipped += scanned.skipped
        names = NameMap(NameRules.for_this_system(), index.names())
        base_entries = index.base()
        base = {path: entry.sha256 for path, entry in base_entries.items()}
        local, refused = names.server_view(scanned.songs())
        summary.skipped += [(name, f"the server cannot hold this name ({why})")
                            for name, why in refused]
        local, extras = unique_songs(local, base)
        summary.skipped += [(extra, f"the same song as {kept} (synced once, from there)")
                            for extra, kept in extras]
        server = await remote_state.load(client, index)
        summary.listed_in_full = server.listed
        actions = plan(base, local, server.songs, options.plan_options())
        summary.conflicts = len(actions.conflicts)
        if options.dry_run:
            summary.plan = plan_as_json(actions)
            lines = plan_lines(actions)
            for line in lines[:-1]:
                reporter.line(line)
            await _playlists(client, folder.root, index, names, server.songs, trash, options,
                             reporter, summary, own_changes)
            summary.plan["playlists"] = [action.as_json() for action in summary.playlists]
            reporter.line(lines[-1])
            return summary
        sizes = {e.sha256: e.size for e in base_entries.values()}
        sizes.update(server.sizes)
        sizes.update({f.sha256: f.size for f in scanned.files.values()})
        ledger = Ledger(index, local, server.songs, sizes)
        applier = LocalApplier(folder.root, index, names, trash, ledger, own_changes)
        run = _Run(client, folder.root, index, names, ledger, applier, options, reporter,
                   summary)
        try:
            await run.apply(actions)
        finally:
            ledger.settle_all()
            index.set_names(names.to_server_names)
        newer = await remote_state.advance(client, index, server)
        summary.cursor = newer.cursor
        # The library changed during the pass beyond what it did itself (another device):
        # those changes are in the snapshot, and another pass brings them here.
        summary.changed_meanwhile = newer.songs != ledger.remote
        index.update_state(server=account.server, username=account.username,
                           last_sync=time.time())
        await _playlists(client, folder.root, index, names, newer.songs, trash, options,
                         reporter, summary, own_changes)
        return summary
    finally:
        index.close()
        summary.bytes_sent = client.bytes_sent - counters[0]
        summary.bytes_received = client.bytes_received - counters[1]
        summary.listing_bytes = client.listing_bytes - counters[2]
        summary.seconds = time.monotonic() - started


async def _playlists(client, root: Path, index: FolderIndex, names: NameMap,
                     library: dict[str, str], trash: Trash, options: PassOptions,
                     reporter: Reporter, summary: Summary,
                     own_changes: OwnChanges | None) -> None:
    """DIR/Playlists both ways, once the songs are in step (folder.playlists): only with
    --direction both, and not with --no-playlists."""
    if not options.playlists or options.direction != "both":
        return
    work = PlaylistSync(client, root, index, names, library, trash, dry_run=options.dry_run,
                        no_delete=options.no_delete, own_changes=own_changes)
    try:
        await work.run()
    finally:
        summary.playlists += work.actions
        summary.skipped += work.skipped
        for action in work.actions:
            reporter.line(action.line(options.dry_run))
        for path, why in work.failed:
            summary.failed.append((path, why))
            reporter.error(f"{path}: {why}")


def _check_account(root: Path, index: FolderIndex, account: Account) -> None:
    state = index.state()
    if state.server is None or (state.server, state.username) == (account.server,
                                                                  account.username):
        return
    raise FolderRefused(
        f"{root} was synced with the library of {state.username} at {state.server}, not "
        f"with {account.username} at {account.server}: syncing it now would mix the two. "
        f"Nothing was changed. To sync it with this library from scratch (nothing is "
        f"deleted on either side), run `musicsync sync --forget {root}` first")


async def _in_thread(work: Callable):
    """Runs blocking ``work`` in a thread; if cancelled meanwhile, waits for it to end
    before passing the cancellation on (it writes to the index, which closes next)."""
    future = asyncio.ensure_future(asyncio.to_thread(work))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await future
        raise


class _Run:
    """Applies one plan: deletes, moves, then the transfers in parallel."""

    def __init__(self, client, root: Path, index: FolderIndex, names: NameMap, ledger: Ledger,
                 applier: LocalApplier, options: PassOptions, reporter: Reporter,
                 summary: Summary) -> None:
        self.client = client
        self.root = root
        self.index = index
        self.names = names
        self.ledger = ledger
        self.applier = applier
        self.options = options
        self.reporter = reporter
        self.summary = summary

    def failed(self, path: str, exc: BaseException) -> None:
        why = getattr(exc, "message", None) or _os_reason(exc)
        self.summary.failed.append((path, why))
        self.reporter.error(f"{path}: {why}")

    async def apply(self, actions: Plan) -> None:
        for conflict in actions.conflicts:
            self.reporter.line(f"conflict  {conflict.path}: both sides have a different "
                               f"song there; the server's becomes {conflict.renamed_to}")
        self._local_deletes(actions.local_deletes)
        await self._remote_deletes(actions.remote_deletes)
        failures = self.applier.move_all(actions.local_moves)
        for move, exc in failures:
            self.failed(move.old_path, exc)
        self.summary.moved_local += len(actions.local_moves) - len(failures)
        failed_moves = {move for move, _ in failures}
        for move in actions.local_moves:
            if move not in failed_moves:
                self.reporter.line(f"moved     {move.old_path} -> {move.new_path} (here)")
        await self._remote_moves(actions)
        local_at = {sha: path for path, sha in self.ledger.local.items()}
        uploads = [lambda u=u: self._upload(u, local_at) for u in actions.uploads]
        downloads = [lambda d=d: self._download(d) for d in actions.downloads]
        up_bytes = sum(self.ledger.sizes.get(u.sha256, 0) for u in actions.uploads)
        down_bytes = sum(self.ledger.sizes.get(d.sha256, 0) for d in actions.downloads)
        with self.reporter.phase("uploading", up_bytes, len(uploads)) as self.up, \
                self.reporter.phase("downloading", down_bytes, len(downloads)) as self.down:
            await _all(uploads + downloads, self.options.jobs)

    # -- deletes and moves ----------------------------------------------------------------

    def _local_deletes(self, paths: list[str]) -> None:
        for path in paths:
            try:
                self.applier.delete(path)
            except LocalChanged:
                self.summary.skipped.append((path, "changed since the scan; kept (next time)"))
                continue
            except PER_FILE as exc:
                self.failed(path, exc)
                continue
            self.summary.deleted_local += 1
            self.reporter.line(f"deleted   {path} (here, into .musicsync/trash)")

    async def _remote_deletes(self, paths: list[str]) -> None:
        for path in paths:
            sha = self.ledger.remote.get(path)
            if sha is None:
                continue
            try:
                await self.client.delete(sha)
            except FATAL:
                raise
            except NotFound:
                pass  # gone already
            except PER_FILE as exc:
                self.failed(path, exc)
                continue
            self.ledger.remote_changed(path, None)
            self.summary.deleted_remote += 1
            self.reporter.line(f"deleted   {path} (on the server)")

    async def _remote_moves(self, actions: Plan) -> None:
        targets = {m.new_path for m in actions.remote_moves}  # not a swap's hop
        for move in sequence_moves(actions.remote_moves, set(self.ledger.remote)):
            try:
                await self.client.move(move.sha256, move.new_path)
            except FATAL:
                raise
            except PER_FILE as exc:
                self.failed(move.old_path, exc)
                continue
            self.ledger.remote_changed(move.old_path, None)
            self.ledger.remote_changed(move.new_path, move.sha256)
            if move.new_path in targets:
                self.summary.moved_remote += 1
                self.reporter.line(f"moved     {move.old_path} -> {move.new_path} "
                                   "(on the server)")

    # -- transfers ------------------------------------------------------------------------

    async def _upload(self, upload: Upload, local_at: dict[str, str]) -> None:
        path = upload.path
        try:
            held_at = local_at.get(upload.sha256)
            entry = self.applier.files.get(self.names.to_local(held_at)) if held_at else None
            if entry is None:
                raise LocalChanged("no longer in the folder")
            progress = self.up.file()
            result = await self.client.upload(self.root / entry.disk, path=path,
                                              replaces=upload.replaces, sha256=upload.sha256,
                                              new=True, progress=progress)  # the plan says so
        except FATAL:
            raise
        except LocalChanged as exc:
            self.summary.skipped.append((path, f"{exc}; next time"))
            return
        except PER_FILE as exc:
            self.failed(path, exc)
            return
        finally:
            self.up.file_done()
        size = entry.size
        if result.duplicate_of_path:
            # The library got this song at another path meanwhile (another device): it
            # stays there, and the next pass brings the two places together.
            self.ledger.remote_changed(result.duplicate_of_path, upload.sha256, size)
            self.summary.skipped.append((path, f"the library already has this song at "
                                               f"{result.duplicate_of_path}"))
            return
        if upload.replaces:
            for old, sha in list(self.ledger.remote.items()):
                if sha == upload.replaces and old != result.entry.path:
                    self.ledger.remote_changed(old, None)
        self.ledger.remote_changed(result.entry.path, upload.sha256, size)
        self.summary.uploaded += 1
        self.reporter.line(f"uploaded  {path}"
                           f"{' (replaces the old version)' if upload.replaces else ''}")

    async def _download(self, download: Download) -> None:
        path, sha = download.path, download.sha256
        temp = None
        try:
            temp = self.applier.temp_path(path, sha)
            await self.client.download(sha, temp, progress=self.down.file())
            landed = self.applier.place(temp, path, sha, replaces_local=download.replaces_local)
        except FATAL:
            raise
        except NotFound:
            self.summary.skipped.append((path, "no longer in the library"))
            return
        except PER_FILE as exc:
            if temp is not None and isinstance(exc, OSError) and exc.errno in (
                    errno.ENOSPC, errno.EDQUOT, errno.EROFS):
                _remove_partials(temp, sha)  # nothing half-written stays; space is freed
            self.failed(path, exc)
            return
        finally:
            self.down.file_done()
        self.summary.downloaded += 1
        if landed != path:
            self.reporter.line(f"downloaded {path} as {landed} (a different file took its "
                               "name meanwhile; both kept)")
        else:
            self.reporter.line(f"downloaded {path}"
                               f"{' (replaces the old version)' if download.replaces_local else ''}")


def _remove_partials(temp: Path, sha: str) -> None:
    for leftover in (temp, partial_path(temp, sha)):
        with contextlib.suppress(OSError):
            leftover.unlink()


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, sqlite3.Error):
        full = "full" in str(exc)
        return f"the folder's index could not record it ({'the disk is full' if full else exc})"
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return "the disk is full"
        if exc.errno == errno.EROFS:
            return "the folder is on a read-only file system"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return f"permission denied ({exc.filename or ''})"
        return exc.strerror or str(exc)
    return str(exc)


async def _all(jobs: list[Callable[[], Awaitable[None]]], limit: int) -> None:
    """Runs ``jobs`` at most ``limit`` at a time; a FATAL error cancels the rest and is
    raised as itself."""
    gate = asyncio.Semaphore(limit)

    async def one(job) -> None:
        async with gate:
            await job()
    try:
        async with asyncio.TaskGroup() as group:
            for job in jobs:
                group.create_task(one(job))
    except* FATAL as failure:
        raise failure.exceptions[0] from None
