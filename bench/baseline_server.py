"""The bare grpc.aio baseline of bench/transfer.py: same process layout, no work.

Serves file.FileService on the given port: Upload reads every message with
context.read() and discards it; Download sends the requested number of bytes
from memory in chunks of the requested size. What musicsync does on top
(auth, hashing, durable writes, reading from disk) is the difference the
benchmark measures.
"""

from __future__ import annotations

import asyncio
import sys

import grpc

from musicsync.proto import file_pb2, file_pb2_grpc
from musicsync.server import GRPC_OPTIONS


class Sink(file_pb2_grpc.FileServiceServicer):
    def __init__(self) -> None:
        self._source = bytes(4 * 1024 * 1024)

    async def Upload(self, request_iterator, context):
        received = 0
        while True:
            message = await context.read()
            if message is grpc.aio.EOF:
                break
            received += len(message.chunk)
        return file_pb2.UploadResponse(hash=str(received))

    async def Download(self, request, context):
        remaining, size = request.length, request.chunk_size
        piece = self._source[:size]
        first = True
        while remaining > 0:
            chunk = piece if remaining >= size else piece[:remaining]
            remaining -= len(chunk)
            yield file_pb2.DownloadResponse(chunk=chunk, total_size=request.length if first else 0)
            first = False


async def main(port: int) -> None:
    server = grpc.aio.server(options=GRPC_OPTIONS)
    file_pb2_grpc.add_FileServiceServicer_to_server(Sink(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
