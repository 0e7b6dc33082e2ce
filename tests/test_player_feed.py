"""What players keep travels one change feed: a device watching songs, playlists and song
stats sees every change of each, in the order they were made, and a device that asks for
songs alone sees none of the others (its cursor passes them by)."""

from __future__ import annotations

import asyncio
import time

from musicsync.proto import file_pb2, library_pb2, library_pb2_grpc, sync_pb2

from .helpers import Client, sha
from .transfer import upload, wav_bytes

EVERYTHING = [sync_pb2.SUBJECT_SONG, sync_pb2.SUBJECT_PLAYLIST, sync_pb2.SUBJECT_SONG_STATS]


async def read_events(watch, count: int) -> list[sync_pb2.ChangeEvent]:
    """The next ``count`` events of a Watch stream (heartbeats skipped)."""
    events = []
    while len(events) < count:
        response = await asyncio.wait_for(watch.read(), 30)
        if response.WhichOneof("kind") == "event":
            events.append(response.event)
    return events


async def test_a_third_device_sees_song_playlist_favourite_and_play_changes_in_order(
        app, client, alice):
    async with Client(app) as watcher:
        watcher.token = client.token
        watch = watcher.sync.Watch(sync_pb2.WatchRequest(heartbeat_seconds=3600,
                                                         subjects=EVERYTHING),
                                   metadata=watcher.meta())
        song = wav_bytes(1, salt=b"one feed for everything")
        await upload(client, song, file_pb2.FileMetadata(filename="song.wav"))
        playlists = library_pb2_grpc.PlaylistServiceStub(client.channel)
        listening = library_pb2_grpc.ListeningServiceStub(client.channel)
        made = await playlists.CreatePlaylist(library_pb2.CreatePlaylistRequest(
            name="Mix", hashes=[sha(song)]), metadata=client.meta())
        now_ms = int(time.time() * 1000)
        await listening.RateSong(library_pb2.RateSongRequest(
            hash=sha(song), starred=True, rating=5, at_ms=now_ms), metadata=client.meta())
        await playlists.EditPlaylist(library_pb2.EditPlaylistRequest(
            id=made.playlist.id, base_version=made.playlist.version,
            operations=[library_pb2.PlaylistOperation(insert=library_pb2.PlaylistOperation
                                                      .Insert(position=1,
                                                              hashes=[sha(song)]))]),
            metadata=client.meta())
        await listening.RecordPlays(library_pb2.RecordPlaysRequest(plays=[library_pb2.Play(
            id="phone-1", hash=sha(song), started_at_ms=now_ms - 60_000,
            seconds_played=60, completed=True)]), metadata=client.meta())

        events = await read_events(watch, 5)
        watch.cancel()

    assert [(event.subject, event.kind) for event in events] == [
        (sync_pb2.SUBJECT_SONG, sync_pb2.CHANGE_KIND_ADDED),
        (sync_pb2.SUBJECT_PLAYLIST, sync_pb2.CHANGE_KIND_ADDED),
        (sync_pb2.SUBJECT_SONG_STATS, sync_pb2.CHANGE_KIND_UPDATED),
        (sync_pb2.SUBJECT_PLAYLIST, sync_pb2.CHANGE_KIND_UPDATED),
        (sync_pb2.SUBJECT_SONG_STATS, sync_pb2.CHANGE_KIND_UPDATED)]
    assert [event.seq for event in events] == sorted(event.seq for event in events)
    assert events[1].playlist.name == "Mix" and events[3].playlist.entry_count == 2
    assert events[2].stats.starred and events[2].stats.rating == 5
    assert events[4].stats.play_count == 1 and events[4].hash == sha(song)
    songs_only = await client.sync.Changes(sync_pb2.ChangesRequest(since=0),
                                           metadata=client.meta())
    assert [event.subject for event in songs_only.events] == [sync_pb2.SUBJECT_SONG]
    assert songs_only.cursor == events[-1].seq
