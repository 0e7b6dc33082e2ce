"""library.PlaylistService (library.proto): decodes requests for players/playlists.py."""

from __future__ import annotations

from ..errors import InvalidArgument
from ..interceptors import current_principal
from ..library.files import parse_hash
from ..limits import PAGE_BUDGET_BYTES
from ..players import playlists
from ..players.context import PlayerContext
from ..players.pages import page_size
from ..players.playlists import Insert, Move, Playlists, Remove, ShownEntry
from ..proto import library_pb2, library_pb2_grpc
from .convert import encoded_size, path, playlist_message, within_budget

# ListPlaylists without a page (older clients) answers with descriptions while they fit in
# this much; its pages keep them and end early instead, before PAGE_BUDGET_BYTES.
LIST_BUDGET_BYTES = 3 * 1024 * 1024


class PlaylistServicer(library_pb2_grpc.PlaylistServiceServicer):
    """A user's playlists: create, read, rename, edit by operations, delete."""

    def __init__(self, context: PlayerContext) -> None:
        self._playlists = Playlists(context.db, context.notifier, context.clock)

    async def CreatePlaylist(self, request, context):
        playlist = await self._playlists.create(
            current_principal().user_id, request.name, request.description,
            _hashes(request.hashes))
        return library_pb2.CreatePlaylistResponse(playlist=playlist_message(playlist))

    async def GetPlaylist(self, request, context):
        playlist, entries = await self._playlists.get(
            current_principal().user_id, request.id, request.offset, request.limit)
        message = playlist_message(playlist)
        shown = [_entry(entry) for entry in entries]
        # Long paths: a shorter page (the device asks again from the next position).
        message.entries.extend(shown[:within_budget(shown)])
        return library_pb2.GetPlaylistResponse(playlist=message)

    async def ListPlaylists(self, request, context):
        user_id = current_principal().user_id
        if request.HasField("page"):
            size = page_size(request.page.size)
            page = await self._playlists.page_of_user(user_id, size, request.page.token)
            found = [playlist_message(p) for p in page.rows]
            fit = within_budget(found, PAGE_BUDGET_BYTES)  # long descriptions: a shorter page
            token = page.token_after(fit - 1) if fit < len(found) or page.more else ""
            return library_pb2.ListPlaylistsResponse(playlists=found[:fit],
                                                     next_page_token=token)
        # Older clients page nothing: every playlist in one answer, as before paging.
        found = [playlist_message(p) for p in await self._playlists.of_user(user_id)]
        if encoded_size(found) > LIST_BUDGET_BYTES:
            # 1,000 long descriptions would pass 4 MiB: without them it stays near 1 MiB.
            # GetPlaylist has each one (and pages of this list have them).
            for message in found:
                message.description = ""
        return library_pb2.ListPlaylistsResponse(playlists=found)

    async def UpdatePlaylist(self, request, context):
        playlist = await self._playlists.update(
            current_principal().user_id, request.id,
            request.name if request.HasField("name") else None,
            request.description if request.HasField("description") else None,
            request.base_version)
        return library_pb2.UpdatePlaylistResponse(playlist=playlist_message(playlist))

    async def EditPlaylist(self, request, context):
        playlists.check_operation_count(len(request.operations))
        playlists.check_hash_count(sum(len(op.insert.hashes) for op in request.operations
                                       if op.WhichOneof("operation") == "insert"))
        operations = [_operation(number, op) for number, op in enumerate(request.operations, 1)]
        playlist = await self._playlists.edit(current_principal().user_id, request.id,
                                              request.base_version, operations)
        return library_pb2.EditPlaylistResponse(playlist=playlist_message(playlist))

    async def DeletePlaylist(self, request, context):
        await self._playlists.delete(current_principal().user_id, request.id)
        return library_pb2.DeletePlaylistResponse()


def _hashes(texts) -> tuple[bytes, ...]:
    playlists.check_hash_count(len(texts))
    return tuple(parse_hash(text, "each song hash") for text in texts)


def _operation(number: int, message: library_pb2.PlaylistOperation) -> playlists.Operation:
    kind = message.WhichOneof("operation")
    if kind == "insert":
        return Insert(message.insert.position, _hashes(message.insert.hashes))
    if kind == "remove":
        return Remove(message.remove.position, message.remove.count)
    if kind == "move":
        return Move(message.move.from_position, message.move.to_position,
                    message.move.count or 1)
    raise InvalidArgument(f"operation {number} is empty: set insert, remove or move")


def _entry(entry: ShownEntry) -> library_pb2.PlaylistEntry:
    return library_pb2.PlaylistEntry(hash=entry.sha256.hex(), path=path(entry.path),
                                     missing=entry.missing, position=entry.position)
