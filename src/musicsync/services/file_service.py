"""file.FileService."""

from __future__ import annotations

from ..proto import file_pb2_grpc


class FileServicer(file_pb2_grpc.FileServiceServicer):
    """Transfers arrive with the File issue; until then every method is UNIMPLEMENTED."""
