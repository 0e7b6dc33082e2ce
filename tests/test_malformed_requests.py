"""Request bodies that do not decode, and handlers of every shape, through the interceptor."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from musicsync.proto import auth_pb2, file_pb2, library_pb2, sync_pb2

from .helpers import status_of

SERVICES = [auth_pb2.DESCRIPTOR.services_by_name["AuthService"],
            file_pb2.DESCRIPTOR.services_by_name["FileService"],
            sync_pb2.DESCRIPTOR.services_by_name["SyncService"],
            *library_pb2.DESCRIPTOR.services_by_name.values(),
            health_pb2.DESCRIPTOR.services_by_name["Health"]]
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
# A varint whose value never comes: no message type can parse it.
TRUNCATED = b"\x08"


def every_method():
    for service in SERVICES:
        for method in service.methods:
            yield f"/{service.full_name}/{method.name}", method.client_streaming, \
                method.server_streaming


async def raw_status(channel, method: str, client_streaming: bool, server_streaming: bool,
                     messages: list[bytes], metadata=()) -> tuple[grpc.StatusCode, str]:
    """Sends ``messages`` as they are (no serializer) and returns the call's status."""
    if not client_streaming and not server_streaming:
        return await status_of(channel.unary_unary(method)(messages[0], metadata=metadata,
                                                           timeout=10))
    if client_streaming and not server_streaming:
        return await status_of(channel.stream_unary(method)(iter(messages), metadata=metadata,
                                                            timeout=10))
    if server_streaming and not client_streaming:
        call = channel.unary_stream(method)(messages[0], metadata=metadata, timeout=10)
    else:
        call = channel.stream_stream(method)(iter(messages), metadata=metadata, timeout=10)
    try:
        async for _ in call:
            pass
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


def assert_malformed(code: grpc.StatusCode, message: str, method: str) -> None:
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (method, code, message)
    assert "malformed request" in message and "<class" not in message, (method, message)


async def test_undecodable_body_is_invalid_argument_for_every_method(client, alice):
    for method, client_streaming, server_streaming in every_method():
        code, message = await raw_status(client.channel, method, client_streaming,
                                          server_streaming, [TRUNCATED], client.meta())
        assert_malformed(code, message, method)


async def test_undecodable_upload_chunk_and_diff_message_are_invalid_argument(client, alice):
    code, message = await raw_status(client.channel, "/file.FileService/Upload", True, False,
                                     [b"\x12"], client.meta())
    assert_malformed(code, message, "Upload")
    assert "file.UploadRequest" in message
    good = file_pb2.UploadRequest(metadata=file_pb2.FileMetadata(filename="a.wav"))
    code, message = await raw_status(client.channel, "/file.FileService/Upload", True, False,
                                     [good.SerializeToString(), b"\x12"], client.meta())
    assert_malformed(code, message, "Upload")
    code, message = await raw_status(client.channel, "/sync.SyncService/Diff", True, True,
                                     [bytes.fromhex("1280808080808080808001")], client.meta())
    assert_malformed(code, message, "Diff")
    first = sync_pb2.DiffRequest(cursor=0).SerializeToString()
    code, message = await raw_status(client.channel, "/sync.SyncService/Diff", True, True,
                                     [first, TRUNCATED], client.meta())
    assert_malformed(code, message, "Diff")


async def test_undecodable_reflection_request_is_invalid_argument(client):
    code, message = await raw_status(client.channel, REFLECTION, True, True, [TRUNCATED])
    assert_malformed(code, message, REFLECTION)


async def test_health_watch_streams_the_serving_status(client):
    stub = health_pb2_grpc.HealthStub(client.channel)
    call = stub.Watch(health_pb2.HealthCheckRequest(service="file.FileService"))
    async for response in call:
        assert response.status == health_pb2.HealthCheckResponse.SERVING
        break
    call.cancel()
