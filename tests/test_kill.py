"""The kill suite: SIGKILL `musicsync serve` at random moments of uploads, deletes and
diffs, restart it, and check that nothing acknowledged was lost.

Each round runs a random mix of plain uploads, resumable uploads (new sessions
and sessions a previous round interrupted), deletes and diffs against a real
server process, kills it after a random delay or after a random number of
upload chunks, and restarts it on the same data. Then:

- `musicsync fsck --grace 0s` is clean (exit 0): no blob that no library lists,
  however young, no listed blob missing or damaged;
- every acknowledged upload is listed and downloads with its SHA-256, every
  acknowledged delete is gone, and a Diff of the acknowledged songs finds
  nothing to upload, download or delete;
- every resumable session resumes from at least the offset StartUpload last
  answered for it (or is complete);
- no temporary file is left behind (local folder; on S3 stages are purged
  once an hour old).

The suite runs against a local blob folder and against an S3 bucket (moto, or
the server S3_ENDPOINT names). The random choices come from one seeded
generator: MUSICSYNC_KILL_SEED reproduces a run, MUSICSYNC_KILL_ROUNDS sets its
length (3 rounds per store in `make test`, 60 in `make stress`).
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from musicsync.proto import (auth_pb2, auth_pb2_grpc, file_pb2, file_pb2_grpc, sync_pb2,
                             sync_pb2_grpc)

from .conftest import PASSWORD, REGISTRATION_KEY
from .helpers import ServerProcess, free_port, sha
from .transfer import CHUNK, stored_blobs, wav_bytes

ROUNDS = int(os.environ.get("MUSICSYNC_KILL_ROUNDS", "3"))
SEED = int(os.environ.get("MUSICSYNC_KILL_SEED", "20261201"))
ENV = {"ARGON2_TIME_COST": "1", "ARGON2_MEMORY_KIB": "1024", "ARGON2_PARALLELISM": "1",
       "SECURITY_KEY": REGISTRATION_KEY, "HOST": "127.0.0.1"}
# What a call cut off by the kill may end with: the client library's own statuses for a
# connection that broke (the server, gone, sends nothing).
CUT_OFF = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}
CUT_OFF_INTERNAL = "Internal error from Core"


@dataclass
class Session:
    """A resumable upload as its client knows it."""

    data: bytes
    upload_id: str = ""
    offset: int = 0  # the last offset StartUpload answered: it must never go back


@dataclass
class Ledger:
    """What the client was told: the server must keep to it across every kill."""

    songs: dict[str, bytes] = field(default_factory=dict)  # acknowledged, not deleted since
    gone: set[str] = field(default_factory=set)  # deletes acknowledged
    unsure: dict[str, bytes] = field(default_factory=dict)  # cut off: either outcome is fine
    sessions: dict[str, Session] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # answers no kill explains

    def acknowledge(self, digest: str, data: bytes) -> None:
        self.songs[digest] = data
        self.gone.discard(digest)
        self.unsure.pop(digest, None)
        self.sessions.pop(digest, None)


class Chunks:
    """Counts upload chunks sent; fires ``reached`` at the round's chosen count."""

    def __init__(self, kill_at: int | None) -> None:
        self.sent = 0
        self.kill_at = kill_at
        self.reached = asyncio.Event()

    def count(self) -> None:
        self.sent += 1
        if self.kill_at is not None and self.sent >= self.kill_at:
            self.reached.set()


class Round:
    """One client of one server life: a random workload, cut off by the kill."""

    def __init__(self, channel, token: str, ledger: Ledger, rng: random.Random,
                 chunks: Chunks) -> None:
        self.files = file_pb2_grpc.FileServiceStub(channel)
        self.sync = sync_pb2_grpc.SyncServiceStub(channel)
        self.meta = (("authorization", f"Bearer {token}"),)
        self.ledger = ledger
        self.rng = rng
        self.chunks = chunks

    def song(self, low: int, high: int) -> bytes:
        seconds = self.rng.randint(low, high) / 16_000  # 16,000 bytes a second
        return wav_bytes(seconds, salt=self.rng.randbytes(16))

    async def run(self) -> None:
        work = []
        for _ in range(self.rng.randint(1, 3)):
            work.append(self.plain_upload(self.song(20_000, 1_500_000)))
        for digest in list(self.ledger.sessions):
            work.append(self.resumable_upload(digest))
        for _ in range(self.rng.randint(0, 2)):
            data = self.song(200_000, 3_000_000)
            self.ledger.sessions.setdefault(sha(data), Session(data))
            work.append(self.resumable_upload(sha(data)))
        if self.ledger.songs:
            for digest in self.rng.sample(sorted(self.ledger.songs),
                                          min(len(self.ledger.songs), self.rng.randint(0, 2))):
                work.append(self.delete(digest))
        work.append(self.diff())
        self.rng.shuffle(work)
        await asyncio.gather(*(self.guard(step) for step in work))

    async def guard(self, step) -> None:
        try:
            await step
        except grpc.aio.AioRpcError as error:
            if error.code() not in CUT_OFF and error.details() != CUT_OFF_INTERNAL:
                self.ledger.failures.append(f"{error.code().name}: {error.details()}")

    async def send(self, call, metadata: file_pb2.FileMetadata, data: bytes, offset: int):
        await call.write(file_pb2.UploadRequest(metadata=metadata))
        for start in range(offset, len(data), CHUNK):
            await call.write(file_pb2.UploadRequest(chunk=data[start:start + CHUNK]))
            self.chunks.count()
        await call.done_writing()
        return await call

    async def plain_upload(self, data: bytes) -> None:
        digest = sha(data)
        self.ledger.unsure[digest] = data
        response = await self.send(self.files.Upload(metadata=self.meta),
                                   file_pb2.FileMetadata(filename=f"{digest[:8]}.wav"), data, 0)
        assert response.hash == digest
        self.ledger.acknowledge(digest, data)

    async def resumable_upload(self, digest: str) -> None:
        session = self.ledger.sessions[digest]
        answer = await self.files.StartUpload(file_pb2.StartUploadRequest(
            sha256=digest, size=len(session.data)), metadata=self.meta)
        if answer.complete:
            self.ledger.acknowledge(digest, session.data)
            return
        check_resumes(self.ledger, session, answer)
        self.ledger.unsure[digest] = session.data
        response = await self.send(
            self.files.Upload(metadata=self.meta),
            file_pb2.FileMetadata(upload_id=answer.upload_id, offset=answer.offset,
                                  filename=f"{digest[:8]}-resumed.wav"),
            session.data, answer.offset)
        assert response.hash == digest
        self.ledger.acknowledge(digest, session.data)

    async def delete(self, digest: str) -> None:
        data = self.ledger.songs.pop(digest)
        self.ledger.unsure[digest] = data
        await self.files.Delete(file_pb2.DeleteRequest(hash=digest), metadata=self.meta)
        self.ledger.unsure.pop(digest)
        self.ledger.gone.add(digest)

    async def diff(self) -> None:
        hashes = [bytes.fromhex(digest) for digest in self.ledger.songs]
        async for _ in self.sync.Diff(iter([sync_pb2.DiffRequest(hashes=hashes)]),
                                      metadata=self.meta):
            pass


def check_resumes(ledger: Ledger, session: Session, answer) -> None:
    if session.upload_id and (answer.upload_id != session.upload_id
                              or answer.offset < session.offset):
        ledger.failures.append(
            f"session {session.upload_id} went back: StartUpload answered offset "
            f"{session.offset}, then {answer.offset} (upload id {answer.upload_id})")
    session.upload_id, session.offset = answer.upload_id, answer.offset


async def sign_in(channel, first: bool) -> str:
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    if first:
        return (await stub.Register(auth_pb2.RegisterRequest(
            username="alice", password=PASSWORD, security_key=REGISTRATION_KEY))).token
    return (await stub.Login(auth_pb2.LoginRequest(username="alice", password=PASSWORD))).token


class LocalStore:
    """The server's blob folder, as the checks see it."""

    env: dict[str, str] = {}

    def __init__(self, data: Path) -> None:
        self.data = data

    def blobs(self) -> set[str]:
        return {path.name for path in stored_blobs(self.data)}

    def partials(self) -> set[str]:
        return {path.name for path in (self.data / "blobs" / ".partial").glob("*")}

    def temporaries(self) -> list[str]:
        """Temporary data of uploads that start-up should have removed."""
        return [path.name for path in (self.data / "blobs" / ".tmp").glob("*")]


class S3Store:
    """The server's bucket, as the checks see it."""

    def __init__(self, server, bucket: str) -> None:
        self.server, self.bucket = server, bucket
        self.env = {"S3_ENDPOINT": server.endpoint, "S3_ACCESS_KEY": server.access_key,
                    "S3_SECRET_KEY": server.secret_key, "S3_BUCKET": bucket}

    def blobs(self) -> set[str]:
        return {name.removeprefix("blobs/") for name in self.server.objects(self.bucket, "blobs/")}

    def partials(self) -> set[str]:
        return {name.split("/")[1] for name in self.server.objects(self.bucket, "partials/")}

    def temporaries(self) -> list[str]:
        return []  # stages of killed uploads are purged once an hour old (storage/s3.py)


def fsck(data: Path, store) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATA_DIR", "DATABASE_URL") and not k.startswith("S3_")}
    env.update(store.env)
    done = subprocess.run([sys.executable, "-m", "musicsync.cli", "fsck", "--data-dir", str(data),
                           "--grace", "0s"], env=env, capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


def listed(data: Path) -> set[str]:
    with sqlite3.connect(data / "musicsync.db") as db:
        return {row[0].hex() for row in db.execute("SELECT sha256 FROM library")}


async def check_after_restart(channel, token: str, data: Path, store, ledger: Ledger,
                              where: str):
    """Every promise of the ledger holds; settles what the kill left unsure."""
    code, report = fsck(data, store)
    assert code == 0, f"{where}: fsck found problems:\n{report}"
    library = listed(data)
    assert store.blobs() == library, f"{where}: unlisted blobs"
    partials = store.partials()
    assert store.temporaries() == [], f"{where}: temporary data left behind"
    files = file_pb2_grpc.FileServiceStub(channel)
    meta = (("authorization", f"Bearer {token}"),)
    for digest, data_ in list(ledger.unsure.items()):  # the client asks, as after any outage
        del ledger.unsure[digest]
        if digest in library:
            ledger.acknowledge(digest, data_)
        else:
            ledger.songs.pop(digest, None)
    missing = set(ledger.songs) - library
    assert not missing, f"{where}: acknowledged uploads lost: {sorted(missing)}"
    assert not (ledger.gone & library), f"{where}: acknowledged deletes came back"
    for digest, song in ledger.songs.items():
        chunks = [m.chunk async for m in files.Download(
            file_pb2.DownloadRequest(hash=digest, chunk_size=1024 * 1024), metadata=meta)]
        assert sha(b"".join(chunks)) == digest == sha(song), f"{where}: {digest} damaged"
    diff = [message async for message in sync_pb2_grpc.SyncServiceStub(channel).Diff(
        iter([sync_pb2.DiffRequest(hashes=[bytes.fromhex(d) for d in ledger.songs])]),
        metadata=meta)]
    assert not any(m.upload or m.download or m.delete for m in diff), \
        f"{where}: Diff disagrees with the acknowledged library"
    for digest, session in list(ledger.sessions.items()):
        answer = await files.StartUpload(file_pb2.StartUploadRequest(
            sha256=digest, size=len(session.data)), metadata=meta)
        if answer.complete:
            ledger.acknowledge(digest, session.data)
        else:
            check_resumes(ledger, session, answer)
    live = {s.upload_id for s in ledger.sessions.values()}
    assert partials <= live, f"{where}: partials of no session: {sorted(partials - live)}"
    assert not ledger.failures, f"{where}: {ledger.failures}"


async def kill_during(round_: Round, server: ServerProcess, rng: random.Random) -> None:
    """Runs the round's workload and kills the server at the chosen moment."""
    workload = asyncio.ensure_future(round_.run())
    if round_.chunks.kill_at is not None:
        reached = asyncio.ensure_future(round_.chunks.reached.wait())
        await asyncio.wait([workload, reached], return_when=asyncio.FIRST_COMPLETED)
        reached.cancel()
    else:
        # The one deliberate sleep: the random moment of the kill.
        await asyncio.wait([workload], timeout=rng.uniform(0, 0.4))
    server.kill()
    await workload  # every call fails or ends now


async def finish(channel, token: str, ledger: Ledger) -> None:
    """At the end every interrupted session completes, from the offset it answers."""
    chunks = Chunks(None)
    round_ = Round(channel, token, ledger, random.Random(0), chunks)
    for digest in list(ledger.sessions):
        await round_.resumable_upload(digest)
    assert not ledger.sessions and not ledger.failures


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path: Path):
    if request.param == "local":
        return LocalStore(tmp_path / "data")
    return S3Store(request.getfixturevalue("s3_server"), request.getfixturevalue("s3_bucket"))


async def test_sigkill_at_random_moments_loses_nothing_acknowledged(tmp_path, store):
    rng = random.Random(SEED)
    data, port = tmp_path / "data", free_port()
    ledger = Ledger()
    args = ["serve", "--data-dir", str(data), "--auth-port", str(port), "--file-port", "0",
            "--sync-port", "0"]
    env = {**ENV, **store.env}
    server = ServerProcess(args, env, tmp_path / "log-0")
    try:
        await server.wait_serving(port)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            token = await sign_in(channel, first=True)
        for number in range(1, ROUNDS + 1):
            where = f"round {number} (MUSICSYNC_KILL_SEED={SEED})"
            by_chunks = rng.random() < 0.5
            chunks = Chunks(rng.randint(1, 120) if by_chunks else None)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                await kill_during(Round(channel, token, ledger, rng, chunks), server, rng)
            server = ServerProcess(args, env, tmp_path / f"log-{number}")
            await server.wait_serving(port)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                token = await sign_in(channel, first=False)
                await check_after_restart(channel, token, data, store, ledger, where)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await finish(channel, token, ledger)
            await check_after_restart(channel, token, data, store, ledger, "the end")
        assert server.stop() == 0
    finally:
        server.kill()
