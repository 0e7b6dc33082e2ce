"""The wire contract: legacy names and numbers, reflection, health, ports."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2
from google.protobuf.descriptor import FieldDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from musicsync.proto import auth_pb2, file_pb2, sync_pb2
from musicsync.server import App

from .conftest import PASSWORD, REGISTRATION_KEY, create_user, make_settings
from .helpers import Client, status_of

LEGACY = Path(__file__).parent / "legacy"
T = FieldDescriptor

# The table of issue 2: (message, field, number, type).
LEGACY_FIELDS = [
    (auth_pb2, "RegisterRequest", "username", 1, T.TYPE_STRING),
    (auth_pb2, "RegisterRequest", "password", 2, T.TYPE_STRING),
    (auth_pb2, "RegisterRequest", "security_key", 3, T.TYPE_STRING),
    (auth_pb2, "RegisterResponse", "token", 1, T.TYPE_STRING),
    (auth_pb2, "LoginResponse", "token", 1, T.TYPE_STRING),
    (auth_pb2, "LoginRequest", "username", 1, T.TYPE_STRING),
    (auth_pb2, "LoginRequest", "password", 2, T.TYPE_STRING),
    (file_pb2, "UploadRequest", "metadata", 1, T.TYPE_MESSAGE),
    (file_pb2, "UploadRequest", "chunk", 2, T.TYPE_BYTES),
    (file_pb2, "FileMetadata", "filename", 1, T.TYPE_STRING),
    (file_pb2, "FileMetadata", "title", 2, T.TYPE_STRING),
    (file_pb2, "FileMetadata", "artist", 3, T.TYPE_STRING),
    (file_pb2, "FileMetadata", "album", 4, T.TYPE_STRING),
    (file_pb2, "FileMetadata", "duration", 5, T.TYPE_INT32),
    (file_pb2, "UploadResponse", "hash", 1, T.TYPE_STRING),
    (file_pb2, "DownloadRequest", "hash", 1, T.TYPE_STRING),
    (file_pb2, "DeleteRequest", "hash", 1, T.TYPE_STRING),
    (file_pb2, "DownloadResponse", "chunk", 1, T.TYPE_BYTES),
    (file_pb2, "DeleteResponse", "success", 1, T.TYPE_BOOL),
    (sync_pb2, "GetSyncResponse", "files", 1, T.TYPE_MESSAGE),
    (sync_pb2, "FileInfo", "hash", 1, T.TYPE_STRING),
    (sync_pb2, "FileInfo", "filename", 2, T.TYPE_STRING),
]
LEGACY_METHODS = [
    (auth_pb2, "AuthService", "Register", "auth.RegisterRequest", "auth.RegisterResponse", False, False),
    (auth_pb2, "AuthService", "Login", "auth.LoginRequest", "auth.LoginResponse", False, False),
    (file_pb2, "FileService", "Upload", "file.UploadRequest", "file.UploadResponse", True, False),
    (file_pb2, "FileService", "Download", "file.DownloadRequest", "file.DownloadResponse", False, True),
    (file_pb2, "FileService", "Delete", "file.DeleteRequest", "file.DeleteResponse", False, False),
    (sync_pb2, "SyncService", "GetSync", "google.protobuf.Empty", "sync.GetSyncResponse", False, False),
]


@pytest.mark.parametrize("module, message, field, number, kind", LEGACY_FIELDS)
def test_legacy_fields_keep_their_names_numbers_and_types(module, message, field, number, kind):
    descriptor = module.DESCRIPTOR.message_types_by_name[message].fields_by_name[field]
    assert (descriptor.number, descriptor.type) == (number, kind)
    assert not descriptor.is_repeated or (message, field) == ("GetSyncResponse", "files")


def test_upload_request_keeps_its_oneof():
    oneof = file_pb2.UploadRequest.DESCRIPTOR.oneofs_by_name["data"]
    assert [f.name for f in oneof.fields] == ["metadata", "chunk"]


@pytest.mark.parametrize("module, service, method, request_type, response_type, client_streams, "
                         "server_streams", LEGACY_METHODS)
def test_legacy_methods_keep_their_names_and_shapes(module, service, method, request_type,
                                                   response_type, client_streams, server_streams):
    descriptor = module.DESCRIPTOR.services_by_name[service].methods_by_name[method]
    assert descriptor.full_name == f"{module.DESCRIPTOR.package}.{service}.{method}"
    assert descriptor.input_type.full_name == request_type
    assert descriptor.output_type.full_name == response_type
    assert descriptor.client_streaming == client_streams
    assert descriptor.server_streaming == server_streams


# -- A phone generated from the table alone --------------------------------------------

@pytest.fixture(scope="session")
def legacy_stubs(tmp_path_factory) -> Path:
    """Python stubs generated from tests/legacy/*.proto (the wire table only)."""
    import grpc_tools
    out = tmp_path_factory.mktemp("legacy_stubs")
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{LEGACY}", f"-I{well_known}",
         f"--python_out={out}", f"--grpc_python_out={out}", "auth.proto", "file.proto",
         "sync.proto"], check=True)
    return out


async def run_phone(stubs: Path, port: int, steps: list) -> list:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(LEGACY / "phone.py"), str(stubs), f"127.0.0.1:{port}",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    out, _ = await process.communicate(json.dumps(steps).encode())
    assert process.returncode == 0
    return json.loads(out)


async def test_phone_with_table_only_stubs_registers_logs_in_and_syncs(app, legacy_stubs):
    register, login, listing, anonymous = await run_phone(legacy_stubs, app.ports["auth"], [
        ["register", "phone", PASSWORD, REGISTRATION_KEY],
        ["login", "phone", PASSWORD],
        ["get_sync", None],
        ["get_sync", None],
    ])
    assert register.count(".") == 2 and login.count(".") == 2  # JWTs
    assert listing == anonymous == {"code": "UNAUTHENTICATED", "details": listing["details"]}
    [files] = await run_phone(legacy_stubs, app.ports["sync"], [["get_sync", login]])
    assert files == []


async def test_phone_without_token_works_in_anonymous_mode(tmp_path, legacy_stubs):
    settings = make_settings(tmp_path, anonymous_user="phone")
    await create_user(settings, "phone")  # the operator's `musicsync user add phone`
    async with App(settings) as app:
        [files] = await run_phone(legacy_stubs, app.ports["auth"], [["get_sync", None]])
    assert files == []


# -- Reflection, health, ports ----------------------------------------------------------

async def list_services(port: int) -> set[str]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(
            list_services="")]))
        async for response in call:
            return {service.name for service in response.list_services_response.service}
    return set()


async def test_reflection_lists_every_service_on_every_port(app):
    expected = {"auth.AuthService", "file.FileService", "sync.SyncService",
                "library.PlaylistService", "library.ListeningService", "library.ArtService",
                "library.BrowseService",
                "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
                "grpc.reflection.v1.ServerReflection"}
    for port in app.ports.values():
        assert await list_services(port) == expected


async def test_reflection_describes_methods_for_clients_without_protos(app):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.ports['file']}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="sync.SyncService")]))
        async for response in call:
            files = response.file_descriptor_response.file_descriptor_proto
            break
    from google.protobuf import descriptor_pb2
    names = {descriptor_pb2.FileDescriptorProto.FromString(f).name for f in files}
    assert "sync.proto" in names and "file.proto" in names  # sync.proto imports file.proto


async def test_reflection_v1_lists_and_describes_services_like_v1alpha(app):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.ports['sync']}") as channel:
        # A v1 client: the method path of grpc.reflection.v1 (its messages are v1alpha's).
        call = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
        responses = [r async for r in call(iter([
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(
                file_containing_symbol="grpc.reflection.v1.ServerReflection"),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="file.FileService")]))]
    listed = {service.name for service in responses[0].list_services_response.service}
    assert {"file.FileService", "grpc.reflection.v1.ServerReflection"} <= listed
    from google.protobuf import descriptor_pb2
    for response, package in ((responses[1], "grpc.reflection.v1"), (responses[2], "file")):
        files = [descriptor_pb2.FileDescriptorProto.FromString(f)
                 for f in response.file_descriptor_response.file_descriptor_proto]
        assert package in {f.package for f in files}, response


@pytest.mark.skipif(shutil.which("npx") is None, reason="buf comes from the npm registry (npx)")
async def test_buf_curl_lists_services_through_reflection(app):
    process = await asyncio.create_subprocess_exec(
        "npx", "--yes", "@bufbuild/buf@1.75.0", "curl", "--protocol", "grpc", "--http2-prior-knowledge",
        "--list-methods", f"http://127.0.0.1:{app.ports['auth']}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    methods = set(out.decode().split())
    assert {"auth.AuthService/Register", "auth.AuthService/Login", "file.FileService/Upload",
            "file.FileService/Download", "file.FileService/Delete",
            "sync.SyncService/GetSync"} <= methods


async def health_of(port: int, service: str) -> health_pb2.HealthCheckResponse.ServingStatus:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return (await stub.Check(health_pb2.HealthCheckRequest(service=service))).status


async def test_health_reports_serving_for_every_service(app):
    for service in ("", "auth.AuthService", "file.FileService", "sync.SyncService"):
        assert await health_of(app.ports["sync"], service) == health_pb2.HealthCheckResponse.SERVING


async def test_every_port_serves_every_service(app):
    for port in app.ports.values():
        async with Client(app, port=port) as client:
            token = (await client.auth.Register(auth_pb2.RegisterRequest(
                username=f"user{port}", password=PASSWORD, security_key=REGISTRATION_KEY))).token
            await client.sync.GetSync(empty_pb2.Empty(), metadata=client.meta(token))


async def test_single_service_mode_serves_only_that_service(tmp_path):
    async with App(make_settings(tmp_path, port=0), services=("sync",)) as app:
        assert set(app.ports) == {"sync"}
        async with Client(app) as client:
            code, _ = await status_of(client.auth.Login(auth_pb2.LoginRequest(
                username="x", password="y")))
            assert code == grpc.StatusCode.UNIMPLEMENTED
            code, _ = await status_of(client.sync.GetSync(empty_pb2.Empty()))
            assert code == grpc.StatusCode.UNAUTHENTICATED
        assert await list_services(app.ports["sync"]) == {
            "sync.SyncService", "library.PlaylistService", "library.ListeningService",
            "library.BrowseService", "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection"}
        assert await health_of(app.ports["sync"], "sync.SyncService") == \
            health_pb2.HealthCheckResponse.SERVING


async def test_phone_with_table_only_stubs_uploads_downloads_and_deletes(app, legacy_stubs):
    from .transfer import wav_bytes
    song = wav_bytes(2, salt=b"phone").hex()
    [token] = await run_phone(legacy_stubs, app.ports["auth"], [
        ["register", "phone", PASSWORD, REGISTRATION_KEY]])
    sha, listing = await run_phone(legacy_stubs, app.ports["file"], [
        ["upload", token, "Song.wav", song, 64 * 1024], ["get_sync", token]])
    assert listing == [[sha, "Song.wav"]]
    data, deleted, again, after = await run_phone(legacy_stubs, app.ports["sync"], [
        ["download", token, sha], ["delete", token, sha], ["delete", token, sha],
        ["get_sync", token]])
    assert data == song
    assert (deleted, again, after) == (True, False, [])
