"""library.PlaylistService (library.proto)."""

from __future__ import annotations

from ..players.context import PlayerContext
from ..proto import library_pb2_grpc


class PlaylistServicer(library_pb2_grpc.PlaylistServiceServicer):
    """Not implemented yet: every method answers UNIMPLEMENTED."""

    def __init__(self, context: PlayerContext) -> None:
        self._context = context
