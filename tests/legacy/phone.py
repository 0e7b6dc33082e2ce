"""A phone-style client on the legacy wire contract, run as a subprocess by tests.

Usage: python phone.py STUBS_DIR HOST:PORT < script.json > results.json

The stubs are generated from tests/legacy/*.proto (the table of issue 2 only)
into STUBS_DIR; they live in their own process because their descriptors share
file names with musicsync's own. The script is a JSON list of steps; each
result is printed as one JSON list. Steps:
  ["register", username, password, security_key]   -> token
  ["login", username, password]                    -> token
  ["get_sync", token_or_null]                      -> [[hash, filename], ...]
  ["upload", token, filename, hex_bytes, chunk]    -> hash
  ["download", token, hash]                        -> hex bytes
  ["delete", token, hash]                          -> success
A failed call yields {"code": "UNAUTHENTICATED", "details": "..."}.
"""

import json
import sys

import grpc

sys.path.insert(0, sys.argv[1])

import auth_pb2, auth_pb2_grpc, file_pb2, file_pb2_grpc, sync_pb2_grpc  # noqa: E401,E402
from google.protobuf import empty_pb2  # noqa: E402


def metadata(token):
    return (("authorization", f"Bearer {token}"),) if token else ()


def run(channel, step):
    auth = auth_pb2_grpc.AuthServiceStub(channel)
    files = file_pb2_grpc.FileServiceStub(channel)
    sync = sync_pb2_grpc.SyncServiceStub(channel)
    name, *args = step
    if name == "register":
        return auth.Register(auth_pb2.RegisterRequest(
            username=args[0], password=args[1], security_key=args[2])).token
    if name == "login":
        return auth.Login(auth_pb2.LoginRequest(username=args[0], password=args[1])).token
    if name == "get_sync":
        response = sync.GetSync(empty_pb2.Empty(), metadata=metadata(args[0]))
        return [[f.hash, f.filename] for f in response.files]
    if name == "upload":
        token, filename, data, chunk = args[0], args[1], bytes.fromhex(args[2]), args[3]

        def requests():
            yield file_pb2.UploadRequest(metadata=file_pb2.FileMetadata(filename=filename))
            for start in range(0, len(data), chunk):
                yield file_pb2.UploadRequest(chunk=data[start:start + chunk])
        return files.Upload(requests(), metadata=metadata(token)).hash
    if name == "download":
        stream = files.Download(file_pb2.DownloadRequest(hash=args[1]), metadata=metadata(args[0]))
        return b"".join(message.chunk for message in stream).hex()
    if name == "delete":
        return files.Delete(file_pb2.DeleteRequest(hash=args[1]), metadata=metadata(args[0])).success
    raise SystemExit(f"unknown step {name}")


def main():
    with grpc.insecure_channel(sys.argv[2]) as channel:
        results = []
        for step in json.load(sys.stdin):
            try:
                results.append(run(channel, step))
            except grpc.RpcError as error:
                results.append({"code": error.code().name, "details": error.details()})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
