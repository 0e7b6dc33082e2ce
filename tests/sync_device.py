"""A simulated device for Sync tests: its own songs, its own channel, Diff and apply."""

from __future__ import annotations

import grpc

from musicsync.proto import file_pb2, sync_pb2

from .helpers import Client
from .transfer import download, upload, wav_bytes

DIFF_BATCH = 50_000


async def run_diff(client: Client, hashes: list[bytes], cursor: int = 0,
                   device: sync_pb2.Device | None = None, token: str | None = None
                   ) -> tuple[list[bytes], list, list[bytes], int, int]:
    """Diff over the wire: (upload, download entries, delete, cursor, response messages)."""
    def requests():
        first = sync_pb2.DiffRequest(hashes=hashes[:DIFF_BATCH], cursor=cursor, device=device)
        yield first
        for start in range(DIFF_BATCH, len(hashes), DIFF_BATCH):
            yield sync_pb2.DiffRequest(hashes=hashes[start:start + DIFF_BATCH])
    to_upload, to_download, to_delete, new_cursor, messages = [], [], [], None, 0
    async for response in client.sync.Diff(requests(), metadata=client.meta(token)):
        messages += 1
        to_upload += response.upload
        to_download += response.download
        to_delete += response.delete
        assert new_cursor in (None, response.cursor)  # one snapshot, one cursor
        new_cursor = response.cursor
    return to_upload, to_download, to_delete, new_cursor, messages


class Device:
    """A player's music folder (hash -> bytes) kept in step with the server by Diff."""

    def __init__(self, app, token: str, name: str) -> None:
        self.client = Client(app, port=app.ports.get("sync"))
        self.client.token = token
        self.name = name
        self.songs: dict[str, bytes] = {}
        self.cursor = 0

    @property
    def ref(self) -> sync_pb2.Device:
        return sync_pb2.Device(id=f"id-{self.name}", name=self.name)

    async def add(self, salt: bytes) -> str:
        """The user copies a new song onto this device; it is uploaded at once."""
        return await self.put(wav_bytes(0.05, salt=salt))

    async def put(self, data: bytes) -> str:
        response = await upload(self.client, data, file_pb2.FileMetadata(
            filename=f"{self.name}-{len(self.songs)}.wav"))
        self.songs[response.hash] = data
        return response.hash

    async def remove(self, sha256: str) -> None:
        """The user deletes a song on this device; the server is told."""
        self.songs.pop(sha256)
        await self.client.file.Delete(file_pb2.DeleteRequest(hash=sha256),
                                      metadata=self.client.meta())

    async def sync(self) -> tuple[int, int, int]:
        """One Diff and everything it asks for; returns (uploaded, downloaded, deleted)."""
        to_upload, to_download, to_delete, cursor, _ = await run_diff(
            self.client, [bytes.fromhex(h) for h in self.songs], self.cursor, self.ref)
        for sha in to_delete:
            self.songs.pop(sha.hex())
        for sha in to_upload:
            await upload(self.client, self.songs[sha.hex()], file_pb2.FileMetadata(
                filename=f"{self.name}.wav"))
        downloaded = 0
        for entry in to_download:
            try:
                data, _ = await download(self.client, entry.hash)
            except grpc.aio.AioRpcError as error:  # deleted meanwhile by another device
                assert error.code() == grpc.StatusCode.NOT_FOUND
                continue
            self.songs[entry.hash] = data
            downloaded += 1
        self.cursor = cursor
        return len(to_upload), downloaded, len(to_delete)

    async def close(self) -> None:
        await self.client.channel.close()
