"""Sync service over the wire: listings, Diff, the change feed, Watch, devices, pruning."""

from __future__ import annotations

import asyncio
import hashlib

import grpc
import pytest
from google.protobuf import empty_pb2
from sqlalchemy import insert, select

from musicsync.db.models import Blob, Device as DeviceRow, LibraryEntry, User
from musicsync.proto import auth_pb2, file_pb2, sync_pb2
from musicsync.server import App

from .conftest import PASSWORD, REGISTRATION_KEY, make_settings
from .helpers import Client, query, status_of
from .sync_device import run_diff
from .transfer import upload, wav_bytes

DELETED = sync_pb2.CHANGE_KIND_DELETED
ADDED = sync_pb2.CHANGE_KIND_ADDED
UPDATED = sync_pb2.CHANGE_KIND_UPDATED


@pytest.fixture
def settings(tmp_path, database_url):
    """Tombstones kept ten minutes, so the clock can pass them while tokens still work."""
    return make_settings(tmp_path / "data", database_url=database_url, tombstone_retention=600)


async def register(client: Client, username: str) -> str:
    response = await client.auth.Register(auth_pb2.RegisterRequest(
        username=username, password=PASSWORD, security_key=REGISTRATION_KEY))
    return response.token


async def add_song(client: Client, salt: bytes, filename: str = "song.wav",
                   token: str | None = None) -> str:
    response = await upload(client, wav_bytes(0.05, salt=salt),
                            file_pb2.FileMetadata(filename=filename), token=token)
    return response.hash


async def delete_song(client: Client, sha256: str, token: str | None = None) -> None:
    await client.file.Delete(file_pb2.DeleteRequest(hash=sha256), metadata=client.meta(token))


async def changes(client: Client, since: int = 0, limit: int = 0, token=None, device=None):
    return await client.sync.Changes(sync_pb2.ChangesRequest(since=since, limit=limit,
                                                             device=device),
                                     metadata=client.meta(token))


async def fill_library(app: App, username: str, count: int, filename_length: int = 20
                       ) -> list[bytes]:
    """``count`` entries straight into the database (fast), as if uploaded."""
    hashes = [hashlib.sha256(f"{username}/{i}".encode()).digest() for i in range(count)]
    async with app.db.write() as session:
        user_id = await session.scalar(select(User.id).where(User.username == username))
        await session.execute(insert(Blob), [
            {"sha256": sha, "size": 1000, "created_at": 0, "corrupt": False} for sha in hashes])
        await session.execute(insert(LibraryEntry), [
            {"user_id": user_id, "sha256": sha, "filename": f"{i:0{filename_length}d}.mp3",
             "path": f"{i:0{filename_length}d}.mp3", "size": 1000, "created_at": 0,
             "updated_at": 0, "seq": 0}
            for i, sha in enumerate(hashes)])
    return hashes


# -- Listings ---------------------------------------------------------------------------

async def test_get_sync_lists_only_the_callers_library(app, client, alice):
    mine = await add_song(client, b"alice's")
    bob = await register(client, "bob")
    await add_song(client, b"bob's", token=bob)

    listing = await client.sync.GetSync(empty_pb2.Empty(), metadata=client.meta())

    assert [(f.hash, f.filename) for f in listing.files] == [(mine, "song.wav")]


async def test_get_sync_refuses_a_library_beyond_one_message_and_names_the_paged_rpcs(
        app, client, alice):
    await fill_library(app, "alice", 16_000, filename_length=200)  # ~4.3 MB as FileInfo

    code, message = await status_of(client.sync.GetSync(empty_pb2.Empty(),
                                                        metadata=client.meta()))

    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "16000 songs" in message and "ListFiles" in message and "Diff" in message


async def test_list_files_pages_through_the_whole_library_in_a_stable_order(app, client, alice):
    hashes = await fill_library(app, "alice", 2_345)
    seen, token, pages = [], "", 0
    while True:
        page = await client.sync.ListFiles(sync_pb2.ListFilesRequest(page_size=1000,
                                                                     page_token=token),
                                           metadata=client.meta())
        seen += [f.hash for f in page.files]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert seen == [sha.hex() for sha in hashes]
    assert pages == 3


@pytest.mark.parametrize("request_fields", [{"page_token": "bm9wZQ"}, {"page_token": "%%"},
                                            {"page_size": 1001}, {"page_size": -1}])
async def test_list_files_rejects_foreign_tokens_and_page_sizes(client, alice, request_fields):
    code, message = await status_of(client.sync.ListFiles(
        sync_pb2.ListFilesRequest(**request_fields), metadata=client.meta()))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "page" in message


# -- Diff -------------------------------------------------------------------------------

async def test_diff_lists_what_to_upload_and_download_with_the_current_cursor(
        app, client, alice):
    on_server = await add_song(client, b"on server", filename="server.wav")
    both = await add_song(client, b"both")
    only_device = hashlib.sha256(b"only on the device").digest()

    to_upload, to_download, to_delete, cursor, _ = await run_diff(
        client, [bytes.fromhex(both), only_device])

    assert to_upload == [only_device]
    assert [(e.hash, e.filename, e.size) for e in to_download] == [
        (on_server, "server.wav", len(wav_bytes(0.05, salt=b"on server")))]
    assert to_download[0].codec == "wav"
    assert to_delete == []
    assert cursor == 2


async def test_diff_tells_a_device_to_delete_what_was_deleted_after_its_cursor(client, alice):
    old = await add_song(client, b"old")
    _, _, _, cursor, _ = await run_diff(client, [bytes.fromhex(old)])
    await delete_song(client, old)

    to_upload, _, to_delete, new_cursor, _ = await run_diff(client, [bytes.fromhex(old)],
                                                            cursor)

    assert to_delete == [bytes.fromhex(old)] and to_upload == []
    assert new_cursor == cursor + 1


async def test_diff_asks_to_upload_a_song_deleted_before_the_device_cursor(client, alice):
    """The device synced after the deletion, so holding the song again means it was re-added."""
    song = await add_song(client, b"re-added")
    await delete_song(client, song)
    _, _, _, cursor, _ = await run_diff(client, [])

    to_upload, _, to_delete, _, _ = await run_diff(client, [bytes.fromhex(song)], cursor)

    assert to_upload == [bytes.fromhex(song)] and to_delete == []


async def test_a_device_that_synced_an_empty_library_is_told_of_later_deletions(client, alice):
    phone = sync_pb2.Device(id="phone")
    to_upload, to_download, to_delete, cursor, _ = await run_diff(client, [], device=phone)
    assert cursor == 0  # nothing has happened yet: the phone's cursor is 0
    song = await add_song(client, b"phone's song")  # the phone uploads what it holds
    await delete_song(client, song)  # ...and another device deletes it

    _, _, to_delete, _, _ = await run_diff(client, [bytes.fromhex(song)], device=phone)
    assert to_delete == [bytes.fromhex(song)]
    # A device that never synced, holding the same song, adds it back (its first sync).
    to_upload, _, to_delete, _, _ = await run_diff(client, [bytes.fromhex(song)],
                                                   device=sync_pb2.Device(id="new laptop"))
    assert to_upload == [bytes.fromhex(song)] and to_delete == []


async def test_full_diff_without_cursor_never_asks_to_delete(client, alice):
    song = await add_song(client, b"deleted")
    await delete_song(client, song)
    to_upload, _, to_delete, _, _ = await run_diff(client, [bytes.fromhex(song)], 0)
    assert to_upload == [bytes.fromhex(song)] and to_delete == []


async def test_diff_handles_a_hundred_thousand_hashes_in_batches(app, client, alice):
    library = await fill_library(app, "alice", 100_000)
    extra = [hashlib.sha256(b"new %d" % i).digest() for i in range(150)]
    held = library[100:] + extra

    to_upload, to_download, to_delete, _, messages = await run_diff(client, held)

    assert sorted(to_upload) == sorted(extra)
    assert sorted(e.hash for e in to_download) == sorted(sha.hex() for sha in library[:100])
    assert to_delete == [] and messages >= 2


@pytest.mark.parametrize("bad, expected", [
    (b"short", "hash #1 (73686f7274) is 5 bytes"),
    (hashlib.sha256(b"x").hexdigest().encode(), "looks like hex"),
])
async def test_diff_rejects_the_first_malformed_hash_by_position(client, alice, bad, expected):
    good = hashlib.sha256(b"fine").digest()
    code, message = await status_of(_diff_call(client, [good, bad, b"also bad"]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert expected in message


async def _diff_call(client: Client, hashes: list[bytes], cursor: int = 0):
    await run_diff(client, hashes, cursor)


async def test_diff_with_an_unknown_cursor_asks_for_a_full_diff(client, alice):
    await add_song(client, b"one")
    code, message = await status_of(_diff_call(client, [], cursor=99))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "full Diff with cursor 0" in message


async def test_diff_needs_cursor_and_device_in_the_first_message_only(client, alice):
    def requests():
        yield sync_pb2.DiffRequest(hashes=[hashlib.sha256(b"a").digest()])
        yield sync_pb2.DiffRequest(cursor=3)
    code, _ = await status_of(_drain(client.sync.Diff(requests(), metadata=client.meta())))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


async def _drain(stream) -> list:
    return [message async for message in stream]


async def test_empty_diff_stream_answers_with_the_whole_library(client, alice):
    song = await add_song(client, b"lonely")
    responses = await _drain(client.sync.Diff(iter(()), metadata=client.meta()))
    assert [e.hash for r in responses for e in r.download] == [song]
    assert responses[-1].cursor == 1


# -- Change feed ------------------------------------------------------------------------

async def test_changes_returns_added_updated_and_deleted_events_in_order(client, alice):
    song = await add_song(client, b"feed", filename="first.wav")
    await add_song(client, b"feed", filename="renamed.wav")
    await delete_song(client, song)

    page = await changes(client)

    assert [(e.seq, e.kind, e.hash) for e in page.events] == [
        (1, ADDED, song), (2, UPDATED, song), (3, DELETED, song)]
    assert not page.events[2].HasField("file")
    assert page.cursor == 3 and not page.has_more


async def test_changes_pages_with_a_cursor_and_has_more(client, alice):
    for i in range(5):
        await add_song(client, b"page %d" % i)
    first = await changes(client, limit=2)
    second = await changes(client, since=first.cursor, limit=2)
    third = await changes(client, since=second.cursor, limit=2)
    assert [e.seq for p in (first, second, third) for e in p.events] == [1, 2, 3, 4, 5]
    assert (first.has_more, second.has_more, third.has_more) == (True, True, False)


async def test_changes_when_nothing_changed_returns_nothing_and_the_same_cursor(client, alice):
    await add_song(client, b"quiet")
    page = await changes(client, since=1)
    assert list(page.events) == [] and page.cursor == 1 and not page.has_more


async def test_changes_from_a_cursor_the_server_never_gave_is_refused(client, alice):
    code, message = await status_of(changes(client, since=5))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "cursor 5 is unknown" in message


async def test_changes_rejects_page_sizes_over_the_limit(client, alice):
    code, _ = await status_of(changes(client, limit=5000))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


# -- Watch ------------------------------------------------------------------------------

async def next_message(stream, timeout: float = 10) -> sync_pb2.WatchResponse:
    return await asyncio.wait_for(stream.read(), timeout)


async def test_watch_sends_the_backlog_then_each_new_change_as_it_commits(app, client, alice):
    first = await add_song(client, b"before")
    stream = client.sync.Watch(sync_pb2.WatchRequest(since=0), metadata=client.meta())
    backlog = await next_message(stream)
    assert (backlog.event.hash, backlog.cursor) == (first, 1)

    async with Client(app, port=app.ports["file"]) as phone:  # another device uploads
        phone.token = client.token
        second = await add_song(phone, b"from the phone")
    live = await next_message(stream)

    assert (live.event.kind, live.event.hash, live.cursor) == (ADDED, second, 2)
    # Another song held "song.wav" already: the second is filed beside it.
    assert (live.event.file.filename, live.event.file.path) == ("song (2).wav", "song (2).wav")
    stream.cancel()


async def test_watch_sends_heartbeats_while_nothing_happens(client, alice):
    stream = client.sync.Watch(sync_pb2.WatchRequest(heartbeat_seconds=1), metadata=client.meta())
    message = await next_message(stream)
    assert message.HasField("heartbeat") and message.heartbeat.at > 0
    assert message.cursor == 0
    stream.cancel()


async def test_watch_reconnecting_with_the_last_cursor_misses_nothing(client, alice):
    await add_song(client, b"one")
    stream = client.sync.Watch(sync_pb2.WatchRequest(), metadata=client.meta())
    cursor = (await next_message(stream)).cursor
    stream.cancel()  # the phone loses its connection...
    missed = [await add_song(client, b"two"), await add_song(client, b"three")]

    again = client.sync.Watch(sync_pb2.WatchRequest(since=cursor), metadata=client.meta())
    got = [(await next_message(again)).event.hash for _ in missed]

    assert got == missed
    again.cancel()


async def test_watch_ends_cleanly_when_the_server_shuts_down(tmp_path):
    async with App(make_settings(tmp_path, shutdown_grace=30)) as app, Client(app) as client:
        client.token = await register(client, "alice")
        stream = client.sync.Watch(sync_pb2.WatchRequest(heartbeat_seconds=3600),
                                   metadata=client.meta())
        await add_song(client, b"x")
        await next_message(stream)
        stopping = asyncio.create_task(app.stop())
        code, _ = await asyncio.wait_for(_stream_end(stream), 10)
        await asyncio.wait_for(stopping, 10)  # well within the 30 s grace: Watch let go
    assert code in (grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE)



async def test_stopping_the_server_as_watchers_hang_up_leaves_nothing_running(tmp_path):
    """Handlers cancelled at shutdown unwind before the database closes, or the close
    they were in can wait forever and keep the process from exiting."""
    for round_ in range(4):
        async with App(make_settings(tmp_path / str(round_))) as app:
            async with Client(app) as client:
                alice = await register(client, "alice")
                song = await add_song(client, b"x", token=alice)
                bob = await register(client, "bob")
                await run_diff(client, [bytes.fromhex(song)], token=bob)
                await changes(client, token=bob)
                stream = client.sync.Watch(sync_pb2.WatchRequest(heartbeat_seconds=1),
                                           metadata=client.meta(bob))
                await next_message(stream)
                stream.cancel()  # the phone hangs up as the server goes down
        left = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        assert not left, f"round {round_}: {left}"

async def _stream_end(stream) -> tuple[grpc.StatusCode, str]:
    try:
        while await stream.read() != grpc.aio.EOF:
            pass
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details()
    return grpc.StatusCode.OK, ""


@pytest.mark.parametrize("heartbeat", [-1, 3601])
async def test_watch_rejects_heartbeats_out_of_range(client, alice, heartbeat):
    stream = client.sync.Watch(sync_pb2.WatchRequest(heartbeat_seconds=heartbeat),
                               metadata=client.meta())
    code, message = await _stream_end(stream)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "heartbeat_seconds" in message


async def test_watch_on_a_sync_service_alone_sees_uploads_of_another_process(tmp_path):
    """The compose layout: file and sync services in separate processes, one database."""
    settings = make_settings(tmp_path)
    async with App(settings, services=("auth", "file")) as files, \
            App(settings, services=("sync",)) as sync, \
            Client(files) as phone, Client(sync) as desktop:
        phone.token = desktop.token = await register(phone, "alice")
        stream = desktop.sync.Watch(sync_pb2.WatchRequest(heartbeat_seconds=60),
                                    metadata=desktop.meta())
        song = await add_song(phone, b"across processes")
        message = await next_message(stream)
        assert message.event.hash == song
        stream.cancel()


# -- Privacy ----------------------------------------------------------------------------

async def test_one_users_diff_changes_and_watch_never_show_another_users_entries(
        client, alice):
    secret = await add_song(client, b"alice's secret")
    await delete_song(client, await add_song(client, b"alice's deleted"))
    bob = await register(client, "bob")

    to_upload, to_download, to_delete, cursor, _ = await run_diff(
        client, [bytes.fromhex(secret)], token=bob)
    page = await changes(client, token=bob)
    stream = client.sync.Watch(sync_pb2.WatchRequest(heartbeat_seconds=1),
                               metadata=client.meta(bob))
    first = await next_message(stream)
    stream.cancel()

    assert to_upload == [bytes.fromhex(secret)]  # as if nobody had it
    assert (to_download, to_delete, cursor) == ([], [], 0)
    assert list(page.events) == [] and page.cursor == 0
    assert first.HasField("heartbeat") and first.cursor == 0


@pytest.mark.parametrize("call", ["ListFiles", "Changes", "Ack"])
async def test_sync_calls_without_a_token_are_unauthenticated(client, call):
    request = {"ListFiles": sync_pb2.ListFilesRequest(), "Changes": sync_pb2.ChangesRequest(),
               "Ack": sync_pb2.AckRequest()}[call]
    code, _ = await status_of(getattr(client.sync, call)(request))
    assert code == grpc.StatusCode.UNAUTHENTICATED


async def test_watch_and_diff_without_a_token_are_unauthenticated(client):
    watch = await _stream_end(client.sync.Watch(sync_pb2.WatchRequest()))
    diff = await _stream_end(client.sync.Diff(iter(())))
    assert watch[0] == diff[0] == grpc.StatusCode.UNAUTHENTICATED


# -- Devices and pruning ----------------------------------------------------------------

PHONE = sync_pb2.Device(id="phone-install-1", name="Pixel")


async def device_rows(app: App) -> dict[str, tuple[str, int]]:
    async with app.db.read() as session:
        rows = await session.execute(select(DeviceRow.device_id, DeviceRow.name,
                                            DeviceRow.cursor))
        return {device_id: (name, cursor) for device_id, name, cursor in rows}


async def test_ack_remembers_the_devices_cursor_and_never_moves_it_back(app, client, alice):
    for i in range(3):
        await add_song(client, b"ack %d" % i)
    await client.sync.Ack(sync_pb2.AckRequest(device=PHONE, cursor=3), metadata=client.meta())
    await client.sync.Ack(sync_pb2.AckRequest(device=PHONE, cursor=1), metadata=client.meta())
    assert await device_rows(app) == {"phone-install-1": ("Pixel", 3)}


@pytest.mark.parametrize("request_fields, code", [
    ({"cursor": 1}, grpc.StatusCode.INVALID_ARGUMENT),
    ({"device": PHONE, "cursor": 9}, grpc.StatusCode.FAILED_PRECONDITION),
    ({"device": sync_pb2.Device(id="x" * 200), "cursor": 0}, grpc.StatusCode.INVALID_ARGUMENT),
    ({"device": sync_pb2.Device(id="tab\there"), "cursor": 0},
     grpc.StatusCode.INVALID_ARGUMENT),
])
async def test_ack_refuses_missing_devices_and_unknown_cursors(client, alice, request_fields,
                                                               code):
    got, _ = await status_of(client.sync.Ack(sync_pb2.AckRequest(**request_fields),
                                             metadata=client.meta()))
    assert got == code


async def test_diff_with_a_cursor_counts_as_the_devices_acknowledgement(app, client, alice):
    await add_song(client, b"seen")
    _, _, _, cursor, _ = await run_diff(client, [], 0, PHONE)
    await run_diff(client, [], cursor, PHONE)
    assert await device_rows(app) == {"phone-install-1": ("Pixel", 1)}


async def test_tombstones_stay_until_every_recent_device_passed_them(app, client, alice, clock):
    retention = app.settings.tombstone_retention
    song = await add_song(client, b"tombstone")
    await client.sync.Ack(sync_pb2.AckRequest(device=PHONE, cursor=1), metadata=client.meta())
    await delete_song(client, song)
    clock.advance(retention + 10)  # old enough, but the phone has not seen the delete
    await client.sync.Ack(sync_pb2.AckRequest(device=PHONE, cursor=1), metadata=client.meta())

    assert await app.feed.prune() == 1  # only the added event the phone passed
    _, _, to_delete, _, _ = await run_diff(client, [bytes.fromhex(song)], 1)
    assert to_delete == [bytes.fromhex(song)]

    await client.sync.Ack(sync_pb2.AckRequest(device=PHONE, cursor=2), metadata=client.meta())
    assert await app.feed.prune() == 1
    code, message = await status_of(changes(client, since=1))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "expired" in message
    code, _ = await status_of(_diff_call(client, [], cursor=1))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert (await changes(client, since=2)).cursor == 2


async def test_devices_gone_longer_than_the_retention_do_not_hold_tombstones(
        app, client, alice, clock):
    song = await add_song(client, b"stale device")
    await run_diff(client, [], 0, sync_pb2.Device(id="old-laptop"))  # never acknowledges
    await delete_song(client, song)
    clock.advance(app.settings.tombstone_retention + 10)

    assert await app.feed.prune() == 2
    code, _ = await status_of(changes(client))
    assert code == grpc.StatusCode.FAILED_PRECONDITION  # from 0: history is gone
    _, _, _, cursor, _ = await run_diff(client, [])  # a full diff still works
    assert cursor == 2


async def test_fresh_tombstones_are_kept_for_devices_without_an_id(app, client, alice):
    song = await add_song(client, b"young")
    await delete_song(client, song)
    assert await app.feed.prune() == 0
    assert len((await changes(client)).events) == 2


async def test_pruned_cursor_survives_a_restart(tmp_path, clock):
    settings = make_settings(tmp_path, tombstone_retention=60)
    async with App(settings, clock=clock) as app, Client(app) as client:
        client.token = await register(client, "alice")
        await delete_song(client, await add_song(client, b"restart"))
        clock.advance(120)
        await app.feed.prune()
    async with App(settings, clock=clock) as app, Client(app) as client:
        client.token = (await client.auth.Login(auth_pb2.LoginRequest(
            username="alice", password=PASSWORD))).token
        code, _ = await status_of(changes(client, since=1))
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        assert (await changes(client, since=2)).cursor == 2


async def test_device_names_are_stored_without_touching_cursors(app, client, alice):
    await add_song(client, b"name")
    await changes(client, device=PHONE)
    await client.sync.Ack(sync_pb2.AckRequest(device=sync_pb2.Device(id=PHONE.id), cursor=1),
                          metadata=client.meta())
    assert await device_rows(app) == {"phone-install-1": ("Pixel", 1)}


async def test_events_of_other_subjects_reach_only_the_clients_that_ask_for_them(
        client, alice, settings):
    song = wav_bytes(1, salt=b"a song among other events")
    await upload(client, song)
    # A playlist's deletion as the playlist service records it: the next seq, no song hash.
    query(settings, "UPDATE users SET last_seq = last_seq + 1")
    query(settings, "INSERT INTO changes (user_id, seq, kind, sha256, at, subject, subject_id) "
          "VALUES (1, 2, 3, ?, 0, 1, 7)", b"")
    songs_only = await client.sync.Changes(sync_pb2.ChangesRequest(since=0),
                                           metadata=client.meta())
    assert [event.hash for event in songs_only.events] == [hashlib.sha256(song).hexdigest()]
    assert songs_only.events[0].subject == sync_pb2.SUBJECT_SONG
    assert songs_only.cursor == 2 and not songs_only.has_more  # passed the playlist event
    both = await client.sync.Changes(sync_pb2.ChangesRequest(
        since=0, subjects=[sync_pb2.SUBJECT_SONG, sync_pb2.SUBJECT_PLAYLIST]),
        metadata=client.meta())
    assert [event.subject for event in both.events] == [sync_pb2.SUBJECT_SONG,
                                                        sync_pb2.SUBJECT_PLAYLIST]
    assert both.events[1].playlist.id == 7 and both.events[1].hash == ""
    assert both.events[1].kind == sync_pb2.CHANGE_KIND_DELETED
    code, message = await status_of(client.sync.Changes(
        sync_pb2.ChangesRequest(subjects=[42]), metadata=client.meta()))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "unknown subject 42" in message
