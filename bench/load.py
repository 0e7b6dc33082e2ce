"""The load of tests/test_load.py and bench/soak.py: devices of several users at once.

Each user has a few devices; each device, on its own channels, runs a seeded
random mix of calls: upload a new song, download one of its user's songs,
delete one of its own songs, Diff from its cursor and apply the answer, and
look at the library (ListFiles, Stat, with another user's song among the
hashes asked about). A ``Ledger`` per user records what the server
acknowledged (every upload answered OK, every delete answered OK), and the
checks compare the server with it:

- nothing lost: every acknowledged upload not deleted since is listed and
  downloads with its SHA-256; Diff never asks a device to upload a song the
  server acknowledged;
- nothing duplicated: ListFiles names each song once;
- nothing of one user shown to another: ListFiles, Changes, Diff and Stat of
  each user name only hashes that user uploaded;
- every device converges: after the load, a Diff from its cursor leaves it
  holding exactly its user's songs, and Changes from 0 replays to them.

Some songs are uploaded by every user (one blob, several owners); users of
odd number delete them, the others must keep them.

Everything talks to the given addresses only (127.0.0.1 in the test and the
bench). Loops are bounded by a number of steps and a deadline.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import random
import time
import wave
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc

from musicsync.proto import (auth_pb2, auth_pb2_grpc, file_pb2, file_pb2_grpc, sync_pb2,
                             sync_pb2_grpc)

PASSWORD = "load test password"
SHARED_SONGS = 2  # songs every user uploads
DIFF_BATCH = 50_000
LIST_PAGE = 1000
DELETED = sync_pb2.CHANGE_KIND_DELETED
# Operations of a device and their weights.
MIX = (("upload", 30), ("download", 25), ("delete", 15), ("diff", 22), ("look", 8))
# A user's library stops growing here: devices delete instead of uploading.
MAX_LIVE_SONGS = 120


def song(salt: str, frames: int) -> bytes:
    """A valid mono 8 kHz WAV of ``frames`` samples, unique for ``salt``."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes((salt.encode() + bytes(frames * 2))[:frames * 2])
    return buffer.getvalue()


@dataclass(frozen=True)
class Addresses:
    """Where each service answers ("127.0.0.1:port"); one address for all in one process."""

    auth: str
    file: str
    sync: str


@dataclass
class Stats:
    """Latency per RPC (seconds) and failures by (RPC, status)."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter = field(default_factory=Counter)
    # Correct answers about a song deleted meanwhile by another device.
    gone: int = 0

    def record(self, rpc: str, seconds: float) -> None:
        self.latencies.setdefault(rpc, []).append(seconds)

    @property
    def calls(self) -> int:
        return sum(len(v) for v in self.latencies.values()) + sum(self.errors.values())


@dataclass
class Ledger:
    """What the server acknowledged for one user."""

    name: str
    recipes: dict[str, tuple[str, int]] = field(default_factory=dict)  # sha -> (salt, frames)
    live: set[str] = field(default_factory=set)
    deleting: set[str] = field(default_factory=set)  # Delete sent, answer not yet seen
    deleted: set[str] = field(default_factory=set)

    def may_be_gone(self, sha: str) -> bool:
        return sha in self.deleting or sha in self.deleted


class Problems(list):
    """Invariant violations seen during the load; ``strict`` raises at the first."""

    def __init__(self, strict: bool) -> None:
        super().__init__()
        self.strict = strict

    def add(self, text: str) -> None:
        self.append(text)
        if self.strict:
            raise AssertionError(text)


class Channels:
    """One channel per distinct address, with a stub for each service."""

    def __init__(self, addresses: Addresses) -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}
        self.auth = auth_pb2_grpc.AuthServiceStub(self._channel(addresses.auth))
        self.file = file_pb2_grpc.FileServiceStub(self._channel(addresses.file))
        self.sync = sync_pb2_grpc.SyncServiceStub(self._channel(addresses.sync))

    def _channel(self, address: str) -> grpc.aio.Channel:
        if address not in self._channels:
            self._channels[address] = grpc.aio.insecure_channel(address)
        return self._channels[address]

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()


class Device:
    """A player of one user: the songs it holds and its cursor, kept in step by Diff."""

    def __init__(self, user: User, number: int, seed: int) -> None:
        self.user = user
        self.name = f"{user.ledger.name}-device{number}"
        self.number = number
        self.random = random.Random(seed)
        self.held: set[str] = set()
        self.own: list[str] = []  # songs this device uploaded, live as far as it knows
        self.cursor = 0
        self.uploads = 0
        self.channels = Channels(user.addresses)

    @property
    def meta(self):
        return self.user.meta

    @property
    def ref(self) -> sync_pb2.Device:
        return sync_pb2.Device(id=self.name, name=self.name)

    async def timed(self, rpc: str, call: Callable[[], Awaitable], *, gone_ok: str = ""):
        """Runs a call, recording its latency; None when it failed (the failure recorded).

        ``gone_ok``: a song whose NOT_FOUND is a correct answer if it was deleted meanwhile.
        """
        stats = self.user.load.stats
        started = time.perf_counter()
        try:
            result = await call()
        except grpc.aio.AioRpcError as error:
            if (gone_ok and error.code() == grpc.StatusCode.NOT_FOUND
                    and self.user.ledger.may_be_gone(gone_ok)):
                stats.gone += 1
                return None
            stats.errors[(rpc, error.code().name)] += 1
            if self.user.load.problems.strict:
                raise
            return None
        stats.record(rpc, time.perf_counter() - started)
        return result

    # -- Operations --------------------------------------------------------------------

    async def upload_new(self) -> None:
        self.uploads += 1
        salt = f"{self.name} song {self.uploads} {self.user.load.run_id}"
        frames = 1000 + self.random.randrange(6000)
        await self.upload(salt, frames, f"{self.name} {self.uploads}.wav")

    async def upload(self, salt: str, frames: int, filename: str, *, own: bool = True
                     ) -> str | None:
        """Uploads a song; with ``own``, this device may delete it later."""
        data = song(salt, frames)
        sha = hashlib.sha256(data).hexdigest()
        ledger = self.user.ledger
        # Known as this user's before it is sent: a Diff of another device may see it
        # committed before this device reads the answer.
        ledger.recipes[sha] = (salt, frames)

        def requests():
            yield file_pb2.UploadRequest(metadata=file_pb2.FileMetadata(filename=filename))
            yield file_pb2.UploadRequest(chunk=data)
        response = await self.timed("Upload", lambda: self.channels.file.Upload(
            requests(), metadata=self.meta))
        if response is None:
            return None
        if response.hash != sha:
            self.user.load.problems.add(f"{self.name}: upload answered {response.hash}, "
                                        f"its SHA-256 is {sha}")
        ledger.live.add(sha)
        ledger.deleted.discard(sha)
        self.held.add(sha)
        if own:
            self.own.append(sha)
        return sha

    async def download(self, sha: str) -> bool:
        """Downloads a song of this user and checks its bytes; False if deleted meanwhile."""
        async def call():
            return [m.chunk async for m in self.channels.file.Download(
                file_pb2.DownloadRequest(hash=sha), metadata=self.meta)]
        chunks = await self.timed("Download", call, gone_ok=sha)
        if chunks is None:
            return False
        data = b"".join(chunks)
        if hashlib.sha256(data).hexdigest() != sha:
            self.user.load.problems.add(f"{self.name}: download of {sha} has another SHA-256")
        return True

    async def download_any(self) -> None:
        live = sorted(self.user.ledger.live)
        if live:
            await self.download(self.random.choice(live))

    async def delete_own(self) -> None:
        ledger = self.user.ledger
        mine = [sha for sha in self.own if sha in ledger.live and sha not in ledger.deleting]
        if not mine:
            return await self.upload_new()
        sha = self.random.choice(mine)
        self.own.remove(sha)
        if await self.delete(sha):
            self.held.discard(sha)

    async def delete(self, sha: str) -> bool:
        """Deletes a song, keeping the ledger: whether the server acknowledged it."""
        ledger = self.user.ledger
        ledger.deleting.add(sha)
        try:
            answer = await self.timed("Delete", lambda: self.channels.file.Delete(
                file_pb2.DeleteRequest(hash=sha), metadata=self.meta))
        finally:
            ledger.deleting.discard(sha)
        if answer is not None:
            ledger.live.discard(sha)
            ledger.deleted.add(sha)
        return answer is not None

    async def diff(self) -> None:
        """One Diff from this device's cursor, and everything it asks for."""
        def requests():
            held = [bytes.fromhex(h) for h in sorted(self.held)]
            yield sync_pb2.DiffRequest(hashes=held[:DIFF_BATCH], cursor=self.cursor,
                                       device=self.ref)
            for start in range(DIFF_BATCH, len(held), DIFF_BATCH):
                yield sync_pb2.DiffRequest(hashes=held[start:start + DIFF_BATCH])

        async def call():
            return [m async for m in self.channels.sync.Diff(requests(), metadata=self.meta)]
        answers = await self.timed("Diff", call)
        if answers is None:
            return
        ledger, problems = self.user.ledger, self.user.load.problems
        for answer in answers:
            for sha in (h.hex() for h in answer.delete):
                self.held.discard(sha)
            for sha in (h.hex() for h in answer.upload):
                state = "deleted since" if sha in ledger.deleted else "live"
                problems.add(f"{self.name}: Diff asked to upload {sha}, which the server "
                             f"acknowledged ({state})")
                salt, frames = ledger.recipes[sha]
                await self.upload(salt, frames, "again.wav", own=False)
            for entry in answer.download:
                if entry.hash not in ledger.recipes:
                    problems.add(f"{self.name}: Diff offered {entry.hash}, not a song of "
                                 f"{ledger.name}")
                elif await self.download(entry.hash):
                    self.held.add(entry.hash)
        if answers:
            self.cursor = answers[-1].cursor

    async def look(self) -> None:
        """ListFiles (first page) and Stat of a few songs, one of them another user's."""
        ledger, problems = self.user.ledger, self.user.load.problems
        page = await self.timed("ListFiles", lambda: self.channels.sync.ListFiles(
            sync_pb2.ListFilesRequest(page_size=LIST_PAGE), metadata=self.meta))
        if page is not None:
            for entry in page.files:
                if entry.hash not in ledger.recipes:
                    problems.add(f"{self.name}: ListFiles shows {entry.hash}, not a song of "
                                 f"{ledger.name}")
        asked = self.random.sample(sorted(ledger.live), min(3, len(ledger.live)))
        foreign = self.user.load.foreign_song(self.user)
        stat = await self.timed("Stat", lambda: self.channels.file.Stat(
            file_pb2.StatRequest(hashes=[*asked, *foreign]), metadata=self.meta))
        if stat is not None:
            for entry in stat.files:
                if entry.hash not in ledger.recipes:
                    problems.add(f"{self.name}: Stat shows {entry.hash}, not a song of "
                                 f"{ledger.name}")
            for sha in stat.missing:
                if sha in asked and not ledger.may_be_gone(sha):
                    problems.add(f"{self.name}: Stat misses {sha}, acknowledged and not deleted")

    async def step(self) -> None:
        operation = self.random.choices([m for m, _ in MIX], [w for _, w in MIX])[0]
        if operation == "upload" and len(self.user.ledger.live) >= MAX_LIVE_SONGS:
            operation = "delete"
        await getattr(self, {"upload": "upload_new", "download": "download_any",
                             "delete": "delete_own", "diff": "diff", "look": "look"}[operation])()

    async def run(self, steps: int, deadline: float) -> None:
        for _ in range(steps):
            if time.monotonic() >= deadline:
                return
            await self.step()


class User:
    """A registered user, its ledger and its devices."""

    def __init__(self, load: Load, number: int, addresses: Addresses) -> None:
        self.load = load
        self.number = number
        self.addresses = addresses
        self.ledger = Ledger(f"user{number}-{load.run_id}")
        self.meta: tuple = ()
        self.devices: list[Device] = []

    async def register(self, key: str) -> None:
        channels = Channels(self.addresses)
        try:
            token = (await channels.auth.Register(auth_pb2.RegisterRequest(
                username=self.ledger.name, password=PASSWORD, security_key=key))).token
        finally:
            await channels.close()
        self.meta = (("authorization", f"Bearer {token}"),)


class Load:
    """Users with devices against one server layout; ``run`` loads it, ``check`` judges it."""

    def __init__(self, addresses: Addresses, *, users: int = 4, devices: int = 20,
                 seed: int = 1, strict: bool = True) -> None:
        self.run_id = f"{seed}"
        self.stats = Stats()
        self.problems = Problems(strict)
        self.users = [User(self, n, addresses) for n in range(users)]
        for n in range(devices):
            user = self.users[n % users]
            user.devices.append(Device(user, len(user.devices), seed * 1000 + n))

    def foreign_song(self, user: User) -> list[str]:
        """One live song uploaded only by another user, if any (for Stat: must be missing)."""
        others = [u for u in self.users if u is not user]
        for other in random.Random(len(self.stats.latencies)).sample(others, len(others)):
            own = [sha for sha in other.ledger.live if sha not in user.ledger.recipes]
            if own:
                return [own[0]]
        return []

    async def start(self, registration_key: str) -> None:
        """Registers the users; each user's first device uploads the shared songs, then
        every device takes a cursor (a first Diff). Cursor 0 means "never synced", so a
        song a device uploaded before its first non-zero cursor and another device
        deleted would come back as "upload"; a library with songs gives cursors past 0."""
        async with asyncio.TaskGroup() as group:
            for user in self.users:
                group.create_task(user.register(registration_key))
        async with asyncio.TaskGroup() as group:
            for user in self.users:
                for n in range(SHARED_SONGS):
                    group.create_task(user.devices[0].upload(
                        f"shared song {n} {self.run_id}", 2000 + n, f"shared {n}.wav", own=False))
        async with asyncio.TaskGroup() as group:
            for user in self.users:
                for device in user.devices:
                    group.create_task(device.diff())

    async def run(self, steps: int, seconds: float) -> None:
        """Every device runs ``steps`` operations (fewer if ``seconds`` pass first)."""
        deadline = time.monotonic() + seconds
        async with asyncio.TaskGroup() as group:
            for user in self.users:
                for device in user.devices:
                    group.create_task(device.run(steps, deadline))
            for user in self.users[1::2]:  # odd users drop the songs every user has
                group.create_task(self.drop_shared(user))

    async def drop_shared(self, user: User) -> None:
        device = user.devices[-1]
        for n in range(SHARED_SONGS):
            sha = hashlib.sha256(song(f"shared song {n} {self.run_id}", 2000 + n)).hexdigest()
            await device.delete(sha)

    async def check(self) -> list[str]:
        """After the load: every device syncs once more, then the server is compared with
        the ledgers. Returns the problems found during and after the load."""
        async with asyncio.TaskGroup() as group:
            for user in self.users:
                for device in user.devices:
                    group.create_task(device.diff())
        for user in self.users:
            await self._check_user(user)
        return list(self.problems)

    async def _check_user(self, user: User) -> None:
        ledger, problems = user.ledger, self.problems
        channels = user.devices[0].channels
        listed, token = [], ""
        while True:
            page = await channels.sync.ListFiles(sync_pb2.ListFilesRequest(
                page_size=LIST_PAGE, page_token=token), metadata=user.meta)
            listed += [entry.hash for entry in page.files]
            token = page.next_page_token
            if not token:
                break
        if len(listed) != len(set(listed)):
            problems.add(f"{ledger.name}: ListFiles names a song twice")
        if lost := ledger.live - set(listed):
            problems.add(f"{ledger.name}: {len(lost)} acknowledged songs are not listed")
        if extra := set(listed) - ledger.live:
            problems.add(f"{ledger.name}: {len(extra)} songs listed that are deleted or "
                         "were never this user's")
        for sha in sorted(ledger.live):
            if not await user.devices[0].download(sha):
                problems.add(f"{ledger.name}: acknowledged song {sha} cannot be downloaded")
        replayed, since = set(), 0
        while True:
            page = await channels.sync.Changes(sync_pb2.ChangesRequest(since=since, limit=1000),
                                               metadata=user.meta)
            for event in page.events:
                if event.hash not in ledger.recipes:
                    problems.add(f"{ledger.name}: Changes shows {event.hash}, not this user's")
                if event.kind == DELETED:
                    replayed.discard(event.hash)
                else:
                    replayed.add(event.hash)
            since = page.cursor
            if not page.has_more:
                break
        if replayed != ledger.live:
            problems.add(f"{ledger.name}: Changes from 0 replays to {len(replayed)} songs, "
                         f"the library has {len(ledger.live)}")
        for device in user.devices:
            if device.held != ledger.live:
                problems.add(f"{device.name}: holds {len(device.held)} songs after its last "
                             f"Diff, its user has {len(ledger.live)}")
        others = {sha for other in self.users if other is not user
                  for sha in other.ledger.recipes} - set(ledger.recipes)
        if others:
            stat = await channels.file.Stat(file_pb2.StatRequest(hashes=sorted(others)[:500]),
                                            metadata=user.meta)
            if stat.files:
                problems.add(f"{ledger.name}: Stat shows {len(stat.files)} songs of other users")

    async def close(self) -> None:
        for user in self.users:
            for device in user.devices:
                await device.channels.close()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]
