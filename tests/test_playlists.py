"""library.PlaylistService against a real server, on SQLite and PostgreSQL: playlists
created, read, renamed, edited by operations (with stale edits aborted and merged),
deleted; songs keeping their places through replaces and moves, missing after a delete
and linked again when uploaded again; the limits; one user never seeing another's."""

from __future__ import annotations

import asyncio
import base64
import json

import grpc
import pytest

from musicsync.client.playlists import Insert, edit_operations, merge
from musicsync.players import playlists as playlist_domain
from musicsync.proto import auth_pb2, file_pb2, library_pb2, library_pb2_grpc, sync_pb2

from .conftest import PASSWORD, REGISTRATION_KEY
from .helpers import Client, query, sha, status_of, wait_until
from .transfer import upload, wav_bytes

Op = library_pb2.PlaylistOperation


def insert(position: int, *hashes: str) -> Op:
    return Op(insert=Op.Insert(position=position, hashes=list(hashes)))


def remove(position: int, count: int = 1) -> Op:
    return Op(remove=Op.Remove(position=position, count=count))


def move(from_position: int, to_position: int, count: int = 1) -> Op:
    return Op(move=Op.Move(from_position=from_position, to_position=to_position, count=count))


class Device:
    """One device of a user: the playlist stub and its token."""

    def __init__(self, client: Client, token: str) -> None:
        self.client = client
        self.token = token
        self.playlists = library_pb2_grpc.PlaylistServiceStub(client.channel)

    def meta(self):
        return self.client.meta(self.token)

    async def call(self, method: str, request):
        return await getattr(self.playlists, method)(request, metadata=self.meta())

    async def create(self, name: str, *hashes: str, description: str = "") -> library_pb2.Playlist:
        return (await self.call("CreatePlaylist", library_pb2.CreatePlaylistRequest(
            name=name, description=description, hashes=list(hashes)))).playlist

    async def get(self, playlist_id: int, offset: int = 0, limit: int = 0
                  ) -> library_pb2.Playlist:
        return (await self.call("GetPlaylist", library_pb2.GetPlaylistRequest(
            id=playlist_id, offset=offset, limit=limit))).playlist

    async def hashes(self, playlist_id: int) -> list[str]:
        return [entry.hash for entry in (await self.get(playlist_id)).entries]

    async def edit(self, playlist_id: int, base_version: int, *operations: Op
                   ) -> library_pb2.Playlist:
        return (await self.call("EditPlaylist", library_pb2.EditPlaylistRequest(
            id=playlist_id, base_version=base_version, operations=list(operations)))).playlist

    async def upload(self, data: bytes, **fields) -> str:
        await upload(self.client, data, file_pb2.FileMetadata(**fields), token=self.token)
        return sha(data)


@pytest.fixture
async def device(client, alice) -> Device:
    return Device(client, alice.token)


async def songs(device: Device, count: int) -> list[str]:
    return [await device.upload(wav_bytes(0.05, salt=f"song {n}".encode()),
                                filename=f"song {n}.wav") for n in range(count)]


async def second_device(client, username: str = "alice") -> Device:
    answer = await client.auth.Login(auth_pb2.LoginRequest(username=username,
                                                            password=PASSWORD))
    return Device(client, answer.token)


# -- create, read, list, rename, describe, delete ----------------------------------------

async def test_a_playlist_is_created_listed_renamed_described_and_deleted(device):
    a, b = await songs(device, 2)
    made = await device.create("Road trip", a, b, a, description="for the car")
    assert (made.name, made.description, made.version, made.entry_count) == (
        "Road trip", "for the car", 1, 3)
    shown = await device.get(made.id)
    assert [(e.position, e.hash, e.path, e.missing) for e in shown.entries] == [
        (0, a, "song 0.wav", False), (1, b, "song 1.wav", False), (2, a, "song 0.wav", False)]
    await device.create("Another")
    listed = (await device.call("ListPlaylists", library_pb2.ListPlaylistsRequest())).playlists
    assert [(p.name, p.entry_count, list(p.entries)) for p in listed] == [
        ("Another", 0, []), ("Road trip", 3, [])]

    renamed = (await device.call("UpdatePlaylist", library_pb2.UpdatePlaylistRequest(
        id=made.id, name="Long road"))).playlist
    assert (renamed.name, renamed.description, renamed.version) == ("Long road", "for the car", 2)
    described = (await device.call("UpdatePlaylist", library_pb2.UpdatePlaylistRequest(
        id=made.id, description="", base_version=2))).playlist
    assert (described.name, described.description, described.version) == ("Long road", "", 3)

    await device.call("DeletePlaylist", library_pb2.DeletePlaylistRequest(id=made.id))
    code, message = await status_of(device.get(made.id))
    assert code == grpc.StatusCode.NOT_FOUND and f"no playlist {made.id}" in message
    listed = (await device.call("ListPlaylists", library_pb2.ListPlaylistsRequest())).playlists
    assert [p.name for p in listed] == ["Another"]


async def test_names_are_unique_per_user_and_must_be_given(device, client):
    first = await device.create("Mix")
    code, message = await status_of(device.create("Mix"))
    assert code == grpc.StatusCode.ALREADY_EXISTS
    assert f"a playlist named 'Mix' (id {first.id})" in message
    other = await device.create("Other")
    code, _ = await status_of(device.call("UpdatePlaylist", library_pb2.UpdatePlaylistRequest(
        id=other.id, name="Mix")))
    assert code == grpc.StatusCode.ALREADY_EXISTS
    for name in ("", "   ", "line\nbreak"):
        code, message = await status_of(device.create(name))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "name" in message, name
    # Another user may use the same name.
    bob = await register(client, "bob")
    assert (await bob.create("Mix")).name == "Mix"


# -- edits ---------------------------------------------------------------------------------

async def test_edits_insert_remove_and_move_in_order_with_a_song_twice(device):
    a, b, c, d = await songs(device, 4)
    made = await device.create("Edited", a, b)
    after = await device.edit(made.id, 1, insert(2, c, a), insert(0, d), remove(2),
                              move(0, 2, 2))
    # [a b] -> [a b c a] -> [d a b c a] -> [d a c a] -> move d,a to 2 of [c a] -> [c a d a]
    assert (after.version, after.entry_count, list(after.entries)) == (2, 4, [])
    assert await device.hashes(made.id) == [c, a, d, a]
    await device.edit(made.id, 2, move(3, 0), remove(1, 2))  # [a c a d] -> [a d]
    assert await device.hashes(made.id) == [a, d]


async def test_an_edit_applies_all_its_operations_or_none(device):
    a, b = await songs(device, 2)
    made = await device.create("Whole", a, b)
    code, message = await status_of(device.edit(made.id, 1, insert(0, b), remove(2, 5)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "operation 2 (remove)" in message and "has 3 entries" in message
    unknown = "ab" * 32
    code, message = await status_of(device.edit(made.id, 1, remove(0), insert(0, unknown)))
    assert code == grpc.StatusCode.NOT_FOUND and unknown in message
    code, message = await status_of(device.edit(made.id, 1, Op()))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "operation 1 is empty" in message
    code, message = await status_of(device.edit(made.id, 0, remove(0)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "base_version" in message
    shown = await device.get(made.id)
    assert (shown.version, [e.hash for e in shown.entries]) == (1, [a, b])


async def test_entries_come_in_pages(device):
    hashes = await songs(device, 5)
    made = await device.create("Paged", *hashes)
    page = await device.get(made.id, offset=1, limit=3)
    assert [(e.position, e.hash) for e in page.entries] == list(enumerate(hashes))[1:4]
    assert page.entry_count == 5
    assert list((await device.get(made.id, offset=9)).entries) == []
    code, _ = await status_of(device.get(made.id, limit=1001))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


# -- two devices at once -------------------------------------------------------------------

async def test_two_devices_edit_at_once_one_is_aborted_merges_and_both_converge(device, client):
    a, b, c, d, e = await songs(device, 5)
    phone, laptop = device, await second_device(client)
    watcher = await second_device(client)
    watched: list[sync_pb2.ChangeEvent] = []

    async def watch():
        stream = client.sync.Watch(sync_pb2.WatchRequest(
            subjects=[sync_pb2.SUBJECT_PLAYLIST]), metadata=watcher.meta())
        async for message in stream:
            if message.WhichOneof("kind") == "event":
                watched.append(message.event)

    watching = asyncio.create_task(watch())
    try:
        made = await phone.create("Shared", a, b, c)
        base = await phone.hashes(made.id)  # both devices start from version 1
        # The laptop puts e first; the phone, unaware, removes b and appends d.
        await laptop.edit(made.id, 1, insert(0, e))
        phone_wants = [a, c, d]
        code, message = await status_of(phone.edit(made.id, 1, remove(1), insert(2, d)))
        assert code == grpc.StatusCode.ABORTED
        assert message == (f"playlist {made.id} is at version 2, not 1: fetch it, reapply "
                           f"your edit, send again")
        # The merge a client does (README): fetch, rebase its own edit, send again.
        now = await phone.get(made.id)
        merged = merge(base, phone_wants, [entry.hash for entry in now.entries])
        assert merged == [e, a, c, d]
        operations = [_wire(op) for op in edit_operations(
            [entry.hash for entry in now.entries], merged)]
        after = await phone.edit(made.id, now.version, *operations)
        assert after.version == 3
        assert await phone.hashes(made.id) == await laptop.hashes(made.id) == [e, a, c, d]
        renamed = (await laptop.call("UpdatePlaylist", library_pb2.UpdatePlaylistRequest(
            id=made.id, name="Shared too", base_version=3))).playlist
        await laptop.call("DeletePlaylist", library_pb2.DeletePlaylistRequest(id=made.id))
        await wait_until(lambda: len(watched) == 5, "five playlist events")
    finally:
        watching.cancel()
    assert [(w.kind, w.subject, w.playlist.id) for w in watched] == [
        (sync_pb2.CHANGE_KIND_ADDED, sync_pb2.SUBJECT_PLAYLIST, made.id),
        *[(sync_pb2.CHANGE_KIND_UPDATED, sync_pb2.SUBJECT_PLAYLIST, made.id)] * 3,
        (sync_pb2.CHANGE_KIND_DELETED, sync_pb2.SUBJECT_PLAYLIST, made.id)]
    assert [w.seq for w in watched] == sorted(w.seq for w in watched)
    assert renamed.version == 4


def _wire(operation) -> Op:
    if isinstance(operation, Insert):
        return insert(operation.position, *operation.hashes)
    return remove(operation.position, operation.count)


# -- songs that change, go and come back -----------------------------------------------------

async def test_a_replace_and_a_move_keep_the_songs_places(device, client):
    a, b = await songs(device, 2)
    made = await device.create("Kept", a, b, a)
    retagged = wav_bytes(0.05, salt=b"song 0, new tags")
    a2 = await device.upload(retagged, filename="song 0.wav", replaces=a)
    await client.file.Move(file_pb2.MoveRequest(hash=a2, path="Moved/song 0.wav"),
                           metadata=device.meta())
    shown = await device.get(made.id)
    assert [(e.hash, e.path, e.missing) for e in shown.entries] == [
        (a2, "Moved/song 0.wav", False), (b, "song 1.wav", False),
        (a2, "Moved/song 0.wav", False)]


async def test_a_deleted_song_stays_missing_and_is_linked_again_when_uploaded_again(
        device, client, settings):
    a, b = await songs(device, 2)
    retagged = wav_bytes(0.05, salt=b"song 0, new tags")
    made = await device.create("Gaps", a, b, a)
    a2 = await device.upload(retagged, filename="song 0.wav", replaces=a)
    await client.file.Move(file_pb2.MoveRequest(hash=a2, path="Moved/zero.wav"),
                           metadata=device.meta())
    await client.file.Delete(file_pb2.DeleteRequest(hash=a2), metadata=device.meta())
    shown = await device.get(made.id)
    # Missing, with the song's last hash and path (not those of when it was added).
    assert [(e.hash, e.path, e.missing) for e in shown.entries] == [
        (a2, "Moved/zero.wav", True), (b, "song 1.wav", False), (a2, "Moved/zero.wav", True)]
    assert shown.version == 1  # no position moved
    assert query(settings, "SELECT count(*) FROM playlist_entries WHERE library_id IS NULL") \
        == [(2,)]
    code, message = await status_of(device.edit(made.id, 1, insert(0, a2)))
    assert code == grpc.StatusCode.NOT_FOUND and a2 in message
    # Another user's upload of the same content links nothing of alice's.
    bob = await register(client, "bob")
    await bob.upload(retagged, filename="bob's.wav")
    assert all(e.missing for e in (await device.get(made.id)).entries[::2])
    await device.upload(retagged, path="Back/zero.wav")
    shown = await device.get(made.id)
    assert [(e.hash, e.path, e.missing) for e in shown.entries] == [
        (a2, "Back/zero.wav", False), (b, "song 1.wav", False), (a2, "Back/zero.wav", False)]
    # Removing a missing entry works like any other.
    await device.client.file.Delete(file_pb2.DeleteRequest(hash=b), metadata=device.meta())
    await device.edit(made.id, 1, remove(1))
    assert await device.hashes(made.id) == [a2, a2]


# -- listing page by page ------------------------------------------------------------------

async def list_page(device: Device, size: int = 0, token: str = ""
                    ) -> library_pb2.ListPlaylistsResponse:
    return await device.call("ListPlaylists", library_pb2.ListPlaylistsRequest(
        page=library_pb2.Page(size=size, token=token)))


async def every_page(device: Device, size: int) -> list[list[library_pb2.Playlist]]:
    pages, token = [], ""
    while True:
        page = await list_page(device, size, token)
        pages.append(list(page.playlists))
        token = page.next_page_token
        if not token:
            return pages


def forged(token: str, *values) -> str:
    """``token`` with its position (the values after the listing's name) replaced."""
    listing = json.loads(base64.urlsafe_b64decode(token))[0]
    return base64.urlsafe_b64encode(json.dumps([listing, *values]).encode()).decode()


async def test_pages_of_1200_playlists_list_each_once_by_name_and_old_clients_get_all(
        device, monkeypatch):
    monkeypatch.setattr(playlist_domain, "MAX_PLAYLISTS_PER_USER", 1200)
    names = [f"list {n:04d}" for n in range(1200)]
    shuffled = names[1::2] + names[::2]  # made out of order: the list sorts them
    for start in range(0, len(shuffled), 50):
        await asyncio.gather(*(device.create(name, description=f"about {name}")
                               for name in shuffled[start:start + 50]))
    pages = await every_page(device, 500)
    assert [len(page) for page in pages] == [500, 500, 200]
    assert [p.name for page in pages for p in page] == names
    assert all(p.description == f"about {p.name}" for page in pages for p in page)
    pages = await every_page(device, 0)  # 0: the default page of 100
    assert [len(page) for page in pages] == [100] * 12
    assert [p.name for page in pages for p in page] == names
    # A client from before paging sends no page: all of them in one answer, no token.
    old = await device.call("ListPlaylists", library_pb2.ListPlaylistsRequest())
    assert [p.name for p in old.playlists] == names and old.next_page_token == ""


async def test_playlists_made_or_deleted_between_pages_never_repeat_or_skip_one(device):
    made = {name: await device.create(name) for name in "bdfhj"}
    first = await list_page(device, 2)
    assert [p.name for p in first.playlists] == ["b", "d"]
    # Deleting a row already seen and adding one before the position move no later row.
    await device.call("DeletePlaylist", library_pb2.DeletePlaylistRequest(id=made["b"].id))
    await device.create("a")
    await device.create("g")
    second = await list_page(device, 2, first.next_page_token)
    third = await list_page(device, 2, second.next_page_token)
    assert [p.name for p in [*second.playlists, *third.playlists]] == ["f", "g", "h", "j"]
    assert third.next_page_token == ""


async def test_a_page_of_long_descriptions_ends_early_and_continues(device, monkeypatch):
    from musicsync.services import playlist_service
    for name in "abc":
        await device.create(name, description=name * 4096)
    monkeypatch.setattr(playlist_service, "PAGE_BUDGET_BYTES", 5000)  # one fits, not two
    first = await list_page(device, 3)
    assert [(p.name, p.description) for p in first.playlists] == [("a", "a" * 4096)]
    rest = await every_page_from(device, first.next_page_token)
    assert [(p.name, len(p.description)) for p in rest] == [("b", 4096), ("c", 4096)]


async def every_page_from(device: Device, token: str) -> list[library_pb2.Playlist]:
    found = []
    while token:
        page = await list_page(device, 3, token)
        found += page.playlists
        token = page.next_page_token
    return found


async def test_a_garbage_or_forged_page_token_is_invalid_argument(device):
    for name in "abc":
        await device.create(name)
    token = (await list_page(device, 1)).next_page_token
    assert [p.name for p in (await list_page(device, 5, forged(token, "az", 0))).playlists] == [
        "b", "c"]  # a position made up by the client: only its own rows, after it
    albums_token = base64.urlsafe_b64encode(json.dumps(["albums:1", "a", "b"]).encode()).decode()
    for bad in ("not a token", "x" * 20000, albums_token, forged(token, "a"),
                forged(token, "a", "1"), forged(token, "a", 2 ** 64), forged(token, "a\x00", 1),
                forged(token, "\ud800", 1), forged(token, "a", True)):
        code, message = await status_of(list_page(device, 1, bad))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, bad
        assert "page.token is not a token of this listing" in message
    for size in (-1, 501):
        code, message = await status_of(list_page(device, size))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "between 1 and 500" in message


# -- limits --------------------------------------------------------------------------------

async def test_limits_are_named_when_reached(device, monkeypatch):
    a, b = await songs(device, 2)
    monkeypatch.setattr(playlist_domain, "MAX_PLAYLISTS_PER_USER", 2)
    monkeypatch.setattr(playlist_domain, "MAX_PLAYLIST_ENTRIES", 3)
    first = await device.create("One", a, b)
    await device.create("Two")
    code, message = await status_of(device.create("Three"))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "at most 2 playlists" in message
    await device.edit(first.id, 1, insert(2, a))
    code, message = await status_of(device.edit(first.id, 2, insert(0, b)))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "at most 3 entries" in message
    code, message = await status_of(device.create("x" * 257))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "at most 256 characters" in message
    code, message = await status_of(device.create("Long", description="x" * 4097))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "at most 4096 characters" in message
    code, message = await status_of(device.edit(first.id, 2, *[move(0, 0)] * 1001))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "at most 1000 operations" in message
    code, message = await status_of(device.edit(first.id, 2, insert(0, *[a] * 1001)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "at most 1000 songs" in message
    code, message = await status_of(device.create("Many", *[a] * 1001))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "at most 1000 songs" in message


async def test_a_list_too_big_with_descriptions_comes_without_them(device, monkeypatch):
    from musicsync.services import playlist_service
    await device.create("Described", description="d" * 4096)
    listed = (await device.call("ListPlaylists", library_pb2.ListPlaylistsRequest())).playlists
    assert listed[0].description == "d" * 4096
    monkeypatch.setattr(playlist_service, "LIST_BUDGET_BYTES", 4000)
    listed = (await device.call("ListPlaylists", library_pb2.ListPlaylistsRequest())).playlists
    assert (listed[0].name, listed[0].description) == ("Described", "")
    assert (await device.get(listed[0].id)).description == "d" * 4096


# -- isolation -----------------------------------------------------------------------------

async def register(client, username: str) -> Device:
    answer = await client.auth.Register(auth_pb2.RegisterRequest(
        username=username, password=PASSWORD, security_key=REGISTRATION_KEY))
    return Device(client, answer.token)


async def test_another_users_playlists_are_never_shown_listed_or_touched(device, client):
    (a,) = await songs(device, 1)
    mine = await device.create("Alice's", a)
    bob = await register(client, "bob")
    assert list((await bob.call("ListPlaylists",
                                library_pb2.ListPlaylistsRequest())).playlists) == []
    attempts = [
        bob.get(mine.id),
        bob.edit(mine.id, 1, remove(0)),
        bob.call("UpdatePlaylist", library_pb2.UpdatePlaylistRequest(id=mine.id, name="x")),
        bob.call("DeletePlaylist", library_pb2.DeletePlaylistRequest(id=mine.id)),
        bob.get(2 ** 64 - 1),
    ]
    for attempt in attempts:
        code, message = await status_of(attempt)
        assert code == grpc.StatusCode.NOT_FOUND and "you have no playlist" in message
    assert list((await list_page(bob, 1)).playlists) == []  # nor page by page
    # Alice's songs are not bob's to put in a playlist of his.
    code, _ = await status_of(bob.create("Bob's", a))
    assert code == grpc.StatusCode.NOT_FOUND
    shown = await device.get(mine.id)
    assert (shown.name, shown.version, [e.hash for e in shown.entries]) == ("Alice's", 1, [a])
    # Nor do alice's playlist events reach bob's feed.
    feed = await client.sync.Changes(sync_pb2.ChangesRequest(
        subjects=[sync_pb2.SUBJECT_PLAYLIST]), metadata=bob.meta())
    assert list(feed.events) == []


async def test_a_page_token_of_another_user_continues_nothing(device, client):
    for name in ("Alice's first", "Alice's second"):
        await device.create(name)
    bob = await register(client, "bob")
    for name in ("Bob's first", "Bob's second"):
        await bob.create(name)
    alices = (await list_page(device, 1)).next_page_token
    bobs = (await list_page(bob, 1)).next_page_token
    for who, token in ((bob, alices), (device, bobs)):
        code, message = await status_of(list_page(who, 1, token))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "token" in message
        assert "Alice" not in message and "Bob" not in message
    # Each still pages through their own.
    assert [p.name for p in (await list_page(bob, 5, bobs)).playlists] == ["Bob's second"]
