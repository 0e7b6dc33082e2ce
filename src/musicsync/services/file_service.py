"""file.FileService."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import aclosing

import grpc

from ..errors import InvalidArgument, ResourceExhausted
from ..interceptors import current_principal
from ..library.files import Files
from ..library.upload_stream import NO_METADATA, Chunk, UploadMetadata
from ..library.uploads import Uploads
from ..limits import (
    CLIENT_MESSAGE_BYTES,
    MAX_FILENAME_BYTES,
    MAX_ID_CHARS,
    MAX_PATH_BYTES,
    MAX_TAG_CHARS,
    check_chars,
)
from ..proto import file_pb2, file_pb2_grpc
from . import wire
from .convert import encoded_size, file_entry
from .streams import StreamLimits

DEFAULT_DOWNLOAD_CHUNK = 256 * 1024
MAX_DOWNLOAD_CHUNK = 4 * 1024 * 1024 - 1024  # under the 4 MiB default client limit
# A Stat answer leaves this much of a client's 4 MiB for the missing hashes and framing.
STAT_ANSWER_BUDGET = CLIENT_MESSAGE_BYTES - 1024 * 1024
TAG_FIELDS = ("title", "artist", "album", "album_artist", "genre")


SERVICE = file_pb2.DESCRIPTOR.services_by_name["FileService"]
# The bulk messages skip protobuf's copies (see wire.py); the rest use the generated code.
_DESERIALIZERS = {"Upload": wire.upload_request}
_SERIALIZERS = {"Download": wire.download_response}
_HANDLER_KINDS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def add_to_server(servicer: FileServicer, server: grpc.aio.Server) -> None:
    """Registers the servicer like file_pb2_grpc does, with wire.py's codec for transfers."""
    handlers = {}
    for method in SERVICE.methods:
        request = getattr(file_pb2, method.input_type.name)
        response = getattr(file_pb2, method.output_type.name)
        kind = _HANDLER_KINDS[method.client_streaming, method.server_streaming]
        handlers[method.name] = kind(
            getattr(servicer, method.name),
            request_deserializer=_DESERIALIZERS.get(method.name, request.FromString),
            response_serializer=_SERIALIZERS.get(method.name, response.SerializeToString))
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),))
    server.add_registered_method_handlers(SERVICE.full_name, handlers)


class FileServicer(file_pb2_grpc.FileServiceServicer):
    def __init__(self, files: Files, uploads: Uploads,
                 streams: StreamLimits | None = None) -> None:
        self._files = files
        self._uploads = uploads
        self._streams = streams or StreamLimits()

    async def Upload(self, request_iterator, context):
        user_id = current_principal().user_id
        with self._streams.hold(user_id, "Upload"):
            stored = await self._uploads.receive(user_id, UploadCall(context.read))
        return file_pb2.UploadResponse(hash=stored.entry.sha256.hex(),
                                       file=file_entry(stored.entry),
                                       duplicate_of_path=stored.duplicate_of_path)

    async def Download(self, request, context):
        user_id = current_principal().user_id
        with self._streams.hold(user_id, "Download"):
            async with aclosing(self._download(user_id, request)) as messages:
                async for message in messages:
                    yield message

    async def _download(self, user_id: int, request):
        total, blocks = await self._files.open_download(
            user_id, request.hash, request.offset, request.length)
        chunk_size = request.chunk_size or DEFAULT_DOWNLOAD_CHUNK
        if not 1024 <= chunk_size <= MAX_DOWNLOAD_CHUNK:
            chunk_size = min(max(chunk_size, 1024), MAX_DOWNLOAD_CHUNK)
        sent = 0
        try:
            async for block in blocks:
                # Pieces are views of the block; wire.download_response copies each
                # into its message once (protobuf would copy it twice).
                view = memoryview(block)
                for start in range(0, len(block), chunk_size):
                    yield wire.Chunk(view[start:start + chunk_size], total if sent == 0 else 0)
                    sent += min(chunk_size, len(block) - start)
        finally:
            await blocks.aclose()
            self._files.metrics.bytes_sent(sent)
        if sent == 0:  # an empty range still says how big the file is
            yield wire.Chunk(b"", total)

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
        files, size = [], 0
        for entry in entries:  # built one at a time: stop as soon as the answer is too big
            files.append(file_entry(entry))
            size += encoded_size(files[-1:])
            if size > STAT_ANSWER_BUDGET:
                raise ResourceExhausted(
                    f"the {len(entries)} files found do not fit in one Stat answer (4 MiB); "
                    f"ask for at most {len(files) - 1} hashes per call")
        return file_pb2.StatResponse(files=files, missing=missing)

    async def Move(self, request, context):
        entry = await self._files.move(current_principal().user_id, request.hash, request.path)
        return file_pb2.MoveResponse(file=file_entry(entry))


class UploadCall:
    """An Upload call's messages as the upload domain reads them (an UploadStream):
    the FileMetadata message, at most once and first, then the chunks.

    ``read`` is the call's context.read: it answers an UploadRequest, a
    memoryview for a message that is only a chunk (see wire.py) or grpc.aio.EOF.
    The call is its own chunk iterator: a plain coroutine per chunk, no
    generator to finalise when an upload is refused halfway.
    """

    __slots__ = ("_read", "_first")

    def __init__(self, read: Callable[[], Awaitable[object]]) -> None:
        self._read = read
        self._first: Chunk | None = None  # a chunk that came in place of the metadata

    async def metadata(self) -> UploadMetadata:
        message = await self._read()
        if message is grpc.aio.EOF:
            raise InvalidArgument("empty upload: send a FileMetadata message, then the file "
                                  "in chunks")
        if isinstance(message, memoryview):
            self._first = message
            return NO_METADATA
        if message.WhichOneof("data") == "metadata":
            return upload_metadata(message.metadata)
        self._first = message.chunk
        return NO_METADATA

    def chunks(self) -> UploadCall:
        return self

    def __aiter__(self) -> UploadCall:
        return self

    async def __anext__(self) -> Chunk:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        message = await self._read()
        if isinstance(message, memoryview):  # nearly every message
            return message
        if message is grpc.aio.EOF:
            raise StopAsyncIteration
        if message.WhichOneof("data") == "metadata":
            check_file_metadata(message.metadata)  # its limits first, as for the first one
            raise InvalidArgument("FileMetadata must come once, before the first chunk; "
                                  "nothing was stored")
        return message.chunk


def upload_metadata(meta: file_pb2.FileMetadata) -> UploadMetadata:
    """The domain's UploadMetadata of a FileMetadata message within its limits."""
    check_file_metadata(meta)
    return UploadMetadata(
        sha256=meta.sha256, size=meta.size if meta.HasField("size") else None,
        upload_id=meta.upload_id, offset=meta.offset, path=meta.path, replaces=meta.replaces,
        filename=meta.filename, title=meta.title, artist=meta.artist, album=meta.album,
        album_artist=meta.album_artist, genre=meta.genre, track=meta.track, disc=meta.disc,
        year=meta.year, duration=meta.duration)


def check_file_metadata(meta: file_pb2.FileMetadata) -> None:
    """InvalidArgument naming the first field of ``meta`` over its limit (see limits.py)."""
    for field in TAG_FIELDS:
        check_chars(getattr(meta, field), f"metadata.{field}", MAX_TAG_CHARS)
    check_chars(meta.upload_id, "metadata.upload_id", MAX_ID_CHARS)
    path = meta.filename.encode("utf-8")
    if len(path) > MAX_PATH_BYTES:
        raise InvalidArgument(f"metadata.filename may be at most {MAX_PATH_BYTES} bytes of "
                              f"UTF-8 (got {len(path)})")
    name = path.replace(b"\\", b"/").rstrip(b"/").rsplit(b"/", 1)[-1]
    if len(name) > MAX_FILENAME_BYTES:
        raise InvalidArgument(f"metadata.filename: a file name may be at most "
                              f"{MAX_FILENAME_BYTES} bytes of UTF-8 (got {len(name)})")
