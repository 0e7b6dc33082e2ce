"""The server's library as a sync pass sees it, read cheaply.

The folder's index keeps a snapshot of the library (path -> sha256, size) and
the change-feed cursor it stood at. The library now is that snapshot with the
changes after the cursor replayed (Changes): a run with nothing changed reads
one empty page. Without a snapshot, or when the server no longer knows the
cursor (FAILED_PRECONDITION: pruned or from another server), the whole library
is listed by a Diff with cursor 0 and no hashes: its entries and its cursor
come from one read of the server's database, so they agree.

The snapshot is the server's state, not the base (what both sides agreed on):
every change read is accounted for in it, whoever made it, so the cursor can
move past another device's change made during a pass; the planner then sees
it as a remote change (the snapshot differs from the base) on the next pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import grpc

from ..errors import Refused
from ..models import ChangeEvent
from .index import BaseEntry, FolderIndex


@dataclass
class RemoteState:
    """The library at ``cursor``: server path -> sha256, and sha256 -> size."""

    songs: dict[str, str]
    sizes: dict[str, int]
    cursor: int
    listed: bool = False  # read in full (no usable cursor)

    def entries(self) -> dict[str, BaseEntry]:
        return {path: BaseEntry(sha, self.sizes.get(sha, 0)) for path, sha in self.songs.items()}


async def load(client, index: FolderIndex) -> RemoteState:
    """The library now, from the index's snapshot and the changes after its cursor."""
    cursor = index.state().cursor
    if cursor is not None:
        snapshot = index.remote()
        state = RemoteState({path: e.sha256 for path, e in snapshot.items()},
                            {e.sha256: e.size for e in snapshot.values()}, int(cursor))
        try:
            return await catch_up(client, state)
        except Refused as exc:
            if exc.code != grpc.StatusCode.FAILED_PRECONDITION:
                raise
    state = await list_library(client)
    index.replace_remote(state.entries(), state.cursor)  # a true state: keep it at once
    return state


async def list_library(client) -> RemoteState:
    """The whole library and the cursor of that same moment (a Diff holding nothing)."""
    answer = await client.diff([], cursor=0)
    return RemoteState({f.path: f.hash for f in answer.download},
                       {f.hash: f.size for f in answer.download}, answer.cursor, listed=True)


async def catch_up(client, state: RemoteState) -> RemoteState:
    """``state`` with the changes after its cursor replayed (a new RemoteState)."""
    feed = client.changes(since=state.cursor)
    events = [event async for event in feed]
    songs, sizes = replay(state.songs, state.sizes, events)
    return RemoteState(songs, sizes, feed.cursor, state.listed)


def replay(songs: dict[str, str], sizes: dict[str, int], events: Iterable[ChangeEvent]
           ) -> tuple[dict[str, str], dict[str, int]]:
    """The library after ``events``, from ``songs`` (path -> sha256) before them.

    An event carries its song as it is now (its current path), or no song when it
    was deleted since (a later DELETED says so); replayed in order, every song ends
    at its current path.
    """
    songs, sizes = dict(songs), dict(sizes)
    where = {sha: path for path, sha in songs.items()}

    def drop(sha: str) -> None:
        path = where.pop(sha, None)
        if path is not None and songs.get(path) == sha:
            del songs[path]

    for event in events:
        if event.replaces:
            drop(event.replaces)
        if event.kind == "deleted":
            drop(event.hash)
        elif event.file is not None:
            drop(event.hash)
            displaced = songs.get(event.file.path)
            if displaced is not None:  # it moved or went later: its own event follows
                where.pop(displaced, None)
            songs[event.file.path] = event.hash
            where[event.hash] = event.file.path
            sizes[event.hash] = event.file.size
    return songs, {sha: size for sha, size in sizes.items() if sha in where}


async def advance(client, index: FolderIndex, state: RemoteState) -> RemoteState:
    """Reads the changes since ``state`` (this pass's own among them), keeps the library
    at the newest cursor in the index, and acknowledges it to the server."""
    newer = await catch_up(client, state)
    if newer.cursor != state.cursor or state.listed:
        index.replace_remote(newer.entries(), newer.cursor)
        await client.ack(newer.cursor)  # (Changes itself keeps this device seen)
    return newer
