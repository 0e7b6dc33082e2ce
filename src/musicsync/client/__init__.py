"""The musicsync client: a library over the public gRPC API, and the desktop commands.

    async with Client("music.local:50051") as client:
        await client.login("alice", password)
        async for song in client.list_files():
            print(song.path)

Nothing here is imported by `musicsync serve`. The public names are loaded on first use,
so that `musicsync --help` and the server's commands do not pay for the client library;
the client's own dependencies (rich, platformdirs, watchfiles) are imported where used.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Client": "api", "ChangeFeed": "api",
    "ClientError": "errors", "DownloadCorrupt": "errors", "FileChanged": "errors",
    "NotFound": "errors", "NotSignedIn": "errors", "Refused": "errors",
    "ServerUnavailable": "errors",
    "ChangeEvent": "models", "Device": "models", "DiffResult": "models",
    "DownloadResult": "models", "Heartbeat": "models", "RemoteFile": "models",
    "StatResult": "models", "UploadResult": "models",
    "SharedTokens": "tokens", "Tokens": "tokens",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
