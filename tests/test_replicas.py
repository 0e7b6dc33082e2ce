"""Several replicas of the server sharing one PostgreSQL database and one S3 bucket.

Two Apps in one test process stand for two machines behind a balancer: each has
its own ports, data folder and connections, and nothing in common but the
database, the bucket and the signing key (as the `scale` deployments give them).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from musicsync.proto import auth_pb2, file_pb2, sync_pb2
from musicsync.server import App

from .conftest import PASSWORD, REGISTRATION_KEY, make_settings
from .helpers import Client, query, sha, status_of, wait_until
from .pg_cluster import TempCluster, fresh_database
from .transfer import download, upload, upload_requests, wav_bytes


@pytest.fixture
def replica_settings(tmp_path, postgres_url, s3_server, s3_bucket):
    """Settings of replica ``n``: the shared database, bucket and signing key."""
    secret = secrets.token_urlsafe(32)

    def of(n: int, **overrides):
        return make_settings(tmp_path / f"replica-{n}", database_url=postgres_url,
                             secret_key=secret, **s3_server.settings(s3_bucket), **overrides)
    return of


@pytest.fixture
async def replicas(replica_settings) -> AsyncIterator[tuple[App, App]]:
    async with App(replica_settings(1)) as one, App(replica_settings(2)) as two:
        yield one, two


@pytest.fixture
async def clients(replicas) -> AsyncIterator[tuple[Client, Client]]:
    """alice, signed in once, with a client on each replica (same token)."""
    one, two = replicas
    async with Client(one) as first, Client(two) as second:
        response = await first.auth.Register(auth_pb2.RegisterRequest(
            username="alice", password=PASSWORD, security_key=REGISTRATION_KEY))
        first.token = second.token = response.token
        yield first, second


async def test_a_watch_on_one_replica_hears_an_upload_on_the_other_at_once(clients, replicas):
    first, second = clients
    await replicas[1]._listener.listening.wait()
    # A heartbeat of an hour: only the other replica's announcement can wake this Watch.
    watch = second.sync.Watch(sync_pb2.WatchRequest(heartbeat_seconds=3600),
                              metadata=second.meta())
    song = wav_bytes(1, salt=b"heard elsewhere")
    await upload(first, song, file_pb2.FileMetadata(filename="elsewhere.wav"))
    response = await asyncio.wait_for(watch.read(), 30)
    watch.cancel()
    assert response.event.hash == sha(song)
    assert response.event.kind == sync_pb2.CHANGE_KIND_ADDED


async def test_uploads_on_both_replicas_at_once_take_every_sequence_number_once(clients):
    songs = [wav_bytes(1, salt=b"both %d" % n) for n in range(24)]

    async def send(client: Client, part: list[bytes]) -> None:
        for song in part:
            await upload(client, song)

    await asyncio.gather(*(send(clients[n % 2], songs[n::4]) for n in range(4)))
    changes = await clients[0].sync.Changes(sync_pb2.ChangesRequest(since=0, limit=100),
                                           metadata=clients[0].meta())
    assert [event.seq for event in changes.events] == list(range(1, 25))
    assert {event.hash for event in changes.events} == {sha(song) for song in songs}


async def test_deletes_on_one_replica_racing_uploads_of_the_same_song_on_the_other_lose_nothing(
        clients, replicas):
    first, second = clients
    bob = await second.auth.Register(auth_pb2.RegisterRequest(
        username="bob", password=PASSWORD, security_key=REGISTRATION_KEY))
    song = wav_bytes(2, salt=b"shared by two replicas")
    digest = sha(song)

    async def churn(client: Client, token: str) -> None:
        for _ in range(12):
            await upload(client, song, token=token)
            await client.file.Delete(file_pb2.DeleteRequest(hash=digest),
                                     metadata=client.meta(token))
            await upload(client, song, token=token)

    async with asyncio.TaskGroup() as group:
        group.create_task(churn(first, first.token))
        group.create_task(churn(second, bob.token))
    settings = replicas[0].settings
    assert query(settings, "SELECT count(*) FROM library") == [(2,)]
    assert query(settings, "SELECT count(*) FROM blobs") == [(1,)]
    for client, token in ((first, first.token), (second, bob.token)):
        assert (await download(client, digest, token=token))[0] == song


async def test_failed_sign_ins_on_every_replica_count_together(clients):
    first, second = clients
    for n in range(5):
        code, _ = await status_of((first if n % 2 else second).auth.Login(
            auth_pb2.LoginRequest(username="alice", password="wrong password")))
        assert code == grpc.StatusCode.UNAUTHENTICATED
    for client in (first, second):
        code, message = await status_of(client.auth.Login(
            auth_pb2.LoginRequest(username="alice", password=PASSWORD)))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, message


async def test_a_resumable_upload_started_on_one_replica_finishes_on_the_other(clients):
    first, second = clients
    song = wav_bytes(40, salt=b"resumed elsewhere")  # 640 KB
    session = await first.file.StartUpload(file_pb2.StartUploadRequest(
        sha256=sha(song), size=len(song)), metadata=first.meta())
    code, message = await status_of(first.file.Upload(upload_requests(
        song[:200_000], file_pb2.FileMetadata(upload_id=session.upload_id, offset=0)),
        metadata=first.meta()))
    assert code == grpc.StatusCode.FAILED_PRECONDITION, message  # it ended early: kept
    resumed = await second.file.StartUpload(file_pb2.StartUploadRequest(
        sha256=sha(song), size=len(song)), metadata=second.meta())
    assert (resumed.upload_id, resumed.offset) == (session.upload_id, 200_000)
    response = await second.file.Upload(upload_requests(song[200_000:], file_pb2.FileMetadata(
        upload_id=session.upload_id, offset=200_000, filename="resumed.wav")),
        metadata=second.meta())
    assert response.hash == sha(song)
    assert (await download(first, sha(song)))[0] == song


async def test_the_hourly_jobs_run_on_every_replica_at_once_without_harm(
        clients, replicas):
    first, _ = clients
    songs = [wav_bytes(1, salt=b"pruned %d" % n) for n in range(6)]
    for song in songs:
        await upload(first, song)
        await first.file.Delete(file_pb2.DeleteRequest(hash=sha(song)), metadata=first.meta())
    session = await first.file.StartUpload(file_pb2.StartUploadRequest(
        sha256=sha(b"x" * 1000), size=1000), metadata=first.meta())
    settings = replicas[0].settings
    query(settings, "UPDATE changes SET at = 0")
    query(settings, "UPDATE upload_sessions SET expires_at = 0")
    pruned = await asyncio.gather(*(app.feed.prune() for app in replicas))
    await asyncio.gather(*(app.uploads.sweep() for app in replicas))
    assert sum(pruned) == 12  # every event once, whichever replica dropped it
    assert query(settings, "SELECT count(*) FROM changes") == [(0,)]
    assert query(settings, "SELECT count(*) FROM upload_sessions") == [(0,)]
    code, _ = await status_of(first.file.Upload(upload_requests(
        b"x" * 1000, file_pb2.FileMetadata(upload_id=session.upload_id, offset=0)),
        metadata=first.meta()))
    assert code == grpc.StatusCode.NOT_FOUND  # the swept session is gone everywhere


def health_is(app: App, status: int):
    """A wait_until predicate: the server's overall health is ``status``."""
    async def check() -> bool:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.ports['auth']}") as channel:
            answer = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""))
        return answer.status == status
    return check


async def test_a_database_outage_is_unavailable_and_not_serving_until_it_returns(
        tmp_path, monkeypatch):
    monkeypatch.setattr("musicsync.server.DATABASE_PROBE_INTERVAL", 0.2)
    monkeypatch.setattr("musicsync.server.STORAGE_RETRY_INTERVAL", 0.2)
    cluster = TempCluster()  # of this test's own: it stops it
    with cluster as server, fresh_database(server) as url:
        settings = make_settings(tmp_path / "data", database_url=url)
        async with App(settings) as app, Client(app) as client:
            response = await client.auth.Register(auth_pb2.RegisterRequest(
                username="alice", password=PASSWORD, security_key=REGISTRATION_KEY))
            client.token = response.token
            cluster.pause()
            try:
                code, message = await status_of(client.sync.Changes(
                    sync_pb2.ChangesRequest(), metadata=client.meta()))
                assert code == grpc.StatusCode.UNAVAILABLE, message
                assert "database" in message and "PostgreSQL" in message
                await wait_until(health_is(app, health_pb2.HealthCheckResponse.NOT_SERVING),
                                 "health to say NOT_SERVING")
            finally:
                cluster.resume()
            await wait_until(health_is(app, health_pb2.HealthCheckResponse.SERVING),
                             "health to say SERVING again", timeout=30)
            changes = await client.sync.Changes(sync_pb2.ChangesRequest(),
                                                metadata=client.meta())
            assert changes.cursor == 0
