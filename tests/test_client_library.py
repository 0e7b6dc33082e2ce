"""The client library (musicsync.client) against a real server on loopback."""

from __future__ import annotations

import asyncio

import grpc
import pytest

import musicsync.client
from musicsync.client import (
    ChangeEvent,
    Client,
    Device,
    DownloadCorrupt,
    FileChanged,
    Heartbeat,
    NotFound,
    NotSignedIn,
    Refused,
    ServerUnavailable,
)
from musicsync.client.livefeed import LiveFeed, newest_cursor
from musicsync.client.transfer import partial_path
from musicsync.proto import file_pb2
from musicsync.server import App

from .client_support import BreakingRelay, partial_bytes, sha, signed_in, song_file, target_of
from .conftest import PASSWORD, make_settings
from .helpers import free_port, wait_until
from .transfer import wav_bytes

DAY = 24 * 3600


def test_public_names_are_pinned():
    assert sorted(musicsync.client.__all__) == [
        "ChangeEvent", "ChangeFeed", "Client", "ClientError", "Device", "DiffResult",
        "DownloadCorrupt", "DownloadResult", "FileChanged", "Heartbeat", "NotFound",
        "NotSignedIn", "Refused", "RemoteFile", "ServerUnavailable", "SharedTokens",
        "StatResult", "Tokens", "UploadResult"]


# -- signing in and staying signed in --------------------------------------------------

async def test_login_returns_a_token_pair_and_reports_it(app, library):
    seen = []
    async with Client(target_of(app), on_tokens=seen.append) as client:
        tokens = await client.login("alice", PASSWORD)
        assert seen == [tokens] and tokens.access_token and tokens.refresh_token
        assert tokens.access_expires_at > 0 and tokens.refresh_expires_at > tokens.access_expires_at
        assert [f async for f in client.list_files()] == []


async def test_wrong_password_is_not_signed_in_with_the_servers_reason(app, library):
    async with Client(target_of(app)) as client:
        with pytest.raises(NotSignedIn, match="refused the sign-in of alice: invalid credentials"):
            await client.login("alice", "not the password")


async def test_unreachable_server_is_server_unavailable_naming_the_address():
    target = f"127.0.0.1:{free_port()}"
    async with Client(target) as client:
        with pytest.raises(ServerUnavailable,
                           match=f"cannot reach the musicsync server at {target}"):
            await client.login("alice", PASSWORD)


async def test_calls_without_signing_in_say_to_sign_in(app):
    async with Client(target_of(app)) as client:
        with pytest.raises(NotSignedIn, match="musicsync login"):
            await client.stat([sha(b"x")])


async def test_an_access_token_the_server_finds_expired_is_refreshed_and_the_call_retried(
        app, clock):
    seen = []
    client = await signed_in(app, on_tokens=seen.append)
    async with client:
        clock.advance(2 * 3600)  # the server's clock: the 1 h access token has run out
        assert (await client.stat([sha(b"x")])).missing == [sha(b"x")]
    assert len(seen) == 2 and seen[1].refresh_token != seen[0].refresh_token
    assert seen[1].access_token != seen[0].access_token


async def test_an_access_token_about_to_expire_is_refreshed_before_the_call(app, clock):
    seen = []
    client = await signed_in(app, on_tokens=seen.append, clock=clock)
    async with client:
        clock.advance(3600 - 30)  # still valid for the server, but within the minute
        await client.stat([sha(b"x")])
        assert len(seen) == 2
        await client.stat([sha(b"x")])  # the new one is fresh: no second refresh
        assert len(seen) == 2


async def test_concurrent_calls_refresh_once(app, clock):
    seen = []
    client = await signed_in(app, on_tokens=seen.append, clock=clock)
    async with client:
        clock.advance(3600 - 30)
        await asyncio.gather(*(client.stat([sha(b"x")]) for _ in range(5)))
    assert len(seen) == 2  # a second refresh with the used token would end the sign-in


async def test_an_expired_refresh_token_says_to_run_login_again(app, clock):
    client = await signed_in(app)
    async with client:
        clock.advance(31 * DAY)
        with pytest.raises(NotSignedIn, match="run `musicsync login SERVER` again"):
            await client.stat([sha(b"x")])


async def test_logout_revokes_the_refresh_token_on_the_server(app, clock):
    client = await signed_in(app)
    tokens = client.tokens
    await client.logout()
    await client.close()
    assert client.tokens is None
    clock.advance(2 * 3600)
    async with Client(target_of(app), tokens=tokens) as again:
        with pytest.raises(NotSignedIn, match="sign-in at .* has ended"):
            await again.stat([sha(b"x")])


# -- uploads and downloads --------------------------------------------------------------

async def test_upload_then_download_round_trip_matches_sha256(library, tmp_path):
    source = song_file(tmp_path / "here", "song.wav", seconds=30)  # 480 KB
    data = source.read_bytes()
    progress = []
    result = await library.upload(source, progress=progress.append)
    assert result.hash == sha(data) and result.entry.size == len(data)
    assert result.entry.filename == "song.wav" and result.bytes_sent == len(data)
    assert library.bytes_sent == len(data) and progress[-1] == len(data)
    dest = tmp_path / "there" / "deep" / "copy.wav"
    got = await library.download(result.hash, dest)
    assert dest.read_bytes() == data and got.bytes_received == len(data) == got.size
    assert library.bytes_received == len(data)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["copy.wav"]  # no partial left
    listed = [f async for f in library.list_files()]
    assert [(f.hash, f.path, f.size) for f in listed] == [(result.hash, "song.wav", len(data))]


async def test_uploading_a_song_the_library_holds_sends_no_bytes(library, tmp_path):
    source = song_file(tmp_path, "song.wav")
    await library.upload(source)
    sent = library.bytes_sent
    again = await library.upload(source)
    assert again.bytes_sent == 0 and library.bytes_sent == sent
    assert again.hash == sha(source.read_bytes())


async def test_a_small_song_said_to_be_new_goes_at_once_and_a_wrong_guess_harms_nothing(
        library, tmp_path):
    source = song_file(tmp_path, "song.wav")
    size = source.stat().st_size
    first = await library.upload(source, new=True)
    assert first.bytes_sent == size
    # Told "new" wrongly (another device sent it meanwhile): the bytes go for nothing,
    # and the library still holds the song once, where it was.
    again = await library.upload(source, path="Elsewhere/song.wav", new=True)
    assert again.bytes_sent == size and again.duplicate_of_path == "song.wav"
    assert [(f.hash, f.path) async for f in library.list_files()] == [(first.hash, "song.wav")]


async def test_upload_continues_an_interrupted_upload_and_sends_only_the_rest(
        app, library, tmp_path):
    source = song_file(tmp_path, "song.wav", seconds=300)  # 4.8 MB: over SMALL_FILE, resumable
    data = source.read_bytes()
    # An earlier run sent 200,000 bytes before it stopped.
    start = await library._file.StartUpload(file_pb2.StartUploadRequest(
        sha256=sha(data), size=len(data)), metadata=await library._metadata())

    async def first_part():
        yield file_pb2.UploadRequest(metadata=file_pb2.FileMetadata(
            upload_id=start.upload_id, offset=0))
        yield file_pb2.UploadRequest(chunk=data[:200_000])
    with pytest.raises(grpc.aio.AioRpcError):
        await library._file.Upload(first_part(), metadata=await library._metadata())

    result = await library.upload(source)
    assert result.resumed_from == 200_000
    assert result.bytes_sent == library.bytes_sent == len(data) - 200_000
    got = await library.download(result.hash, tmp_path / "copy.wav")
    assert (tmp_path / "copy.wav").read_bytes() == data and got.size == len(data)


async def test_upload_through_a_dropped_connection_resumes_instead_of_starting_over(
        app, settings, tmp_path):
    source = song_file(tmp_path, "song.wav", seconds=300)  # 4.8 MB: over SMALL_FILE, resumable
    data = source.read_bytes()
    port = int(target_of(app).rsplit(":", 1)[1])
    async with BreakingRelay(port, hold_after=1_500_000) as relay:
        client = Client(relay.target)
        async with client:
            await client.register("alice", PASSWORD, "test-registration-key")
            upload = asyncio.create_task(client.upload(source))
            await wait_until(lambda: partial_bytes(settings.data_dir) >= 1024 * 1024,
                             "the server to store the first chunk")
            relay.cut()
            result = await upload
            assert result.attempts >= 2 and relay.connections == 2
            # The first 1 MiB chunk reached the server: the next stream starts after it.
            assert result.resumed_from == 1024 * 1024
            # At most the whole file on the broken stream, then only the rest.
            assert client.bytes_sent <= len(data) + len(data) - result.resumed_from
            await client.download(result.hash, tmp_path / "out" / "copy.wav")
    assert (tmp_path / "out" / "copy.wav").read_bytes() == data


async def test_a_small_file_through_a_dropped_connection_is_sent_whole_again(
        app, settings, tmp_path):
    source = song_file(tmp_path, "song.wav", seconds=190)  # 3 MB: no session for so little
    data = source.read_bytes()
    port = int(target_of(app).rsplit(":", 1)[1])
    # Through a session, the first 1 MiB chunk would be kept and the retry resume after it.
    async with BreakingRelay(port, hold_after=1_500_000) as relay:
        client = Client(relay.target)
        async with client:
            await client.register("alice", PASSWORD, "test-registration-key")
            upload = asyncio.create_task(client.upload(source))
            await wait_until(lambda: relay.held, "the relay to hold the stream")
            relay.cut()
            result = await upload
            assert result.attempts >= 2 and result.resumed_from == 0
            assert partial_bytes(settings.data_dir) == 0  # no resumable session was made
            await client.download(result.hash, tmp_path / "out" / "copy.wav")
    assert (tmp_path / "out" / "copy.wav").read_bytes() == data


async def test_an_upload_whose_bytes_do_not_match_the_given_hash_is_file_changed(
        library, tmp_path):
    source = song_file(tmp_path, "song.wav")
    with pytest.raises(FileChanged, match="changed while it was being uploaded"):
        await library.upload(source, sha256=sha(b"what the file held when it was hashed"))
    assert [f async for f in library.list_files()] == []


async def test_upload_of_a_file_that_is_not_audio_is_refused_with_the_servers_reason(
        library, tmp_path):
    (tmp_path / "notes.txt").write_bytes(b"not a song" * 100)
    with pytest.raises(Refused) as refused:
        await library.upload(tmp_path / "notes.txt")
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT and refused.value.message


async def test_download_resumes_from_its_partial_file(library, tmp_path):
    source = song_file(tmp_path, "song.wav", seconds=30)
    data = source.read_bytes()
    uploaded = await library.upload(source)
    dest = tmp_path / "out" / "song.wav"
    dest.parent.mkdir()
    partial_path(dest, uploaded.hash).write_bytes(data[:100_000])  # an earlier, cut download
    got = await library.download(uploaded.hash, dest)
    assert got.resumed_from == 100_000 and got.bytes_received == len(data) - 100_000
    assert library.bytes_received == len(data) - 100_000
    assert dest.read_bytes() == data and not partial_path(dest, uploaded.hash).exists()


async def test_a_corrupted_partial_is_detected_removed_and_nothing_lands_at_dest(
        library, tmp_path):
    source = song_file(tmp_path, "song.wav", seconds=30)
    data = source.read_bytes()
    uploaded = await library.upload(source)
    dest = tmp_path / "out" / "song.wav"
    dest.parent.mkdir()
    partial = partial_path(dest, uploaded.hash)
    partial.write_bytes(b"\xff" * 100_000)  # damaged on disk since
    with pytest.raises(DownloadCorrupt, match="partial file was removed"):
        await library.download(uploaded.hash, dest)
    assert not partial.exists() and not dest.exists()
    await library.download(uploaded.hash, dest)  # the next attempt starts afresh
    assert dest.read_bytes() == data


async def test_download_of_a_song_not_in_the_library_is_not_found(library, tmp_path):
    with pytest.raises(NotFound):
        await library.download(sha(b"nothing"), tmp_path / "out" / "x.wav")
    assert not (tmp_path / "out").exists()


async def test_delete_says_whether_the_song_was_there(library, tmp_path):
    uploaded = await library.upload(song_file(tmp_path, "song.wav"))
    assert await library.delete(uploaded.hash) is True
    assert await library.delete(uploaded.hash) is False
    assert (await library.stat([uploaded.hash])).missing == [uploaded.hash]


# -- sync --------------------------------------------------------------------------------

async def test_diff_says_what_to_upload_and_what_to_download(library, tmp_path):
    on_server = await library.upload(song_file(tmp_path, "a.wav"))
    only_here = sha(wav_bytes(salt=b"only here"))
    result = await library.diff([bytes.fromhex(only_here)])
    assert result.upload == [only_here]
    assert [f.hash for f in result.download] == [on_server.hash] and result.delete == []
    assert result.cursor > 0


async def test_changes_pages_to_the_end_and_exposes_the_cursor(library, tmp_path):
    hashes = [(await library.upload(song_file(tmp_path, f"{n}.wav"))).hash for n in range(3)]
    feed = library.changes(0, page_size=2)
    events = [event async for event in feed]
    assert [(e.kind, e.hash) for e in events] == [("added", h) for h in hashes]
    assert feed.cursor == events[-1].seq
    assert [e async for e in library.changes(feed.cursor)] == []


async def test_watch_reports_an_upload_as_it_happens(app, tmp_path):
    client = await signed_in(app, device=Device("desktop-1", "test desktop"))
    seen: list = []

    async def follow():
        async for item in client.watch(0, heartbeat_seconds=1):
            seen.append(item)

    async with client:
        task = asyncio.create_task(follow())
        await wait_until(lambda: any(isinstance(i, Heartbeat) for i in seen), "a heartbeat")
        uploaded = await client.upload(song_file(tmp_path, "live.wav"))
        await wait_until(lambda: any(isinstance(i, ChangeEvent) for i in seen), "the event")
        task.cancel()
        event = next(i for i in seen if isinstance(i, ChangeEvent))
        assert (event.kind, event.hash, event.file.filename) == ("added", uploaded.hash,
                                                                 "live.wav")
        await client.ack(event.cursor)


async def test_a_live_feed_reconnects_after_a_server_restart_from_its_last_cursor(tmp_path):
    settings = make_settings(tmp_path / "data", auth_port=free_port(), file_port=free_port(),
                             sync_port=free_port())
    drops: list = []
    seen: list[ChangeEvent] = []
    async with App(settings) as app:
        library = await signed_in(app)
        first = await library.upload(song_file(tmp_path, "first.wav"))
        feed = LiveFeed(library, 0, first_pause=0.05,
                        on_drop=lambda error, pause: drops.append(error),
                        on_back=lambda: drops.append("back"))

        async def follow():
            async for item in feed:
                if isinstance(item, ChangeEvent):
                    seen.append(item)

        task = asyncio.create_task(follow())
        await wait_until(lambda: len(seen) == 1, "the first song's event")
    try:
        await wait_until(lambda: drops, "the feed to see the stream end")
        async with App(settings):  # the same ports, data and keys
            await wait_until(lambda: "back" in drops, "the feed to reconnect")
            second = await library.upload(song_file(tmp_path, "second.wav"))
            await wait_until(lambda: len(seen) == 2, "the second song's event")
            told = list(drops)
    finally:
        task.cancel()
        await library.close()
    assert [e.hash for e in seen] == [first.hash, second.hash]  # nothing twice, nothing lost
    assert told[0] is None  # the server ended the stream as it stopped
    assert told[-1] == "back" and told.count("back") == 1
    assert feed.cursor == seen[-1].cursor


async def test_the_newest_cursor_is_found_with_a_few_one_event_pages(library, tmp_path):
    assert await newest_cursor(library) == 0
    await library.upload(song_file(tmp_path, "one.wav"))
    assert await newest_cursor(library) == 1
    for n in range(99):
        await library.upload(song_file(tmp_path, f"{n}.wav"))
    before = library.listing_bytes
    assert await newest_cursor(library) == 100
    searched = library.listing_bytes - before
    feed = library.changes(0)
    assert len([event async for event in feed]) == 100 and feed.cursor == 100
    read_through = library.listing_bytes - before - searched
    assert searched * 4 < read_through


# -- folder paths (the server side is on branch paths) -----------------------------------

async def test_upload_with_a_path_files_the_song_there(library, tmp_path):
    result = await library.upload(song_file(tmp_path, "x.wav"), path="Artist/Album/01 X.wav")
    assert (result.entry.path, result.entry.filename) == ("Artist/Album/01 X.wav", "01 X.wav")
    assert [f.path async for f in library.list_files()] == ["Artist/Album/01 X.wav"]


async def test_same_bytes_at_a_second_path_report_the_first_path(library, tmp_path):
    source = song_file(tmp_path, "x.wav")
    await library.upload(source, path="A/x.wav")
    again = await library.upload(source, path="B/x.wav")
    assert again.duplicate_of_path == "A/x.wav" and again.bytes_sent == 0


async def test_move_renames_a_song_without_sending_its_bytes(library, tmp_path):
    uploaded = await library.upload(song_file(tmp_path, "x.wav"), path="A/x.wav")
    sent = library.bytes_sent
    moved = await library.move(uploaded.hash, "B/renamed.wav")
    assert (moved.path, moved.filename) == ("B/renamed.wav", "renamed.wav")
    assert library.bytes_sent == sent


async def test_replacing_upload_takes_the_old_songs_path_and_one_event_names_it(
        library, tmp_path):
    old = await library.upload(song_file(tmp_path, "x.wav", salt=b"v1"), path="A/x.wav")
    cursor = (await library.diff([])).cursor
    new = await library.upload(song_file(tmp_path, "y.wav", salt=b"v2"), replaces=old.hash)
    assert new.entry.path == "A/x.wav"
    events = [e async for e in library.changes(cursor)]
    assert [(e.kind, e.hash, e.replaces) for e in events] == [("added", new.hash, old.hash)]


def test_a_server_named_without_a_port_is_reached_on_each_services_usual_port():
    from musicsync.client.connection import service_targets
    # Works with a one-process server and with one split into a process per service.
    assert service_targets("music.local") == {
        "auth": "music.local:50051", "file": "music.local:50052", "sync": "music.local:50053"}
    assert service_targets("[::1]") == {
        "auth": "[::1]:50051", "file": "[::1]:50052", "sync": "[::1]:50053"}
    # A port (behind a gRPC proxy, or a one-process server's any port) serves them all.
    assert set(service_targets("music.local:443").values()) == {"music.local:443"}
    assert set(service_targets("[::1]:7000").values()) == {"[::1]:7000"}
