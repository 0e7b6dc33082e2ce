"""The PostgreSQL harness (tests/pg_cluster.py): one database per test, nothing shared or kept."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from .pg_cluster import (OWNER_FILE, TempCluster, configured_server, database_of, find_bin_dir,
                         fresh_database, run_async, server_from_url)

# A venv made before asyncpg joined [dev] should not stop the rest of the suite from collecting.
asyncpg = pytest.importorskip("asyncpg", reason="asyncpg is missing: `make test` installs it")
THROWAWAY = configured_server() is None  # PG_URL unset: the tests' own cluster


async def user_tables(url: str) -> list[str]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            "SELECT schemaname || '.' || tablename AS name FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")
        return [row["name"] for row in rows]
    finally:
        await connection.close()


async def database_exists(server, name: str) -> bool:
    connection = await asyncpg.connect(server.url())
    try:
        return await connection.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name)
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def databases_seen() -> list[str]:
    return []


@pytest.mark.parametrize("turn", [1, 2])
async def test_each_test_gets_a_new_empty_database(turn, postgres_url, databases_seen):
    name = database_of(postgres_url)
    assert name not in databases_seen
    # The table the other turn made is not here.
    assert await user_tables(postgres_url) == []
    connection = await asyncpg.connect(postgres_url)
    try:
        await connection.execute("CREATE TABLE made_by_a_test (id integer)")
    finally:
        await connection.close()
    assert await user_tables(postgres_url) == ["public.made_by_a_test"]
    databases_seen.append(name)


@pytest.fixture
def checked_dropped_afterwards(postgres_cluster):
    """Asked for before postgres_url, so its check runs after that database's teardown."""
    names: list[str] = []
    yield names
    assert names, "the test did not say which database to check"
    for name in names:
        assert not run_async(database_exists(postgres_cluster, name)), f"{name} was kept"


async def test_the_database_of_a_test_is_dropped_after_it(
        checked_dropped_afterwards, postgres_url, postgres_cluster):
    name = database_of(postgres_url)
    assert await database_exists(postgres_cluster, name)
    checked_dropped_afterwards.append(name)


async def test_a_database_still_in_use_is_dropped_all_the_same(postgres_cluster):
    with fresh_database(postgres_cluster) as url:
        left_open = await asyncpg.connect(url)
        assert await left_open.fetchval("SELECT 1") == 1
    assert not await database_exists(postgres_cluster, database_of(url))
    with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
        await left_open.fetchval("SELECT 1")  # the drop ended its session
    left_open.terminate()


async def test_the_url_names_the_tests_database(postgres_url, postgres_cluster):
    connection = await asyncpg.connect(postgres_url)
    try:
        assert await connection.fetchval("SELECT current_database()") == database_of(postgres_url)
        assert await connection.fetchval("SELECT current_user") == postgres_cluster.user
        if THROWAWAY:
            assert str(await connection.fetchval("SELECT inet_server_addr()")) == "127.0.0.1"
    finally:
        await connection.close()


def non_loopback_address() -> str | None:
    """An IPv4 address of this machine other than 127.x, if it has one."""
    candidates = set()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # UDP: picks the outgoing address, sends nothing
            candidates.add(probe.getsockname()[0])
    except OSError:
        pass
    try:
        candidates.update(socket.gethostbyname_ex(socket.gethostname())[2])
    except OSError:
        pass
    addresses = sorted(a for a in candidates if not a.startswith(("127.", "0.")))
    return addresses[0] if addresses else None


@pytest.mark.skipif(not THROWAWAY, reason="PG_URL's server is set up by whoever runs it")
async def test_the_cluster_refuses_connections_from_other_addresses(postgres_cluster):
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no address but loopback")
    with pytest.raises(OSError):
        await asyncpg.connect(host=address, port=postgres_cluster.port,
                              user=postgres_cluster.user, database="postgres", timeout=10)


@pytest.mark.skipif(not THROWAWAY, reason="with PG_URL, PostgreSQL's programs may be absent")
async def test_a_stopped_cluster_leaves_no_server_and_no_folder():
    cluster = TempCluster()
    server = cluster.start()
    folder = cluster.folder
    assert (folder / "data" / "postmaster.pid").exists()
    cluster.stop()
    assert not folder.exists()
    with pytest.raises(OSError):
        await asyncpg.connect(server.url(), timeout=10)


@pytest.mark.skipif(not THROWAWAY, reason="with PG_URL, PostgreSQL's programs may be absent")
async def test_a_cluster_left_by_a_killed_run_is_stopped_by_the_next_one():
    orphan = TempCluster()
    server = orphan.start()
    ended = subprocess.Popen(["true"])
    ended.wait()
    (orphan.folder / OWNER_FILE).write_text(str(ended.pid))  # as if its run were SIGKILLed
    with TempCluster():
        assert not orphan.folder.exists()
        with pytest.raises(OSError):
            await asyncpg.connect(server.url(), timeout=10)


def test_missing_postgresql_fails_saying_how_to_install_it(tmp_path: Path):
    with pytest.raises(RuntimeError) as raised:
        find_bin_dir(path=str(tmp_path), roots=str(tmp_path / "*" / "bin"))
    assert "apt-get install postgresql" in str(raised.value)
    assert "PG_URL" in str(raised.value)


def test_the_newest_installed_version_is_used(tmp_path: Path):
    for version in ("9.6", "13", "15"):
        folder = tmp_path / version / "bin"
        folder.mkdir(parents=True)
        for program in ("initdb", "pg_ctl"):
            (folder / program).touch(mode=0o755)
    found = find_bin_dir(path=os.devnull, roots=str(tmp_path / "*" / "bin"))
    assert found == tmp_path / "15" / "bin"  # by number: "9.6" sorts after "15" as text


def test_pg_url_names_the_server_and_its_password_reaches_each_database():
    server = server_from_url("postgresql://bob:s%40cret@db.example:6543/admin?sslmode=disable")
    assert (server.host, server.port, server.user, server.password, server.maintenance_db) == (
        "db.example", 6543, "bob", "s@cret", "admin")
    assert server.url("test_7") == (
        "postgresql://bob:s%40cret@db.example:6543/test_7?sslmode=disable")
    assert server_from_url("postgresql://127.0.0.1").url("t") == (
        "postgresql://postgres@127.0.0.1:5432/t")
