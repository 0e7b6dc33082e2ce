"""`Client`: the musicsync API for programs, over one channel, with tokens kept fresh."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path

import grpc

from ..proto import auth_pb2, auth_pb2_grpc, file_pb2, file_pb2_grpc, sync_pb2, sync_pb2_grpc
from . import transfer
from .connection import open_channel, service_targets
from .errors import ClientError, NotSignedIn, translate
from .listening import Listening
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
from .tokens import SharedTokens, TokenKeeper, Tokens

STAT_BATCH = 10_000  # hashes per Stat call (the server's bound)
DIFF_BATCH = 50_000  # hashes per Diff message (the server's bound)


class Client:
    """An async client of one musicsync server; use ``async with`` or call ``close()``.

    ``tokens`` continue an earlier sign-in; every new pair (sign-in, refresh) is passed to
    ``on_tokens`` so the caller can keep it. ``device`` identifies this installation in
    Diff, Changes, Watch and Ack. ``bytes_sent`` and ``bytes_received`` count song bytes;
    ``listing_bytes`` the bytes of the library's listings and changes received (ListFiles,
    Diff, Changes answers).
    """

    def __init__(self, target: str, *, tls: bool = False, root_certificates: bytes | None = None,
                 server_name: str | None = None, tokens: Tokens | None = None,
                 on_tokens: Callable[[Tokens], None] | None = None,
                 device: Device | None = None, clock: Callable[[], float] = time.time,
                 shared_tokens: SharedTokens | None = None) -> None:
        self.target = target
        self.device = device
        self.bytes_sent = 0
        self.bytes_received = 0
        self.listing_bytes = 0
        # One channel per address: a single one when the target names a port.
        self._channels: dict[str, grpc.aio.Channel] = {}
        for address in service_targets(target).values():
            if address not in self._channels:
                self._channels[address] = open_channel(
                    address, tls=tls, root_certificates=root_certificates,
                    server_name=server_name)
        addresses = service_targets(target)
        self._auth = auth_pb2_grpc.AuthServiceStub(self._channels[addresses["auth"]])
        self._file = file_pb2_grpc.FileServiceStub(self._channels[addresses["file"]])
        self._sync = sync_pb2_grpc.SyncServiceStub(self._channels[addresses["sync"]])
        self._sync_channel = self._channels[addresses["sync"]]  # the player services' too
        self._tokens = TokenKeeper(self._auth, target, tokens, on_tokens, clock, shared_tokens)
        self._closed = False
        self._clock = clock
        self._listening: Listening | None = None
        self._playlists = None

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            for channel in self._channels.values():
                await channel.close()

    @property
    def listening(self) -> Listening:
        """Stars, ratings and plays (client/listening.py)."""
        if self._listening is None:
            self._listening = Listening(self, self._sync_channel, self._clock)
        return self._listening

    @property
    def playlists(self):
        """The user's playlists (client/playlists.py: list, get, create, edit, save...)."""
        if self._playlists is None:
            from ..proto import library_pb2_grpc
            from .playlists import Playlists
            self._playlists = Playlists(
                self, library_pb2_grpc.PlaylistServiceStub(self._sync_channel))
        return self._playlists

    @property
    def tokens(self) -> Tokens | None:
        """The current token pair (None before signing in)."""
        return self._tokens.tokens

    # -- calls: fresh token first, one retry after a refresh, errors translated ----------

    async def _metadata(self) -> tuple[tuple[str, str], ...]:
        if self._closed:
            raise ClientError("this client is closed")
        token = await self._tokens.access_token()
        return (("authorization", f"Bearer {token}"),) if token else ()

    async def _unary(self, method, request):
        """Calls a unary (or stream-unary, with a fresh request iterator) method."""
        for attempt in (1, 2):
            metadata = await self._metadata()
            used = self._tokens.tokens  # refreshed below only if no other call did meanwhile
            try:
                return await method(request, metadata=metadata)
            except grpc.aio.AioRpcError as error:
                if (attempt == 1 and error.code() == grpc.StatusCode.UNAUTHENTICATED
                        and used is not None):
                    await self._tokens.refresh(used)
                    continue
                raise translate(error, self.target) from error

    async def _auth_call(self, method, request, username: str = ""):
        if self._closed:
            raise ClientError("this client is closed")
        try:
            return await method(request)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.UNAUTHENTICATED:  # e.g. a wrong password
                who = f" of {username}" if username else ""
                raise NotSignedIn(f"{self.target} refused the sign-in{who}: "
                                  f"{error.details()}") from error
            raise translate(error, self.target) from error

    # -- accounts --------------------------------------------------------------------------

    async def login(self, username: str, password: str) -> Tokens:
        """Signs in; the new pair is kept and reported to on_tokens. Wrong password: NotSignedIn."""
        response = await self._auth_call(self._auth.Login, auth_pb2.LoginRequest(
            username=username, password=password), username)
        self._tokens.set(Tokens.from_response(response))
        return self._tokens.tokens

    async def register(self, username: str, password: str, security_key: str) -> Tokens:
        """Creates an account with the server's registration key, and signs in."""
        response = await self._auth_call(self._auth.Register, auth_pb2.RegisterRequest(
            username=username, password=password, security_key=security_key))
        self._tokens.set(Tokens.from_response(response))
        return self._tokens.tokens

    async def logout(self) -> None:
        """Ends this sign-in on the server (its refresh token stops working) and forgets it."""
        tokens = self._tokens.tokens
        self._tokens.tokens = None
        if tokens is not None and tokens.refresh_token:
            await self._auth_call(self._auth.Logout, auth_pb2.LogoutRequest(
                refresh_token=tokens.refresh_token))

    # -- the library -----------------------------------------------------------------------

    async def list_files(self, page_size: int = 500) -> AsyncIterator[RemoteFile]:
        """Every song of the library, in the server's stable order, a page at a time."""
        token = ""
        while True:
            page = await self._unary(self._sync.ListFiles, sync_pb2.ListFilesRequest(
                page_size=page_size, page_token=token))
            self.listing_bytes += page.ByteSize()
            for entry in page.files:
                yield RemoteFile.from_proto(entry)
            token = page.next_page_token
            if not token:
                return

    async def stat(self, hashes: Iterable[str]) -> StatResult:
        """Which of ``hashes`` (lowercase hex) the library holds, with their entries."""
        found, missing = [], []
        hashes = list(hashes)
        for start in range(0, len(hashes), STAT_BATCH):
            answer = await self._unary(self._file.Stat, file_pb2.StatRequest(
                hashes=hashes[start:start + STAT_BATCH]))
            found.extend(RemoteFile.from_proto(entry) for entry in answer.files)
            missing.extend(answer.missing)
        return StatResult(found, missing)

    async def delete(self, hash: str) -> bool:
        """Removes a song from the library; True if it was there."""
        answer = await self._unary(self._file.Delete, file_pb2.DeleteRequest(hash=hash))
        return answer.success

    async def move(self, hash: str, path: str) -> RemoteFile:
        """Moves or renames a song to ``path`` without sending its bytes again."""
        answer = await self._unary(self._file.Move, file_pb2.MoveRequest(hash=hash, path=path))
        return RemoteFile.from_proto(answer.file)

    # -- transfers -------------------------------------------------------------------------

    async def upload(self, source: Path, *, path: str | None = None, replaces: str | None = None,
                     sha256: str | None = None, new: bool = False,
                     progress: Callable[[int], None] | None = None) -> UploadResult:
        """Uploads a song file, resuming where the server stands (only missing bytes go).

        ``path`` files it in the folder tree ("Artist/Album/01 Song.flac"; default: its
        file name); ``replaces`` names the hash of the entry it replaces; ``sha256`` skips
        hashing the file first. ``new``: the caller knows the library lacks the song (from
        a listing), so a small file goes at once, without asking the server first (if the
        library has it after all, its bytes were sent for nothing, and no harm done).
        ``progress`` is called with the bytes the server has so far. Raises FileChanged if
        the file changes meanwhile.
        """
        return await transfer.upload(self, Path(source), path=path, replaces=replaces,
                                     sha256=sha256, new=new, progress=progress)

    async def download(self, hash: str, dest: Path, *,
                       progress: Callable[[int], None] | None = None) -> DownloadResult:
        """Downloads a song to ``dest``, resuming an earlier partial download of it.

        Bytes collect in a hidden partial file beside ``dest``; only once their SHA-256
        checks out are they renamed to ``dest`` (replacing it). On a mismatch the partial
        is removed and DownloadCorrupt raised.
        """
        return await transfer.download(self, hash, Path(dest), progress=progress)

    # -- sync ------------------------------------------------------------------------------

    def _device(self) -> sync_pb2.Device | None:
        return self.device.message() if self.device else None

    async def diff(self, hashes: Iterable[bytes | str], cursor: int = 0) -> DiffResult:
        """What to upload, download and delete locally, for the songs this device holds.

        ``hashes`` are SHA-256 values, 32 raw bytes or 64 hex characters each; ``cursor``
        is the one of the device's last completed sync (0: a full diff).
        """
        raw = [h if isinstance(h, bytes) else bytes.fromhex(h) for h in hashes]

        def requests():
            first = sync_pb2.DiffRequest(hashes=raw[:DIFF_BATCH], cursor=cursor,
                                         device=self._device())
            yield first
            for start in range(DIFF_BATCH, len(raw), DIFF_BATCH):
                yield sync_pb2.DiffRequest(hashes=raw[start:start + DIFF_BATCH])

        for attempt in (1, 2):
            upload, download, delete, new_cursor = [], [], [], cursor
            try:
                async for part in self._sync.Diff(requests(), metadata=await self._metadata()):
                    self.listing_bytes += part.ByteSize()
                    upload.extend(h.hex() for h in part.upload)
                    download.extend(RemoteFile.from_proto(e) for e in part.download)
                    delete.extend(h.hex() for h in part.delete)
                    new_cursor = part.cursor or new_cursor
                return DiffResult(upload, download, delete, new_cursor)
            except grpc.aio.AioRpcError as error:
                if attempt == 1 and error.code() == grpc.StatusCode.UNAUTHENTICATED:
                    await self._tokens.refresh(self._tokens.tokens)
                    continue
                raise translate(error, self.target) from error
        raise AssertionError("unreachable")

    def changes(self, since: int = 0, *, page_size: int = 500) -> ChangeFeed:
        """The change events after ``since``, every page of them: ``async for`` over it,
        then read its ``cursor`` (the position after the last event)."""
        return ChangeFeed(self, since, page_size)

    async def changes_page(self, since: int = 0, *, limit: int = 500
                           ) -> tuple[list[ChangeEvent], int, bool]:
        """One page of Changes: (the events after ``since``, at most ``limit`` of them;
        the cursor after them; whether more wait)."""
        page = await self._unary(self._sync.Changes, sync_pb2.ChangesRequest(
            since=since, limit=limit, device=self._device()))
        self.listing_bytes += page.ByteSize()
        return ([ChangeEvent.from_proto(event) for event in page.events],
                page.cursor or since, page.has_more)

    async def watch(self, since: int = 0, *, heartbeat_seconds: int = 30,
                    subjects: Sequence[int] = ()) -> AsyncIterator[ChangeEvent | Heartbeat]:
        """The change events after ``since``, then each new one as it happens, with
        heartbeats while nothing does; runs until the caller stops iterating or the server
        ends the stream (see livefeed.LiveFeed for a feed that outlives dropped streams).
        ``subjects`` (sync.Subject values): what to hear of besides nothing but songs."""
        request = sync_pb2.WatchRequest(since=since, device=self._device(),
                                        heartbeat_seconds=heartbeat_seconds,
                                        subjects=subjects)
        for attempt in (1, 2):
            call = self._sync.Watch(request, metadata=await self._metadata())
            try:
                async for message in call:
                    if message.WhichOneof("kind") == "event":
                        yield ChangeEvent.from_proto(message.event, message.cursor)
                    else:
                        yield Heartbeat(message.heartbeat.at, message.cursor)
                return
            except grpc.aio.AioRpcError as error:
                if attempt == 1 and error.code() == grpc.StatusCode.UNAUTHENTICATED:
                    await self._tokens.refresh(self._tokens.tokens)
                    continue
                raise translate(error, self.target) from error
            finally:
                call.cancel()

    async def ack(self, cursor: int) -> None:
        """Records that this device has applied every change up to ``cursor``."""
        await self._unary(self._sync.Ack, sync_pb2.AckRequest(device=self._device(),
                                                              cursor=cursor))


class ChangeFeed:
    """The pages of Changes after a cursor as one stream of events; ``cursor`` follows them."""

    def __init__(self, client: Client, since: int, page_size: int) -> None:
        self._client = client
        self.cursor = since
        self._page_size = page_size

    async def __aiter__(self) -> AsyncIterator[ChangeEvent]:
        while True:
            events, cursor, more = await self._client.changes_page(self.cursor,
                                                                   limit=self._page_size)
            for event in events:
                yield event
            self.cursor = cursor
            if not more or not events:
                return
