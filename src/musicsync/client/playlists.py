"""Playlists through the client (``client.playlists``), and the merge after a stale edit.

An edit names the version it was based on; if another device changed the playlist
since, the server answers ABORTED and applies nothing. ``Playlists.save`` then does
what README's "Playlists" describes: it fetches the playlist as it is now, merges the
device's own change into it (``merge``: a three-way merge of the version the device
started from, what it wants, and what is there now) and sends the result as
operations on the new version, until one goes through.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc

from ..proto import library_pb2
from .errors import Refused

HASHES_PER_REQUEST = 1000  # the server's MAX_PLAYLIST_HASHES_PER_REQUEST
OPERATIONS_PER_EDIT = 1000  # the server's MAX_PLAYLIST_OPERATIONS
PAGE = 1000
SAVE_ATTEMPTS = 5


@dataclass(frozen=True)
class PlaylistSong:
    """An entry: the song's hash and library path now (the last known when missing)."""

    hash: str
    path: str
    missing: bool = False


@dataclass
class RemotePlaylist:
    """A playlist as the server has it; ``songs`` only when fetched with ``get``."""

    id: int
    name: str
    description: str
    version: int
    entry_count: int
    created_at: int
    updated_at: int
    songs: list[PlaylistSong] = field(default_factory=list)

    @classmethod
    def from_proto(cls, message: library_pb2.Playlist) -> RemotePlaylist:
        return cls(message.id, message.name, message.description, message.version,
                   message.entry_count, message.created_at, message.updated_at,
                   [PlaylistSong(e.hash, e.path, e.missing) for e in message.entries])

    @property
    def hashes(self) -> list[str]:
        return [song.hash for song in self.songs]


@dataclass(frozen=True)
class Insert:
    position: int
    hashes: tuple[str, ...]


@dataclass(frozen=True)
class Remove:
    position: int
    count: int = 1


Operation = Insert | Remove


def edit_operations(now: Sequence[str], wanted: Sequence[str]) -> list[Operation]:
    """Operations turning the list ``now`` into ``wanted`` (hashes), in the order to send
    them: from the end backwards, so each position still means what it did in ``now``."""
    operations: list[Operation] = []
    matcher = difflib.SequenceMatcher(a=list(now), b=list(wanted), autojunk=False)
    for tag, i1, i2, j1, j2 in reversed(matcher.get_opcodes()):
        if tag in ("delete", "replace"):
            operations.append(Remove(i1, i2 - i1))
        if tag in ("insert", "replace"):
            for start in range(j1, j2, HASHES_PER_REQUEST):  # several inserts, same place
                chunk = tuple(wanted[start:min(j2, start + HASHES_PER_REQUEST)])
                operations.append(Insert(i1 + start - j1, chunk))
    return operations


def merge(base: Sequence[str], mine: Sequence[str], theirs: Sequence[str]) -> list[str]:
    """This device's change (``base`` -> ``mine``) made to the playlist as another device
    left it (``theirs``, itself changed from ``base``).

    Entries this device removed are removed where they still are (one the other device
    removed too stays removed); songs this device inserted go before the entry they
    preceded in ``base`` wherever it is now (after the one they followed if that one is
    gone; at the end if all after it are gone). Their inserts and removes stay."""
    where = _positions(base, theirs)  # base index -> its index in theirs, if kept
    result: list[str | None] = list(theirs)
    inserts: dict[int, list[str]] = {}  # index in theirs -> songs to put before it
    matcher = difflib.SequenceMatcher(a=list(base), b=list(mine), autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag in ("delete", "replace"):
            for index in range(i1, i2):
                if where.get(index) is not None:
                    result[where[index]] = None
        if tag in ("insert", "replace"):
            anchor = next((where[i] for i in range(i2, len(base)) if where.get(i) is not None),
                          None)
            if anchor is None:  # nothing after it is left: after what preceded it, or last
                before = next((where[i] for i in range(i1 - 1, -1, -1)
                               if where.get(i) is not None), None)
                anchor = len(theirs) if before is None else before + 1
            inserts.setdefault(anchor, []).extend(mine[j1:j2])
    merged: list[str] = []
    for index in range(len(theirs) + 1):
        merged.extend(inserts.get(index, ()))
        if index < len(theirs) and result[index] is not None:
            merged.append(result[index])
    return merged


def _positions(base: Sequence[str], theirs: Sequence[str]) -> dict[int, int]:
    matcher = difflib.SequenceMatcher(a=list(base), b=list(theirs), autojunk=False)
    return {block.a + k: block.b + k for block in matcher.get_matching_blocks()
            for k in range(block.size)}


def batches(operations: Sequence[Operation]) -> list[list[Operation]]:
    """``operations`` cut into edits the server takes (operations and songs per edit).

    Each operation's positions hold for the list the ones before it left, so the edits
    apply one after the other. (Should another device edit in between, the later ones
    are merged again; the earlier ones stay applied.)"""
    edits: list[list[Operation]] = [[]]
    songs = 0
    for operation in operations:
        size = len(operation.hashes) if isinstance(operation, Insert) else 0
        if len(edits[-1]) >= OPERATIONS_PER_EDIT or songs + size > HASHES_PER_REQUEST:
            edits.append([])
            songs = 0
        edits[-1].append(operation)
        songs += size
    return [edit for edit in edits if edit]


def operation_message(operation: Operation) -> library_pb2.PlaylistOperation:
    op = library_pb2.PlaylistOperation
    if isinstance(operation, Insert):
        return op(insert=op.Insert(position=operation.position, hashes=list(operation.hashes)))
    return op(remove=op.Remove(position=operation.position, count=operation.count))


class Playlists:
    """The signed-in user's playlists (``Client.playlists``)."""

    def __init__(self, client, stub) -> None:
        self._client = client
        self._stub = stub

    async def _call(self, method: str, request):
        return await self._client._unary(getattr(self._stub, method), request)

    async def list(self) -> list[RemotePlaylist]:
        """Every playlist, by name, without their songs."""
        answer = await self._call("ListPlaylists", library_pb2.ListPlaylistsRequest())
        return [RemotePlaylist.from_proto(p) for p in answer.playlists]

    async def find(self, name: str) -> RemotePlaylist | None:
        return next((p for p in await self.list() if p.name == name), None)

    async def get(self, playlist_id: int) -> RemotePlaylist:
        """The playlist with all its songs (fetched a page at a time)."""
        playlist = None
        while True:
            offset = len(playlist.songs) if playlist else 0
            answer = await self._call("GetPlaylist", library_pb2.GetPlaylistRequest(
                id=playlist_id, offset=offset, limit=PAGE))
            page = RemotePlaylist.from_proto(answer.playlist)
            if playlist is not None and page.version != playlist.version:
                playlist = None  # changed while paging: from the start again
                continue
            if playlist is None:
                playlist = page
            else:
                playlist.songs.extend(page.songs)
            if not page.songs or len(playlist.songs) >= page.entry_count:
                return playlist

    async def create(self, name: str, hashes: Sequence[str] = (),
                     description: str = "") -> RemotePlaylist:
        """A new playlist of ``hashes`` (any number: beyond one request's, appended)."""
        answer = await self._call("CreatePlaylist", library_pb2.CreatePlaylistRequest(
            name=name, description=description, hashes=list(hashes[:HASHES_PER_REQUEST])))
        playlist = RemotePlaylist.from_proto(answer.playlist)
        for start in range(HASHES_PER_REQUEST, len(hashes), HASHES_PER_REQUEST):
            playlist = await self.edit(playlist.id, playlist.version, [
                Insert(start, tuple(hashes[start:start + HASHES_PER_REQUEST]))])
        return playlist

    async def update(self, playlist_id: int, *, name: str | None = None,
                     description: str | None = None, base_version: int = 0) -> RemotePlaylist:
        fields = {key: value for key, value in (("name", name), ("description", description))
                  if value is not None}
        answer = await self._call("UpdatePlaylist", library_pb2.UpdatePlaylistRequest(
            id=playlist_id, base_version=base_version, **fields))
        return RemotePlaylist.from_proto(answer.playlist)

    async def edit(self, playlist_id: int, base_version: int,
                   operations: Sequence[Operation]) -> RemotePlaylist:
        """Sends ``operations`` as one edit of version ``base_version`` (Refused with
        ABORTED if the playlist moved on: see ``save``)."""
        answer = await self._call("EditPlaylist", library_pb2.EditPlaylistRequest(
            id=playlist_id, base_version=base_version,
            operations=[operation_message(op) for op in operations]))
        return RemotePlaylist.from_proto(answer.playlist)

    async def delete(self, playlist_id: int) -> None:
        await self._call("DeletePlaylist", library_pb2.DeletePlaylistRequest(id=playlist_id))

    async def save(self, base: RemotePlaylist, wanted: Sequence[str]) -> RemotePlaylist:
        """Makes the playlist's songs ``wanted``, ``base`` being the version the device
        started from (fetched with ``get``: with its songs); another device's change
        since is merged in (module docstring)."""
        if len(base.songs) != base.entry_count:
            raise ValueError("save needs the playlist as fetched with get(), songs and all")
        now = base
        for _ in range(SAVE_ATTEMPTS):
            target = wanted if now is base else merge(base.hashes, wanted, now.hashes)
            operations = edit_operations(now.hashes, target)
            if not operations:
                return now
            try:
                version = now.version
                for batch in batches(operations):
                    version = (await self.edit(now.id, version, batch)).version
                return await self.get(now.id)
            except Refused as exc:
                if exc.code != grpc.StatusCode.ABORTED:
                    raise
            now = await self.get(base.id)
        raise Refused(grpc.StatusCode.ABORTED, f"playlist {base.name!r} kept changing on "
                      f"other devices; try again")
