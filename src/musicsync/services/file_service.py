"""file.FileService."""

from __future__ import annotations

from ..files import Files
from ..interceptors import current_principal
from ..proto import file_pb2, file_pb2_grpc
from ..uploads import Uploads
from .convert import file_entry

DEFAULT_DOWNLOAD_CHUNK = 256 * 1024
MAX_DOWNLOAD_CHUNK = 4 * 1024 * 1024 - 1024  # under the 4 MiB default client limit


class FileServicer(file_pb2_grpc.FileServiceServicer):
    def __init__(self, files: Files, uploads: Uploads) -> None:
        self._files = files
        self._uploads = uploads

    async def Upload(self, request_iterator, context):
        entry = await self._uploads.receive(current_principal().user_id, context.read)
        return file_pb2.UploadResponse(hash=entry.sha256.hex(), file=file_entry(entry))

    async def Download(self, request, context):
        total, blocks = await self._files.open_download(
            current_principal().user_id, request.hash, request.offset, request.length)
        chunk_size = request.chunk_size or DEFAULT_DOWNLOAD_CHUNK
        if not 1024 <= chunk_size <= MAX_DOWNLOAD_CHUNK:
            chunk_size = min(max(chunk_size, 1024), MAX_DOWNLOAD_CHUNK)
        first = True
        sent = 0
        try:
            async for block in blocks:
                for start in range(0, len(block), chunk_size):
                    piece = block[start:start + chunk_size] if len(block) > chunk_size else block
                    if first:
                        yield file_pb2.DownloadResponse(chunk=piece, total_size=total)
                        first = False
                    else:
                        yield file_pb2.DownloadResponse(chunk=piece)
                    sent += len(piece)
        finally:
            await blocks.aclose()
            self._files.metrics.bytes_sent(sent)
        if first:  # an empty range still says how big the file is
            yield file_pb2.DownloadResponse(total_size=total)

    async def Delete(self, request, context):
        existed = await self._files.delete(current_principal().user_id, request.hash)
        return file_pb2.DeleteResponse(success=existed)

    async def StartUpload(self, request, context):
        info = await self._uploads.start_session(
            current_principal().user_id, request.sha256, request.size)
        return file_pb2.StartUploadResponse(upload_id=info.upload_id, offset=info.offset,
                                            expires_at=info.expires_at, complete=info.complete)

    async def Stat(self, request, context):
        entries, missing = await self._files.stat(current_principal().user_id, request.hashes)
        return file_pb2.StatResponse(files=[file_entry(e) for e in entries], missing=missing)
