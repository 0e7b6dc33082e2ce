"""Shared fixtures: real servers on loopback ports, real SQLite files in tmp_path.

The service suites (BOTH_DATABASES) run each test twice: on SQLite and on a real
PostgreSQL database of its own (tests/pg_cluster.py); ``@pytest.mark.sqlite_only``
keeps a test about SQLite itself (its file, its locks) to the first.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from musicsync.config import Settings
from musicsync.proto import auth_pb2, auth_pb2_grpc
from musicsync.server import App

from .helpers import FakeClock, Client
from .s3server import MotoServer, S3Server, configured_server, new_bucket

REGISTRATION_KEY = "test-registration-key"
PASSWORD = "correct horse battery"


def make_settings(data_dir: Path, **overrides) -> Settings:
    """Settings for a test server: loopback, ephemeral ports, cheap argon2."""
    values = dict(
        data_dir=data_dir, host="127.0.0.1", auth_port=0, file_port=0, sync_port=0,
        security_key=REGISTRATION_KEY, secret_key=secrets.token_urlsafe(32),
        argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1, shutdown_grace=1,
        watch_min_heartbeat=1,  # tests wait for heartbeats: the server refuses under 10 s
    )
    values.update(overrides)
    return Settings(**values)


async def create_user(settings: Settings, username: str, password: str = PASSWORD) -> None:
    """An account made as the operator makes it (`musicsync user add --create`), before the
    server starts: e.g. the anonymous user, which the server requires and Register refuses."""
    from musicsync.ops.admin import open_accounts

    async with open_accounts(settings, create=True) as accounts:
        await accounts.create_user(username, password)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# Test modules whose servers run on both databases.
BOTH_DATABASES = frozenset({
    "test_auth", "test_auth_throttling", "test_file_transfer", "test_file_resumable",
    "test_file_limits", "test_sync", "test_sync_convergence", "test_maintenance", "test_paths",
    "test_listening", "test_playlists", "test_cover_art", "test_browse", "test_player_feed",
})


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "sqlite_only: runs on SQLite alone (it is about "
                            "SQLite itself), in the modules that run on both databases")


def pytest_generate_tests(metafunc) -> None:
    module = metafunc.module.__name__.rpartition(".")[2]
    if module in BOTH_DATABASES and "database_kind" in metafunc.fixturenames:
        kinds = ["sqlite"]
        if metafunc.definition.get_closest_marker("sqlite_only") is None:
            kinds.append("postgresql")
        metafunc.parametrize("database_kind", kinds, indirect=True)


@pytest.fixture
def database_kind(request) -> str:
    """Which database the test's server runs on: "sqlite", or "postgresql" (see above)."""
    return getattr(request, "param", "sqlite")


@pytest.fixture
def database_url(database_kind: str, request) -> str | None:
    """The test server's DATABASE_URL: None (SQLite in its data folder) or PostgreSQL's."""
    return request.getfixturevalue("postgres_url") if database_kind == "postgresql" else None


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return make_settings(tmp_path / "data", database_url=database_url)


@pytest.fixture
async def app(settings: Settings, clock: FakeClock) -> AsyncIterator[App]:
    async with App(settings, clock=clock) as running:
        yield running


@pytest.fixture
async def client(app: App) -> AsyncIterator[Client]:
    async with Client(app) as connected:
        yield connected


@pytest.fixture
async def alice(client: Client) -> auth_pb2.RegisterResponse:
    """A registered user; client calls carry her token by default."""
    response = await client.auth.Register(auth_pb2.RegisterRequest(
        username="alice", password=PASSWORD, security_key=REGISTRATION_KEY))
    client.token = response.token
    return response


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """S3 for the session: the server S3_ENDPOINT names, else moto on a loopback port."""
    server = configured_server()
    if server is not None:
        yield server
        return
    with MotoServer() as moto:
        yield moto.server


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> Iterator[str]:
    """A fresh bucket name; the bucket, if made, is removed after the test."""
    bucket = new_bucket()
    yield bucket
    s3_server.remove_bucket(bucket)


@pytest.fixture
def cli(tmp_path: Path):
    """`musicsync ...` commands with a configuration folder of their own (tests/client_support)."""
    from .client_support import Cli
    return Cli(tmp_path / "config")


@pytest.fixture
async def logged_in(app: App, library, cli):
    """The `cli` signed in as alice (`musicsync login`, as a person does)."""
    from .client_support import target_of
    code, _, err = await cli("login", target_of(app), "--user", "alice", "--password-stdin",
                             stdin=PASSWORD + "\n")
    assert code == 0, err
    return cli


@pytest.fixture
async def library(app: App):
    """A musicsync.client Client signed in as alice (registered by it)."""
    from .client_support import signed_in
    client = await signed_in(app)
    yield client
    await client.close()


@pytest.fixture(scope="session")
def postgres_cluster():
    """PostgreSQL for the session (tests/pg_cluster.py): PG_URL's server, else a throwaway
    cluster, started by the first test that asks for it."""
    from .pg_cluster import postgres_server
    with postgres_server() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_cluster) -> Iterator[str]:
    """The URL of a new empty database of this test's own, dropped after it."""
    from .pg_cluster import fresh_database
    with fresh_database(postgres_cluster) as url:
        yield url
