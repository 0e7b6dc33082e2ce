"""What the client raises: one tree, and the one place gRPC errors are translated.

    ClientError                  anything the client reports; ``message`` says what to do
    ├── ServerUnavailable        the server cannot be reached (down, wrong address, TLS mismatch)
    ├── NotSignedIn              no sign-in, or the server ended it: run `musicsync login`
    ├── NotFound                 the song (or upload session) is not in the library
    ├── Refused(code, message)   any other refusal by the server, with its status and message
    ├── FileChanged              a file changed while it was being uploaded
    └── DownloadCorrupt          downloaded bytes did not hash to the song's SHA-256
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import grpc


class ClientError(Exception):
    """Base of the client's errors; ``message`` is written for a person."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ServerUnavailable(ClientError):
    """The server could not be reached."""


class NotSignedIn(ClientError):
    """No valid sign-in: the call needs `musicsync login` (or Client.login) first."""


class NotFound(ClientError):
    """The server has no such song (or upload session) in the caller's library."""


class Refused(ClientError):
    """The server refused the call; ``code`` is its gRPC status."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class FileChanged(ClientError):
    """The local file changed while it was being uploaded (its hash or size no longer match)."""


class DownloadCorrupt(ClientError):
    """The bytes downloaded do not hash to the song's SHA-256; the partial file was removed."""


SIGN_IN_AGAIN = "run `musicsync login SERVER` again"


def translate(error: grpc.aio.AioRpcError, target: str) -> ClientError:
    """The client exception for a failed call to ``target``, carrying the server's message."""
    code, details = error.code(), error.details() or ""
    if code == grpc.StatusCode.UNAVAILABLE:
        return ServerUnavailable(f"cannot reach the musicsync server at {target}: {details} "
                                 "(is it running, and is the address right? a server that "
                                 "speaks TLS needs --tls)")
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return NotSignedIn(f"not signed in at {target}: {details}; {SIGN_IN_AGAIN}")
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFound(details or "not found")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return ServerUnavailable(f"the server at {target} did not answer in time: {details}")
    return Refused(code, details or code.name.lower().replace("_", " "))


@contextlib.contextmanager
def translated(target: str) -> Iterator[None]:
    """Turns a failed gRPC call inside the block into the matching ClientError."""
    try:
        yield
    except grpc.aio.AioRpcError as error:
        raise translate(error, target) from error
