"""library.BrowseService (library.proto)."""

from __future__ import annotations

from ..players.context import PlayerContext
from ..proto import library_pb2_grpc


class BrowseServicer(library_pb2_grpc.BrowseServiceServicer):
    """Not implemented yet: every method answers UNIMPLEMENTED."""

    def __init__(self, context: PlayerContext) -> None:
        self._context = context
