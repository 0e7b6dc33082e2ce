"""`musicsync db copy SOURCE TARGET`: a home server's metadata moved between SQLite and
PostgreSQL with nothing lost, verified, into an empty target only."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import pytest
from sqlalchemy import text

from musicsync import cli
from musicsync.config import Settings
from musicsync.db import Database
from musicsync.db.migrations import migrate
from musicsync.db.models import Base
from musicsync.db.summaries import SUMMARIES
from musicsync.ops.db_copy import Checksum
from musicsync.proto import auth_pb2, file_pb2, sync_pb2
from musicsync.server import App

from .conftest import PASSWORD, REGISTRATION_KEY, make_settings
from .helpers import Client, free_port, query, sha, status_of
from .sync_device import run_diff
from .transfer import upload, upload_requests, wav_bytes

PHONE = sync_pb2.Device(id="phone-install-1", name="Pixel")
TABLES = [table.name for table in Base.metadata.sorted_tables]
# And the statistics' running totals: not copied, rebuilt by the target's triggers.
ALL_TABLES = [*Base.metadata.sorted_tables, *SUMMARIES.sorted_tables]


@dataclass
class Populated:
    """What a user of the original server holds, to use on a copy."""

    settings: Settings
    access_token: str
    refresh_token: str
    songs: list[str]  # listed (not deleted)
    cursor: int


async def populate(settings: Settings) -> Populated:
    """A home server's database made through the server itself: accounts, songs, a deletion
    (a tombstone), a device and its cursor, a resumable session, a failed sign-in."""
    async with App(settings) as app, Client(app) as client:
        for username in ("alice", "bob"):
            await client.auth.Register(auth_pb2.RegisterRequest(
                username=username, password=PASSWORD, security_key=REGISTRATION_KEY))
        login = await client.auth.Login(auth_pb2.LoginRequest(username="alice",
                                                               password=PASSWORD))
        client.token = login.token
        songs = []
        for number in range(4):
            response = await upload(client, wav_bytes(0.05, salt=b"song %d" % number),
                                    file_pb2.FileMetadata(filename=f"Artist/{number:02} Sång.wav"))
            songs.append(response.hash)
        await client.file.Delete(file_pb2.DeleteRequest(hash=songs.pop()), metadata=client.meta())
        _, _, _, cursor, _ = await run_diff(client, [bytes.fromhex(s) for s in songs],
                                            device=PHONE)
        # Device ids whose byte order differs from a locale's (both sides checksum by key).
        for device in (PHONE, *(sync_pb2.Device(id=name, name=name)
                                for name in ("Zeta", "alpha", "_tablet", "Émile"))):
            await client.sync.Ack(sync_pb2.AckRequest(device=device, cursor=cursor),
                                  metadata=client.meta())
        partial = wav_bytes(1, salt=b"resumable")
        await client.file.StartUpload(file_pb2.StartUploadRequest(
            sha256=sha(partial), size=len(partial)), metadata=client.meta())
        code, _ = await status_of(client.auth.Login(auth_pb2.LoginRequest(
            username="bob", password="not bob's password")))
        assert code == grpc.StatusCode.UNAUTHENTICATED
        # A new refresh token for the copy to honour (the login's was used by nobody).
        refreshed = await client.auth.Refresh(auth_pb2.RefreshRequest(
            refresh_token=login.refresh_token))
    add_player_data(settings)
    return Populated(settings, refreshed.token, refreshed.refresh_token, songs, cursor)


def add_player_data(settings) -> None:
    """A playlist, a song's stats and a play, cover art: rows of every player table."""
    [(entry_id, digest, path)] = query(settings, "SELECT id, sha256, path FROM library "
                                       "WHERE user_id = 1 ORDER BY id LIMIT 1")
    art = hashlib.sha256(b"a cover").digest()
    for statement, *values in (
            ("INSERT INTO playlists (id, user_id, name, description, version, entry_count, "
             "created_at, updated_at) VALUES (1, 1, 'Road trip', 'Ünïcode', 3, 1, 1, 2)",),
            ("INSERT INTO playlist_entries (playlist_id, position, library_id, sha256, path) "
             "VALUES (1, 0, ?, ?, ?)", entry_id, digest, path),
            ("INSERT INTO song_stats (library_id, user_id, starred, rating, rated_at_ms, "
             "play_count, skip_count, last_played_ms) VALUES (?, 1, ?, 4, 5, 2, 1, 6)",
             entry_id, True),
            ("INSERT INTO plays (user_id, play_id, library_id, started_at_ms, seconds_played, "
             "completed, skipped, received_at) VALUES (1, 'phone-1', ?, 6, 200, ?, ?, 7)",
             entry_id, True, False),
            ("INSERT INTO art_images (sha256, mime_type, width, height, size, created_at) "
             "VALUES (?, 'image/jpeg', 600, 600, 12345, 8)", art),
            ("INSERT INTO art_resized (art_sha256, size, sha256, mime_type, width, height, "
             "bytes) VALUES (?, 128, ?, 'image/jpeg', 128, 128, 999)", art, art[::-1]),
            ("UPDATE library SET art_sha256 = ? WHERE id = ?", art, entry_id)):
        query(settings, statement, *values)


@pytest.fixture
async def home(tmp_path) -> Populated:
    return await populate(make_settings(tmp_path / "data"))


def sqlite_rows(path: Path) -> dict[str, dict]:
    """Every row of every table, by primary key, read with sqlite3 (not the code under test)."""
    with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as connection:
        return {table.name: _by_key(table, connection.execute(
            f"SELECT {', '.join(c.name for c in table.columns)} FROM {table.name}").fetchall())
            for table in ALL_TABLES}


async def postgres_rows(url: str) -> dict[str, dict]:
    """The same from PostgreSQL, read with asyncpg."""
    connection = await asyncpg.connect(url)
    try:
        rows = {}
        for table in ALL_TABLES:
            found = await connection.fetch(
                f"SELECT {', '.join(c.name for c in table.columns)} FROM {table.name}")
            rows[table.name] = _by_key(table, [tuple(record) for record in found])
        return rows
    finally:
        await connection.close()


def _by_key(table, rows) -> dict:
    columns = [column.name for column in table.columns]
    key = [columns.index(column.name) for column in table.primary_key.columns]
    return {tuple(row[i] for i in key): tuple(row) for row in rows}


def run_copy(source, target) -> int:
    return cli.main(["db", "copy", str(source), str(target)])


async def copy(source, target) -> int:
    """The command in a thread of its own, as it runs its own event loop."""
    return await asyncio.to_thread(run_copy, source, target)


def database_of(settings: Settings) -> Path:
    return settings.data_dir / "musicsync.db"


async def serve_copy(home: Populated, database_url: str) -> None:
    """A server on the copy (same secret key and blob folder): the old password signs in,
    the old tokens work, the library is listed, and the device's cursor is current."""
    settings = make_settings(home.settings.data_dir, database_url=database_url,
                             secret_key=home.settings.secret_key)
    async with App(settings) as app, Client(app) as client:
        login = await client.auth.Login(auth_pb2.LoginRequest(username="alice",
                                                               password=PASSWORD))
        listing = await client.sync.ListFiles(sync_pb2.ListFilesRequest(),
                                              metadata=client.meta(login.token))
        assert sorted(entry.hash for entry in listing.files) == sorted(home.songs)
        # Issued by the original server: still good.
        await client.sync.ListFiles(sync_pb2.ListFilesRequest(),
                                    metadata=client.meta(home.access_token))
        await client.auth.Refresh(auth_pb2.RefreshRequest(refresh_token=home.refresh_token))
        client.token = login.token
        to_upload, to_download, to_delete, cursor, _ = await run_diff(
            client, [bytes.fromhex(s) for s in home.songs], cursor=home.cursor, device=PHONE)
        assert (to_upload, to_download, to_delete, cursor) == ([], [], [], home.cursor)


def with_password(url: str) -> tuple[str, str]:
    """``url`` with a password in it (the test cluster trusts loopback and ignores it)."""
    parts = urlsplit(url)
    if parts.password:
        return url, parts.password
    password = "never-printed-Secr3t"
    netloc = f"{parts.username}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc)), password


# -- SQLite to SQLite ---------------------------------------------------------------------

async def test_every_table_copies_row_for_row_and_a_server_on_the_copy_serves_it(
        home, tmp_path, capsys):
    original = sqlite_rows(database_of(home.settings))
    assert all(original[table.name] for table in ALL_TABLES), "every table holds something"

    assert await copy(database_of(home.settings), tmp_path / "copy.db") == 0

    assert sqlite_rows(tmp_path / "copy.db") == original
    output = capsys.readouterr().out
    for name in TABLES:
        assert f"copied {name}: {len(original[name])} rows" in output
    assert "every table verified" in output and "DIFFERS" not in output
    await serve_copy(home, f"sqlite:///{tmp_path / 'copy.db'}")
    assert sqlite_rows(database_of(home.settings)) == original  # the source as it was


async def test_ids_of_deleted_accounts_are_not_handed_out_again_on_the_copy(home, tmp_path):
    from musicsync.ops.admin import accounts_over, open_database
    async with open_database(home.settings) as db:
        await accounts_over(db, home.settings).delete_user("bob")
    deleted = 2  # alice 1, bob 2: SQLite's AUTOINCREMENT keeps 2 from being reused

    assert await copy(database_of(home.settings), tmp_path / "copy.db") == 0

    settings = make_settings(tmp_path / "data", database_url=str(tmp_path / "copy.db"))
    async with App(settings) as app, Client(app) as client:
        await client.auth.Register(auth_pb2.RegisterRequest(
            username="carol", password=PASSWORD, security_key=REGISTRATION_KEY))
    users = sqlite_rows(tmp_path / "copy.db")["users"]
    assert sorted(row[1] for row in users.values()) == ["alice", "carol"]
    assert [key for key, row in users.items() if row[1] == "carol"] == [(deleted + 1,)]


async def test_a_source_on_read_only_media_is_copied(home, tmp_path):
    """As the Kubernetes Job mounts it: SQLite cannot make the -shm file of a WAL database
    there, so a stopped server's file is read as immutable."""
    import shutil
    import subprocess
    import sys
    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "-rm", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs unshare -rm (user and mount namespaces) to mount a folder read-only")
    folder = home.settings.data_dir
    # A cleanly stopped server leaves neither (a reader, even read-only, would make them).
    assert not list(folder.glob("musicsync.db-*[lm]"))
    script = (f"mount --bind {folder} {folder} && mount -o remount,bind,ro {folder} && "
              f"! touch {folder}/writable && exec {sys.executable} -m musicsync.cli db copy "
              f"{database_of(home.settings)} {tmp_path / 'copy.db'}")
    done = await asyncio.create_subprocess_exec(
        "unshare", "-rm", "sh", "-c", script, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    output, _ = await done.communicate()

    assert done.returncode == 0, output.decode()
    assert sqlite_rows(tmp_path / "copy.db") == sqlite_rows(database_of(home.settings))


async def test_a_non_empty_target_is_refused_and_left_unchanged(home, tmp_path, capsys):
    other = await populate(make_settings(tmp_path / "other"))
    target = database_of(other.settings)
    before = sqlite_rows(target)

    assert await copy(database_of(home.settings), target) == 1

    assert "is not empty (rows in" in capsys.readouterr().err
    assert sqlite_rows(target) == before


async def test_a_difference_found_by_the_verification_rolls_the_copy_back(
        home, tmp_path, capsys):
    """A target that changes what it is given (here a trigger) fails the checksum: the
    command says which table differs, exits 1, and the target keeps no row."""
    target = tmp_path / "tampering.db"
    db = Database(str(target))
    try:
        await migrate(db.writer_engine())
        async with db.write() as session:
            await session.execute(text(
                "CREATE TRIGGER tamper AFTER INSERT ON library BEGIN "
                "UPDATE library SET title = 'changed' WHERE id = NEW.id; END"))
    finally:
        await db.close()

    assert await copy(database_of(home.settings), target) == 1

    captured = capsys.readouterr()
    assert "library" in captured.err and "rolled back" in captured.err
    assert [line for line in captured.out.splitlines() if "DIFFERS" in line][0].startswith(
        "library")
    assert all(rows == {} for rows in sqlite_rows(target).values())


def test_the_checksum_changes_with_any_value_and_tells_kinds_apart():
    def digest(*rows) -> str:
        checksum = Checksum()
        for row in rows:
            checksum.add(row)
        return checksum.hexdigest()

    row = (1, "alice", b"\x00" * 32, None, True)
    assert digest(row) == digest((1, "alice", memoryview(b"\x00" * 32), None, 1))
    for changed in ((2, "alice", b"\x00" * 32, None, True), (1, "alicf", b"\x00" * 32, None, True),
                    (1, "alice", b"\x00" * 31 + b"\x01", None, True),
                    (1, "alice", b"\x00" * 32, 0, True), (1, "alice", b"\x00" * 32, None, False)):
        assert digest(changed) != digest(row)
    assert digest(("ab", "c")) != digest(("a", "bc"))
    assert digest((1,)) != digest(("1",)) != digest((b"1",))
    assert digest(("",)) != digest((None,)) != digest((b"",))
    assert digest((1,), (2,)) != digest((2,), (1,))  # order counts: rows go by key


async def test_a_source_of_another_schema_version_is_refused(home, tmp_path, capsys):
    with sqlite3.connect(database_of(home.settings)) as connection:
        connection.execute("PRAGMA user_version = 3")

    assert await copy(database_of(home.settings), tmp_path / "copy.db") == 1

    message = capsys.readouterr().err
    assert "schema version 3" in message and "start this musicsync's server on it once" in message


def test_a_missing_source_is_a_usage_error_and_creates_nothing(tmp_path, capsys):
    assert run_copy(tmp_path / "nowhere.db", tmp_path / "copy.db") == 2
    assert "no database at" in capsys.readouterr().err
    assert not (tmp_path / "nowhere.db").exists() and not (tmp_path / "copy.db").exists()


async def test_a_target_that_is_not_a_database_url_is_a_usage_error(home, capsys):
    assert await copy(database_of(home.settings), "mysql://user:pw@host/db") == 2
    assert "postgresql://" in capsys.readouterr().err


async def test_copying_a_database_onto_itself_is_refused(home, capsys):
    path = database_of(home.settings)
    assert await copy(path, f"sqlite:///{path}") == 1
    assert "same database" in capsys.readouterr().err


async def test_an_unreachable_postgresql_is_named_without_its_password(home, capsys):
    url = f"postgresql://musicsync:Hunter2-secret@127.0.0.1:{free_port()}/musicsync"

    assert await copy(database_of(home.settings), url) == 1

    captured = capsys.readouterr()
    assert f"PostgreSQL 127.0.0.1:{urlsplit(url).port}/musicsync" in captured.err
    assert "Hunter2-secret" not in captured.out + captured.err


# -- SQLite to PostgreSQL and back (they need the Alembic migrations on PostgreSQL) --------

async def test_sqlite_to_postgresql_and_back_loses_nothing(home, postgres_url, tmp_path, capsys):
    original = sqlite_rows(database_of(home.settings))
    target, password = with_password(postgres_url)

    assert await copy(database_of(home.settings), target) == 0
    assert await postgres_rows(postgres_url) == original
    assert await copy(target, tmp_path / "back.db") == 0
    assert sqlite_rows(tmp_path / "back.db") == original

    captured = capsys.readouterr()
    assert "every table verified" in captured.out
    assert password not in captured.out + captured.err


async def test_a_server_on_the_postgresql_copy_serves_the_same_accounts_library_and_cursors(
        home, postgres_url):
    assert await copy(database_of(home.settings), postgres_url) == 0
    await serve_copy(home, postgres_url)


async def test_a_new_account_on_the_postgresql_copy_gets_a_fresh_id(home, postgres_url):
    copied = max(key[0] for key in sqlite_rows(database_of(home.settings))["users"])
    assert await copy(database_of(home.settings), postgres_url) == 0
    settings = make_settings(home.settings.data_dir, database_url=postgres_url)
    async with App(settings) as app, Client(app) as client:
        await client.auth.Register(auth_pb2.RegisterRequest(
            username="carol", password=PASSWORD, security_key=REGISTRATION_KEY))
        login = await client.auth.Login(auth_pb2.LoginRequest(username="carol",
                                                               password=PASSWORD))
        await upload(client, wav_bytes(0.05, salt=b"carol's"), token=login.token)
    ids = await postgres_rows(postgres_url)
    carol = [row for row in ids["users"].values() if row[1] == "carol"][0]
    assert carol[0] > copied
    assert len(ids["library"]) == len(sqlite_rows(database_of(home.settings))["library"]) + 1


async def test_a_non_empty_postgresql_target_is_refused_and_left_unchanged(
        home, postgres_url, capsys):
    assert await copy(database_of(home.settings), postgres_url) == 0
    before = await postgres_rows(postgres_url)
    capsys.readouterr()

    assert await copy(database_of(home.settings), postgres_url) == 1

    assert "is not empty" in capsys.readouterr().err
    assert await postgres_rows(postgres_url) == before
