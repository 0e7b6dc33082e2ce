"""`musicsync sync DIR` end to end: a real server on loopback, real folders in tmp_path,
the CLI run as a person runs it (a subprocess, after `musicsync login`). Two folders
synced from one computer are two devices of one library."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from dataclasses import replace
from pathlib import Path

import pytest

from musicsync.client import Client
from musicsync.client.credentials import CredentialsStore
from musicsync.server import App

from .client_support import (
    BreakingRelay,
    Cli,
    RestartableServer,
    partial_bytes,
    signed_in,
    target_of,
)
from .conftest import PASSWORD, REGISTRATION_KEY, make_settings
from .folder_helpers import sha, song, touch_later, write
from .helpers import free_port, wait_until
from .transfer import wav_bytes

DAY = 24 * 3600


async def login(cli: Cli, target: str) -> None:
    code, _, err = await cli("login", target, "--user", "alice", "--password-stdin",
                             stdin=PASSWORD + "\n")
    assert code == 0, err


@pytest.fixture
async def logged_in(app, library, cli) -> Cli:
    await login(cli, target_of(app))
    return cli


async def sync(cli: Cli, folder: Path, *options: str, expect: int | None = 0
               ) -> tuple[dict, str]:
    """`musicsync sync folder --json ...`: (the summary, stderr); folder made if need be."""
    folder.mkdir(parents=True, exist_ok=True)
    code, out, err = await cli("sync", str(folder), "--json", *options)
    if expect is not None:
        assert code == expect, f"exit {code}\n{out}\n{err}"
    assert code == 2 or out.strip(), f"no summary (exit {code}):\n{err}"
    return (json.loads(out.strip().splitlines()[-1]) if out.strip() else {}), err


def tree(root: Path) -> dict[str, bytes]:
    """Every visible file under root (the marker folder and hidden files left out).

    A `--watch` process may move a file to its trash, or remove an emptied folder, while
    this reads: what vanishes meanwhile is left out rather than raised (Path.rglob and
    read_bytes raise FileNotFoundError then, failing the test that waits on this).
    """
    found = {}
    for folder, folders, files in os.walk(root):  # folders that vanish are passed over
        folders[:] = [name for name in folders if not name.startswith(".")]
        for name in files:
            path = Path(folder, name)
            if name.startswith(".") or not path.is_file():
                continue
            try:
                found[path.relative_to(root).as_posix()] = path.read_bytes()
            except FileNotFoundError:
                continue
    return found


def hidden(root: Path) -> list[str]:
    """Hidden files outside the marker folder (partial downloads)."""
    return [p.relative_to(root).as_posix() for p in root.rglob(".*")
            if p.is_file() and ".musicsync" not in p.relative_to(root).parts]


async def library_paths(client) -> dict[str, str]:
    return {f.path: f.hash async for f in client.list_files()}


# -- two folders, one library ------------------------------------------------------------

async def test_two_folders_converge_after_syncing_each_in_turn_nested_folders_included(
        logged_in, library, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    write(one, "Artist/Album/01 Song.wav", song("1"))
    write(one, "Artist/Album/02 Song.wav", song("2"))
    write(two, "Other/Deep/Nested/03.wav", song("3"))
    summary, _ = await sync(logged_in, one)
    assert summary["uploaded"] == 2 and summary["failed"] == 0
    summary, _ = await sync(logged_in, two)
    assert (summary["uploaded"], summary["downloaded"]) == (1, 2)
    summary, _ = await sync(logged_in, one)
    assert summary["downloaded"] == 1
    assert tree(one) == tree(two)
    assert set(tree(one)) == {"Artist/Album/01 Song.wav", "Artist/Album/02 Song.wav",
                              "Other/Deep/Nested/03.wav"}
    assert await library_paths(library) == {path: sha(data) for path, data in tree(one).items()}
    assert hidden(one) == hidden(two) == []


async def test_a_deletion_in_one_folder_reaches_the_other(logged_in, library, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    for name in ("a.wav", "b.wav", "c.wav", "Album/gone.wav"):
        write(one, name, song(name))
    await sync(logged_in, one)
    await sync(logged_in, two)
    (one / "Album/gone.wav").unlink()
    summary, _ = await sync(logged_in, one)
    assert summary["deleted_remote"] == 1
    summary, _ = await sync(logged_in, two)
    assert summary["deleted_local"] == 1
    assert set(tree(two)) == {"a.wav", "b.wav", "c.wav"} == set(await library_paths(library))
    assert not (two / "Album").exists()  # the emptied folder goes too
    trashed = list((two / ".musicsync" / "trash").rglob("gone.wav"))
    assert [p.read_bytes() for p in trashed] == [song("Album/gone.wav")]


async def test_a_rename_or_move_sends_no_song_bytes(logged_in, library, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    write(one, "Unsorted/track.wav", song("t"))
    write(one, "keep.wav", song("k"))
    await sync(logged_in, one)
    await sync(logged_in, two)
    (one / "Artist" / "Album").mkdir(parents=True)
    os.rename(one / "Unsorted/track.wav", one / "Artist/Album/01 Track.wav")
    summary, _ = await sync(logged_in, one)
    assert (summary["moved_remote"], summary["uploaded"], summary["bytes_sent"]) == (1, 0, 0)
    summary, _ = await sync(logged_in, two)
    assert (summary["moved_local"], summary["downloaded"], summary["bytes_received"]) == (
        1, 0, 0)
    assert tree(two) == {"Artist/Album/01 Track.wav": song("t"), "keep.wav": song("k")}
    assert set(await library_paths(library)) == set(tree(two))


async def test_a_tag_edit_is_one_replace_on_the_other_folder(logged_in, library, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    write(one, "Album/song.wav", song("v1"))
    write(one, "other.wav", song("o"))
    await sync(logged_in, one)
    await sync(logged_in, two)
    feed = library.changes(since=0)
    assert [event async for event in feed]  # read to the end: feed.cursor is the newest
    (one / "Album/song.wav").write_bytes(song("v2"))  # new tags: new bytes, same path
    touch_later(one / "Album/song.wav")
    summary, _ = await sync(logged_in, one)
    assert (summary["uploaded"], summary["deleted_remote"]) == (1, 0)
    events = [event async for event in library.changes(since=feed.cursor)]
    replaces = [(e.kind, e.hash, e.replaces) for e in events if e.replaces]
    assert replaces == [("added", sha(song("v2")), sha(song("v1")))]
    summary, _ = await sync(logged_in, two)
    assert (summary["downloaded"], summary["deleted_local"]) == (1, 0)
    assert tree(two) == {"Album/song.wav": song("v2"), "other.wav": song("o")}
    assert await library_paths(library) == {"Album/song.wav": sha(song("v2")),
                                            "other.wav": sha(song("o"))}


async def test_a_name_collision_keeps_both_files(logged_in, library, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    write(one, "same.wav", song("from one"))
    write(two, "same.wav", song("from two"))
    await sync(logged_in, one)
    summary, _ = await sync(logged_in, two)
    assert summary["conflicts"] == 1
    assert tree(two) == {"same.wav": song("from two"),
                         "same (conflict).wav": song("from one")}
    await sync(logged_in, one)
    assert tree(one) == tree(two)
    assert await library_paths(library) == {p: sha(d) for p, d in tree(two).items()}


async def test_a_second_run_with_nothing_changed_hashes_and_transfers_nothing(
        logged_in, library, tmp_path):
    one = tmp_path / "one"
    for i in range(30):
        write(one, f"Artist {i % 3}/Album {i % 5}/{i:02d} A rather long song title.wav",
              song(str(i)))
    first, _ = await sync(logged_in, one)
    assert first["uploaded"] == 30 and first["files_hashed"] == 30
    again, _ = await sync(logged_in, one)
    assert (again["files_hashed"], again["bytes_sent"], again["bytes_received"],
            again["uploaded"], again["downloaded"]) == (0, 0, 0, 0, 0)
    assert not again["listed_in_full"]
    # What it read of the library is an empty page of changes, not a listing.
    listing = await library._unary(library._sync.GetSync, _empty())
    assert again["listing_bytes"] * 100 < listing.ByteSize()


async def test_a_cursor_the_server_no_longer_knows_falls_back_to_a_full_listing(
        logged_in, library, tmp_path):
    from musicsync.client.folder.index import FolderIndex
    one = tmp_path / "one"
    write(one, "a.wav", song("a"))
    await sync(logged_in, one)
    await library.upload(write(tmp_path / "elsewhere", "b.wav", song("b")), path="b.wav")
    with FolderIndex.open(one) as index:
        index.update_state(cursor="1000000")  # e.g. a server restored from a backup
    summary, _ = await sync(logged_in, one)
    assert summary["listed_in_full"] and summary["downloaded"] == 1
    assert summary["uploaded"] == summary["deleted_remote"] == 0
    again, _ = await sync(logged_in, one)
    assert not again["listed_in_full"] and tree(one) == {"a.wav": song("a"), "b.wav": song("b")}


def _empty():
    from google.protobuf import empty_pb2
    return empty_pb2.Empty()


# -- safety ------------------------------------------------------------------------------

async def test_a_folder_whose_marker_is_gone_is_refused_and_nothing_changes(
        logged_in, library, tmp_path):
    one = tmp_path / "one"
    write(one, "a.wav", song("a"))
    write(one, "b.wav", song("b"))
    await sync(logged_in, one)
    for path in one.glob("*.wav"):
        path.unlink()
    import shutil
    shutil.rmtree(one / ".musicsync")  # an emptied (or unmounted) disk
    _, err = await sync(logged_in, one, expect=2)
    assert "its .musicsync folder is gone" in err and "Nothing was changed" in err
    assert set(await library_paths(library)) == {"a.wav", "b.wav"}
    assert list(one.iterdir()) == []
    code, out, _ = await logged_in("sync", "--forget", str(one))
    assert code == 0 and "starts afresh" in out
    summary, _ = await sync(logged_in, one)  # afresh: nothing deleted, the songs come back
    assert (summary["downloaded"], summary["deleted_remote"]) == (2, 0)


async def test_a_mass_deletion_stops_and_changes_nothing_on_either_side(
        logged_in, library, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    for i in range(4):
        write(one, f"{i}.wav", song(str(i)))
    await sync(logged_in, one)
    await sync(logged_in, two)
    for i in range(3):
        (one / f"{i}.wav").unlink()
    _, err = await sync(logged_in, one, expect=2)
    assert "would delete 3 of the 4 songs on the server" in err and "--max-delete" in err
    assert len(await library_paths(library)) == 4 and len(tree(two)) == 4
    summary, _ = await sync(logged_in, one, "--max-delete", "80%")
    assert summary["deleted_remote"] == 3
    assert set(await library_paths(library)) == {"3.wav"}


async def test_dry_run_prints_the_plan_and_changes_nothing(logged_in, library, tmp_path):
    one = tmp_path / "one"
    write(one, "Album/new.wav", song("n"))
    code, out, err = await logged_in("sync", str(one), "--dry-run")
    assert code == 0, err
    assert "up        Album/new.wav" in out and "dry run: nothing changed" in out
    assert await library_paths(library) == {}
    summary, _ = await sync(logged_in, one, "--dry-run")
    assert summary["plan"]["upload"][0]["path"] == "Album/new.wav"
    assert summary["uploaded"] == 0 and await library_paths(library) == {}


async def test_push_only_uploads_and_leaves_the_servers_songs_for_later(
        logged_in, library, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    write(one, "from-one.wav", song("1"))
    await sync(logged_in, one)
    write(two, "from-two.wav", song("2"))
    summary, _ = await sync(logged_in, two, "--direction", "push")
    assert (summary["uploaded"], summary["downloaded"]) == (1, 0)
    assert set(tree(two)) == {"from-two.wav"}
    summary, _ = await sync(logged_in, two)  # both ways now: the server's song comes
    assert summary["downloaded"] == 1 and set(tree(two)) == {"from-one.wav", "from-two.wav"}


# -- interruptions -----------------------------------------------------------------------

async def test_a_sync_killed_mid_upload_resumes_without_resending_committed_bytes(
        app, settings, library, cli, tmp_path):
    await login(cli, target_of(app))
    one = tmp_path / "one"
    data = wav_bytes(360, salt=b"big")  # 5.8 MB: over SMALL_FILE, so resumable
    write(one, "big.wav", data)
    port = int(target_of(app).rsplit(":", 1)[1])
    async with BreakingRelay(port, hold_after=2_500_000) as relay:
        store = CredentialsStore(cli.config)
        store.save(replace(store.require(), server=relay.target))  # through the relay
        process = await cli.start("sync", str(one), "--json")
        try:
            await wait_until(lambda: partial_bytes(settings.data_dir) >= 2 * 1024 * 1024,
                             "the server to store two chunks")
        finally:
            process.send_signal(signal.SIGKILL)
            await process.wait()
        relay.cut()
        summary, _ = await sync(cli, one)
    assert summary["uploaded"] == 1
    assert summary["bytes_sent"] <= len(data) - 2 * 1024 * 1024
    assert await library_paths(library) == {"big.wav": sha(data)}


# -- --watch -----------------------------------------------------------------------------

async def test_watch_on_two_folders_carries_a_new_file_across_and_then_its_deletion(
        logged_in, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    watchers = [await logged_in.start("sync", str(folder), "--watch") for folder in (one, two)]
    try:
        for watcher in watchers:  # each has made its first pass
            line = await asyncio.wait_for(watcher.stdout.readline(), 30)
            assert b"uploaded 0" in line, line
        write(one, "Dropped/in.wav", song("live"))
        await wait_until(lambda: tree(two) == {"Dropped/in.wav": song("live")},
                         "the song to reach the second folder", timeout=30)
        (one / "Dropped/in.wav").unlink()
        await wait_until(lambda: tree(two) == {}, "the deletion to reach it", timeout=30)
        assert hidden(two) == []
    finally:
        for watcher in watchers:
            if watcher.returncode is None:
                watcher.send_signal(signal.SIGTERM)
        codes = [await asyncio.wait_for(watcher.wait(), 30) for watcher in watchers]
        for watcher in watchers:  # shown if the test fails
            print((await watcher.stdout.read()).decode(), (await watcher.stderr.read()).decode())
    assert codes == [0, 0]


async def test_watch_carries_on_across_a_server_restart_both_ways(tmp_path):
    async with RestartableServer(tmp_path / "server") as server:
        cli = Cli(tmp_path / "config")
        library = Client(server.target)
        await library.register("alice", PASSWORD, REGISTRATION_KEY)
        await login(cli, server.target)
        one = tmp_path / "one"
        one.mkdir()
        watcher = await cli.start("sync", str(one), "--watch")
        try:
            assert b"uploaded 0" in await asyncio.wait_for(watcher.stdout.readline(), 30)
            server.stop()
            await server.start()
            write(one, "after/local.wav", song("local"))
            await wait_until(lambda: _has(library, "after/local.wav"),
                             "the local song to reach the restarted server", timeout=30)
            await library.upload(write(tmp_path / "src", "remote.wav", song("remote")),
                                 path="after/remote.wav")
            await wait_until(lambda: "after/remote.wav" in tree(one),
                             "the server's new song to reach the folder", timeout=30)
        finally:
            await library.close()
            if watcher.returncode is None:
                watcher.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(watcher.wait(), 30)
            out = (await watcher.stdout.read()).decode()
            err = (await watcher.stderr.read()).decode()
            print(out, err)  # shown if the test fails
    assert code == 0
    assert "(reconnecting)" in err  # said once the stream dropped, whichever way it did
    assert tree(one) == {"after/local.wav": song("local"), "after/remote.wav": song("remote")}


async def _has(client, path: str) -> bool:
    return path in await library_paths(client)


# -- bad input ---------------------------------------------------------------------------

async def test_sync_with_the_server_down_exits_1_naming_the_address(cli, tmp_path):
    from musicsync.client.credentials import Credentials
    from musicsync.client.tokens import Tokens
    address = f"127.0.0.1:{free_port()}"
    CredentialsStore(cli.config).save(Credentials(
        server=address, username="alice", tokens=Tokens("access", 2**40, "refresh", 2**40),
        device_id="d", device_name="n"))
    write(tmp_path / "one", "a.wav", song("a"))
    code, _, err = await cli("sync", str(tmp_path / "one"))
    assert code == 1 and f"cannot reach the musicsync server at {address}" in err
    assert tree(tmp_path / "one") == {"a.wav": song("a")}


async def test_sync_with_an_ended_sign_in_exits_2_saying_to_log_in(app, clock, logged_in,
                                                                  tmp_path):
    write(tmp_path / "one", "a.wav", song("a"))
    clock.advance(31 * DAY)
    _, err = await sync(logged_in, tmp_path / "one", expect=2)
    assert "run `musicsync login SERVER` again" in err


async def test_sync_before_login_exits_2(cli, tmp_path):
    (tmp_path / "one").mkdir()
    _, err = await sync(cli, tmp_path / "one", expect=2)
    assert "run `musicsync login SERVER` first" in err


async def test_a_folder_over_the_quota_fails_those_uploads_and_says_why(tmp_path, cli):
    async with App(make_settings(tmp_path / "data", user_quota=300_000)) as app:
        client = await signed_in(app)
        try:
            await login(cli, target_of(app))
            one = tmp_path / "one"
            write(one, "small.wav", wav_bytes(5, salt=b"s"))  # 80 KB: fits
            write(one, "large.wav", wav_bytes(30, salt=b"l"))  # 480 KB: does not
            summary, err = await sync(cli, one, expect=1)
            assert (summary["uploaded"], summary["failed"]) == (1, 1)
            assert "large.wav" in err and "quota" in err.lower()
            assert set(await library_paths(client)) == {"small.wav"}
        finally:
            await client.close()


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MB tmpfs (we run as root, so permissions do not stop writes); skipped where
    mounting is not allowed."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.system(f"mount -t tmpfs -o size=1m tmpfs {mount} 2>/dev/null") != 0:
        pytest.skip("cannot mount a tmpfs here (needs root and a kernel allowing it)")
    yield mount
    os.system(f"umount -l {mount}")


async def test_a_full_disk_fails_the_downloads_that_do_not_fit_and_leaves_no_partials(
        logged_in, library, tmp_path, tiny_disk):
    for i in range(3):
        await library.upload(write(tmp_path / "src", f"big{i}.wav",
                                   wav_bytes(25, salt=str(i).encode())))  # 400 KB each
    summary, err = await sync(logged_in, tiny_disk, "--jobs", "1", expect=1)
    assert (summary["downloaded"], summary["failed"]) == (2, 1)
    assert "the disk is full" in err
    assert hidden(tiny_disk) == []  # nothing half-written stays
    for path, data in tree(tiny_disk).items():
        assert sha(data) == sha((tmp_path / "src" / path).read_bytes())


async def test_a_read_only_folder_is_refused_with_the_reason(logged_in, tmp_path, tiny_disk):
    write(tiny_disk, "a.wav", song("a"))
    if os.system(f"mount -o remount,ro {tiny_disk} 2>/dev/null") != 0:
        pytest.skip("cannot remount the tmpfs read-only here")
    _, err = await sync(logged_in, tiny_disk, expect=2)
    assert "Read-only file system" in err and "must be writable" in err
