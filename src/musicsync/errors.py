"""The one exception tree of musicsync.

Every error a client may see is a ``MusicsyncError`` carrying its gRPC status;
the interceptor turns it into that status with its message. Anything else that
escapes a handler is a bug: it is logged with its traceback and the client gets
a generic INTERNAL.

    MusicsyncError
     ├── InvalidArgument      INVALID_ARGUMENT
     ├── NotFound             NOT_FOUND
     ├── AlreadyExists        ALREADY_EXISTS
     ├── Unauthenticated      UNAUTHENTICATED
     ├── PermissionDenied     PERMISSION_DENIED
     ├── FailedPrecondition   FAILED_PRECONDITION
     ├── ResourceExhausted    RESOURCE_EXHAUSTED
     ├── DataLoss             DATA_LOSS
     ├── Unavailable          UNAVAILABLE (StorageUnavailable: the blob store)
     └── DeadlineExceeded     DEADLINE_EXCEEDED
"""

from __future__ import annotations

import grpc


class MusicsyncError(Exception):
    """An error meant for the client: a gRPC status and a message a person can act on."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(MusicsyncError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(MusicsyncError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(MusicsyncError):
    code = grpc.StatusCode.ALREADY_EXISTS


class Unauthenticated(MusicsyncError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(MusicsyncError):
    code = grpc.StatusCode.PERMISSION_DENIED


class FailedPrecondition(MusicsyncError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(MusicsyncError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Aborted(MusicsyncError):
    """A conflict with a concurrent change: the client may read again and retry."""

    code = grpc.StatusCode.ABORTED


class DataLoss(MusicsyncError):
    code = grpc.StatusCode.DATA_LOSS


class Unavailable(MusicsyncError):
    code = grpc.StatusCode.UNAVAILABLE


class StorageUnavailable(Unavailable):
    """The blob store cannot be reached or did not answer in time."""


class StorageFull(ResourceExhausted):
    """The blob store has no room left (the operator must free some)."""


class DeadlineExceeded(MusicsyncError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class ConfigError(Exception):
    """Settings that cannot work; raised before anything starts."""
