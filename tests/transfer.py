"""Helpers for File service tests: songs to send, and upload/download over the wire."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import grpc

from musicsync.proto import file_pb2

CHUNK = 64 * 1024  # what the phone sends


def wav_bytes(seconds: float = 1.0, *, salt: bytes = b"", rate: int = 8000) -> bytes:
    """A valid PCM WAV; ``salt`` makes its bytes (and hash) unique."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        frames = int(rate * seconds)
        payload = (salt + b"\0" * (frames * 2))[:frames * 2]
        out.writeframes(payload)
    return buffer.getvalue()


def upload_requests(data: bytes, metadata: file_pb2.FileMetadata | None = None,
                    chunk: int = CHUNK):
    if metadata is not None:
        yield file_pb2.UploadRequest(metadata=metadata)
    for start in range(0, len(data), chunk):
        yield file_pb2.UploadRequest(chunk=data[start:start + chunk])


async def upload(client, data: bytes, metadata: file_pb2.FileMetadata | None = None, *,
                 chunk: int = CHUNK, token: str | None = None) -> file_pb2.UploadResponse:
    return await client.file.Upload(upload_requests(data, metadata, chunk),
                                    metadata=client.meta(token))


async def download(client, sha256: str, *, token: str | None = None, **fields) -> tuple[bytes, list]:
    """The bytes of a download and its messages."""
    messages = [m async for m in client.file.Download(
        file_pb2.DownloadRequest(hash=sha256, **fields), metadata=client.meta(token))]
    return b"".join(m.chunk for m in messages), messages


async def stream_status(stream) -> tuple[grpc.StatusCode, str]:
    try:
        async for _ in stream:
            pass
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


def stored_blobs(data_dir: Path) -> list[Path]:
    """Every committed blob file of a local store."""
    return [p for p in (data_dir / "blobs").glob("??/??/*") if p.is_file()]


def leftovers(data_dir: Path) -> list[Path]:
    """Temporary and partial files of a local store."""
    blobs = data_dir / "blobs"
    return [*(blobs / ".tmp").glob("*"), *(blobs / ".partial").glob("*")]
