"""library.ArtService (library.proto): cover pictures, streamed (players/art.py)."""

from __future__ import annotations

from contextlib import aclosing

from ..errors import InvalidArgument
from ..interceptors import current_principal
from ..limits import MAX_TAG_CHARS, check_chars
from ..players.art import CoverArt, check_size
from ..players.context import PlayerContext
from ..proto import library_pb2, library_pb2_grpc


class ArtServicer(library_pb2_grpc.ArtServiceServicer):
    """GetCoverArt: the first message says what the picture is, every one carries a chunk."""

    def __init__(self, context: PlayerContext) -> None:
        self._art = CoverArt(context)

    async def GetCoverArt(self, request, context):
        user_id = current_principal().user_id
        size = check_size(request.size)
        which = request.WhichOneof("of")
        if which == "hash":
            picture = await self._art.of_song(user_id, request.hash)
        elif which == "album":
            album_artist = check_chars(request.album.album_artist, "album.album_artist",
                                       MAX_TAG_CHARS)
            album = check_chars(request.album.album, "album.album", MAX_TAG_CHARS)
            picture = await self._art.of_album(user_id, album_artist, album)
        else:
            raise InvalidArgument("say whose cover art: hash (a song's) or album "
                                  "(album_artist and album)")
        served, chunks = await self._art.read(picture, size)
        first = library_pb2.GetCoverArtResponse(
            mime_type=served.mime_type, width=served.width, height=served.height,
            total_size=served.size)
        async with aclosing(chunks) as blocks:
            async for block in blocks:
                if first is not None:
                    first.chunk = block
                    yield first
                    first = None
                else:
                    yield library_pb2.GetCoverArtResponse(chunk=block)
        if first is not None:
            yield first
