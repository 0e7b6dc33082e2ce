"""services/wire.py frames the bulk messages exactly as protobuf does."""

from __future__ import annotations

import pytest
from google.protobuf.message import DecodeError

from musicsync.proto import file_pb2
from musicsync.services import wire

SIZES = [0, 1, 127, 128, 16_383, 16_384, 65_536, 2_097_151, 2_097_152, 4 * 1024 * 1024]


def payload(size: int) -> bytes:
    return bytes(i % 251 for i in range(min(size, 1000))) * (size // 1000) + bytes(size % 1000)


@pytest.mark.parametrize("size", SIZES)
def test_a_chunk_message_comes_back_as_a_view_of_its_chunk(size):
    data = payload(size)
    message = wire.upload_request(file_pb2.UploadRequest(chunk=data).SerializeToString())
    assert isinstance(message, memoryview)
    assert message == data


def test_a_metadata_message_is_parsed_by_protobuf():
    sent = file_pb2.UploadRequest(metadata=file_pb2.FileMetadata(filename="a.mp3", size=3))
    message = wire.upload_request(sent.SerializeToString())
    assert isinstance(message, file_pb2.UploadRequest)
    assert message == sent


@pytest.mark.parametrize("raw", [
    b"",  # no field at all
    file_pb2.UploadRequest(chunk=b"first").SerializeToString()
    + file_pb2.UploadRequest(chunk=b"second").SerializeToString(),  # the last one wins
    file_pb2.UploadRequest(chunk=b"song").SerializeToString() + b"\x18\x05",  # unknown field
    file_pb2.UploadRequest(metadata=file_pb2.FileMetadata(filename="x")).SerializeToString()
    + file_pb2.UploadRequest(chunk=b"after").SerializeToString(),
])
def test_other_encodings_mean_what_protobuf_says(raw):
    message = wire.upload_request(raw)
    assert isinstance(message, file_pb2.UploadRequest)
    assert message == file_pb2.UploadRequest.FromString(raw)


@pytest.mark.parametrize("raw", [b"\x12\x05abc", b"\x12\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"])
def test_a_truncated_or_malformed_message_is_refused_like_protobuf_does(raw):
    with pytest.raises(DecodeError):
        file_pb2.UploadRequest.FromString(raw)
    with pytest.raises(DecodeError):
        wire.upload_request(raw)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("total", [0, 1, 300, 2**40])
def test_a_chunk_is_encoded_as_protobuf_encodes_the_response(size, total):
    data = payload(size)
    expected = file_pb2.DownloadResponse(chunk=data, total_size=total).SerializeToString()
    assert wire.download_response(wire.Chunk(data, total)) == expected
    assert wire.download_response(wire.Chunk(memoryview(data), total)) == expected
    assert file_pb2.DownloadResponse.FromString(expected).chunk == data


def test_a_response_message_is_serialized_by_protobuf():
    message = file_pb2.DownloadResponse(total_size=12)
    assert wire.download_response(message) == message.SerializeToString()
