"""sync.SyncService."""

from __future__ import annotations

from sqlalchemy import select

from ..db import Database
from ..db.models import LibraryEntry
from ..interceptors import current_principal
from ..proto import sync_pb2, sync_pb2_grpc


class SyncServicer(sync_pb2_grpc.SyncServiceServicer):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def GetSync(self, request, context):
        user_id = current_principal().user_id
        async with self._db.read() as session:
            rows = await session.execute(
                select(LibraryEntry.sha256, LibraryEntry.filename)
                .where(LibraryEntry.user_id == user_id).order_by(LibraryEntry.id))
            files = [sync_pb2.FileInfo(hash=sha.hex(), filename=name) for sha, name in rows]
        return sync_pb2.GetSyncResponse(files=files)
