"""The musicsync client: a library over the public gRPC API, and the desktop commands.

Nothing here is imported by `musicsync serve`; the client's own dependencies
(rich, platformdirs, watchfiles) are imported where they are used.

    async with Client("music.local:50051") as client:
        await client.login("alice", password)
        async for song in client.list_files():
            print(song.path)
"""

from .api import ChangeFeed, Client
from .errors import (
    ClientError,
    DownloadCorrupt,
    FileChanged,
    NotFound,
    NotSignedIn,
    Refused,
    ServerUnavailable,
)
from .models import (
    ChangeEvent,
    Device,
    DiffResult,
    DownloadResult,
    Heartbeat,
    RemoteFile,
    StatResult,
    UploadResult,
)
from .tokens import SharedTokens, Tokens

__all__ = [
    "ChangeEvent", "ChangeFeed", "Client", "ClientError", "Device", "DiffResult",
    "DownloadCorrupt", "DownloadResult", "FileChanged", "Heartbeat", "NotFound", "NotSignedIn",
    "Refused", "RemoteFile", "ServerUnavailable", "SharedTokens", "StatResult", "Tokens",
    "UploadResult",
]
