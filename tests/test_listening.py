"""Favourites, ratings and plays (library.ListeningService), on both databases: real
servers on loopback, songs uploaded over the wire, plays timed by a device's clock."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from musicsync.limits import (MAX_PLAYS_PER_BATCH, MAX_STATS_HASHES, PLAY_BEFORE_ADDED_MS,
                              PLAY_CLOCK_SKEW_MS)
from musicsync.proto import (auth_pb2, file_pb2, library_pb2, library_pb2_grpc, sync_pb2)

from .client_support import song_file, target_of
from .conftest import PASSWORD, REGISTRATION_KEY
from .helpers import Client, query, sha, status_of
from .transfer import upload, wav_bytes

RECORDED = library_pb2.PlayResult.OUTCOME_RECORDED
DUPLICATE = library_pb2.PlayResult.OUTCOME_DUPLICATE
INVALID = library_pb2.PlayResult.OUTCOME_INVALID
MINUTE_MS = 60_000
DAY_MS = 24 * 3600 * 1000


@pytest.fixture
def listening(client) -> library_pb2_grpc.ListeningServiceStub:
    return library_pb2_grpc.ListeningServiceStub(client.channel)


async def add_song(client: Client, salt: bytes, filename: str = "song.wav", *,
                   token: str | None = None, replaces: str = "") -> str:
    data = wav_bytes(0.05, salt=salt)
    metadata = file_pb2.FileMetadata(filename=filename)
    if replaces:
        metadata.replaces = replaces
    return (await upload(client, data, metadata, token=token)).hash


async def register(client: Client, username: str) -> str:
    return (await client.auth.Register(auth_pb2.RegisterRequest(
        username=username, password=PASSWORD, security_key=REGISTRATION_KEY))).token


def now_ms(clock) -> int:
    return int(clock.now * 1000)


def play(id: str, hash: str, started_at_ms: int, seconds: int = 200, *, completed=True,
         skipped=False) -> library_pb2.Play:
    return library_pb2.Play(id=id, hash=hash, started_at_ms=started_at_ms,
                            seconds_played=seconds, completed=completed, skipped=skipped)


async def record(listening, client, plays, token=None) -> list[tuple[str, int, str]]:
    answer = await listening.RecordPlays(library_pb2.RecordPlaysRequest(plays=plays),
                                         metadata=client.meta(token))
    return [(r.id, r.outcome, r.error) for r in answer.results]


async def stats_of(listening, client, *hashes, token=None) -> dict[str, library_pb2.SongStats]:
    answer = await listening.GetSongStats(library_pb2.GetSongStatsRequest(hashes=hashes),
                                          metadata=client.meta(token))
    return {s.hash: s for s in answer.stats}


async def rate(listening, client, hash, at_ms, *, token=None, **fields):
    return (await listening.RateSong(library_pb2.RateSongRequest(hash=hash, at_ms=at_ms,
                                                                 **fields),
                                     metadata=client.meta(token))).stats


async def stats_events(client, since=0) -> list[sync_pb2.ChangeEvent]:
    answer = await client.sync.Changes(sync_pb2.ChangesRequest(
        since=since, subjects=[sync_pb2.SUBJECT_SONG_STATS]), metadata=client.meta())
    return list(answer.events)


# -- plays ------------------------------------------------------------------------------

async def test_a_batch_of_plays_sent_twice_counts_once(client, alice, listening, clock):
    song = await add_song(client, b"one")
    start = now_ms(clock) - 60 * MINUTE_MS
    batch = [play("p1", song, start), play("p2", song, start + 5 * MINUTE_MS),
             play("p3", song, start + 10 * MINUTE_MS, 3, skipped=True, completed=False)]

    first = await record(listening, client, batch)
    events_after_first = await stats_events(client)
    again = await record(listening, client, batch)

    assert [outcome for _, outcome, _ in first] == [RECORDED] * 3
    assert again == [("p1", DUPLICATE, ""), ("p2", DUPLICATE, ""), ("p3", DUPLICATE, "")]
    stats = (await stats_of(listening, client, song))[song]
    assert (stats.play_count, stats.skip_count) == (2, 1)
    assert stats.last_played_ms == start + 5 * MINUTE_MS  # a skip is not a listen
    # One event for the song's batch, none for the resend.
    assert [e.hash for e in events_after_first] == [song]
    assert len(await stats_events(client)) == 1


async def test_the_same_play_id_twice_in_one_batch_counts_once(client, alice, listening, clock):
    song = await add_song(client, b"one")
    start = now_ms(clock) - MINUTE_MS * 30
    results = await record(listening, client, [play("x", song, start), play("x", song, start)])
    assert [outcome for _, outcome, _ in results] == [RECORDED, DUPLICATE]
    assert (await stats_of(listening, client, song))[song].play_count == 1


async def test_plays_recorded_offline_in_any_order_keep_their_device_times(
        settings, client, alice, listening, clock):
    song, other = await add_song(client, b"one", "one.wav"), await add_song(client, b"two",
                                                                            "two.wav")
    base = now_ms(clock) - 3 * DAY_MS  # the phone was away for days
    times = [base + 2 * DAY_MS, base, base + DAY_MS]
    # Sent newest first, then older ones in a later batch: the latest start stands.
    await record(listening, client, [play("a", song, times[0]), play("b", other, times[1])])
    await record(listening, client, [play("c", song, times[1]), play("d", song, times[2]),
                                     play("e", other, times[2] + 1)])

    stats = await stats_of(listening, client, song, other)
    assert (stats[song].play_count, stats[song].last_played_ms) == (3, times[0])
    assert (stats[other].play_count, stats[other].last_played_ms) == (2, times[2] + 1)
    stored = query(settings, "SELECT play_id, started_at_ms FROM plays "
                                            "ORDER BY play_id")
    assert stored == [("a", times[0]), ("b", times[1]), ("c", times[1]), ("d", times[2]),
                      ("e", times[2] + 1)]


async def test_bad_plays_are_refused_one_by_one_while_the_rest_count(
        client, alice, listening, clock):
    song = await add_song(client, b"one")
    now = now_ms(clock)
    batch = [
        play("ok", song, now - MINUTE_MS),
        play("future", song, now + PLAY_CLOCK_SKEW_MS + MINUTE_MS),
        play("slightly-ahead", song, now + PLAY_CLOCK_SKEW_MS - MINUTE_MS),  # within skew
        play("unknown", sha(b"no such song"), now - MINUTE_MS),
        play("bad-hash", "xyz", now - MINUTE_MS),
        play("too-long", song, now - 2 * DAY_MS, 25 * 3600),
        play("before", song, now - PLAY_BEFORE_ADDED_MS - DAY_MS),
        play("at-zero", song, 0),
        play("", song, now - MINUTE_MS),
        play("i" * 65, song, now - MINUTE_MS),
    ]
    results = await record(listening, client, batch)

    outcomes = {id: (outcome, error) for id, outcome, error in results}
    assert [id for id, _, _ in results] == [p.id[:64] for p in batch]  # in the order sent
    assert outcomes["ok"] == (RECORDED, "") and outcomes["slightly-ahead"] == (RECORDED, "")
    refused = {id: error for id, (outcome, error) in outcomes.items() if outcome == INVALID}
    assert set(refused) == {"future", "unknown", "bad-hash", "too-long", "before",
                            "at-zero", "", "i" * 64}
    assert "ahead of the server's clock" in refused["future"]
    assert "no song" in refused["unknown"] and "64 hex" in refused["bad-hash"]
    assert "seconds_played" in refused["too-long"]
    assert "entered your library" in refused["before"]
    assert "entered your library" in refused["at-zero"]
    assert "1 to 64 characters" in refused[""] and "1 to 64" in refused["i" * 64]
    assert (await stats_of(listening, client, song))[song].play_count == 2
    # A refused play is not kept: sent again once fixed, it counts.
    fixed = await record(listening, client, [play("future", song, now - MINUTE_MS)])
    assert fixed == [("future", RECORDED, "")]


async def test_more_plays_than_a_batch_holds_are_refused_naming_the_bound(
        client, alice, listening, clock):
    song = await add_song(client, b"one")
    start = now_ms(clock) - DAY_MS
    batch = [play(f"p{i}", song, start + i) for i in range(MAX_PLAYS_PER_BATCH + 1)]
    code, message = await status_of(listening.RecordPlays(
        library_pb2.RecordPlaysRequest(plays=batch), metadata=client.meta()))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and str(MAX_PLAYS_PER_BATCH) in message
    assert (await stats_of(listening, client, song))[song].play_count == 0


async def test_a_batch_of_a_thousand_plays_counts_each_and_takes_one_event_a_song(
        client, alice, listening, clock):
    songs = [await add_song(client, bytes([i]), f"s{i}.wav") for i in range(10)]
    start = now_ms(clock) - DAY_MS
    batch = [play(f"play-{i:04}", songs[i % 10], start + i * 1000, skipped=i % 4 == 0)
             for i in range(MAX_PLAYS_PER_BATCH)]
    results = await record(listening, client, batch)

    assert [outcome for _, outcome, _ in results] == [RECORDED] * MAX_PLAYS_PER_BATCH
    stats = await stats_of(listening, client, *songs)
    assert sum(s.play_count for s in stats.values()) == 750
    assert sum(s.skip_count for s in stats.values()) == 250
    assert stats[songs[9]].last_played_ms == start + 999 * 1000
    assert sorted(e.hash for e in await stats_events(client)) == sorted(songs)


# -- stars and ratings ------------------------------------------------------------------

async def test_the_latest_rating_by_device_time_wins(client, alice, listening, clock):
    song = await add_song(client, b"one")
    now = now_ms(clock)
    stats = await rate(listening, client, song, now - 10_000, starred=True, rating=3)
    assert (stats.starred, stats.rating, stats.rated_at_ms) == (True, 3, now - 10_000)

    newer = await rate(listening, client, song, now - 5_000, rating=5)  # star left alone
    # Done earlier on a phone that was offline, arriving later: ignored, current returned.
    older = await rate(listening, client, song, now - 8_000, starred=False, rating=1)

    assert (newer.starred, newer.rating) == (True, 5)
    assert (older.starred, older.rating, older.rated_at_ms) == (True, 5, now - 5_000)
    stored = (await stats_of(listening, client, song))[song]
    assert (stored.starred, stored.rating, stored.rated_at_ms) == (True, 5, now - 5_000)
    unstarred = await rate(listening, client, song, now, starred=False)
    assert (unstarred.starred, unstarred.rating) == (False, 5)
    # Three changes, three events; the ignored one took none.
    assert [e.hash for e in await stats_events(client)] == [song] * 3


async def test_rate_song_refuses_what_it_cannot_apply(client, alice, listening, clock):
    song = await add_song(client, b"one")
    now = now_ms(clock)
    cases = [
        (dict(hash=song, at_ms=now, rating=6), grpc.StatusCode.INVALID_ARGUMENT, "0 (none) to 5"),
        (dict(hash=song, at_ms=now, rating=-1), grpc.StatusCode.INVALID_ARGUMENT, "0 (none) to 5"),
        (dict(hash=song, at_ms=now), grpc.StatusCode.INVALID_ARGUMENT, "nothing to change"),
        (dict(hash=song, starred=True), grpc.StatusCode.INVALID_ARGUMENT, "at_ms"),
        (dict(hash=song, starred=True, at_ms=now + PLAY_CLOCK_SKEW_MS + MINUTE_MS),
         grpc.StatusCode.INVALID_ARGUMENT, "ahead of the server's clock"),
        (dict(hash="nope", starred=True, at_ms=now), grpc.StatusCode.INVALID_ARGUMENT, "hash"),
        (dict(hash=sha(b"unknown"), starred=True, at_ms=now), grpc.StatusCode.NOT_FOUND,
         "no song"),
    ]
    for fields, expected, words in cases:
        code, message = await status_of(listening.RateSong(
            library_pb2.RateSongRequest(**fields), metadata=client.meta()))
        assert (code, words in message) == (expected, True), (fields, message)
    assert await stats_events(client) == []


# -- stats ------------------------------------------------------------------------------

async def test_song_stats_are_zero_without_any_and_unknown_songs_are_left_out(
        client, alice, listening):
    song = await add_song(client, b"one")
    stats = await stats_of(listening, client, song, sha(b"unknown"), song)
    assert list(stats) == [song]
    assert stats[song] == library_pb2.SongStats(hash=song)

    too_many = [sha(bytes([i % 256, i // 256])) for i in range(MAX_STATS_HASHES + 1)]
    code, message = await status_of(listening.GetSongStats(
        library_pb2.GetSongStatsRequest(hashes=too_many), metadata=client.meta()))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and str(MAX_STATS_HASHES) in message


async def test_a_replace_keeps_plays_and_favourites(settings, client, alice, listening, clock):
    old = await add_song(client, b"v1", "song.wav")
    now = now_ms(clock)
    await rate(listening, client, old, now - 1000, starred=True, rating=4)
    await record(listening, client, [play("p1", old, now - DAY_MS)])
    library_id = query(settings, "SELECT id FROM library")[0][0]

    new = await add_song(client, b"v2 (tags edited)", "song.wav", replaces=old)
    assert query(settings, "SELECT id FROM library") == [(library_id,)]
    stats = await stats_of(listening, client, old, new)
    assert list(stats) == [new]
    assert (stats[new].starred, stats[new].rating, stats[new].play_count) == (True, 4, 1)
    # A phone that played the old version offline still counts for the song.
    results = await record(listening, client, [play("p2", old, now - 2000)])
    assert results == [("p2", RECORDED, "")]
    assert (await stats_of(listening, client, new))[new].play_count == 2
    assert (await rate(listening, client, old, now, rating=2)).hash == new


async def test_deleting_a_song_drops_its_stats_and_plays(settings, client, alice, listening, clock):
    song = await add_song(client, b"one")
    now = now_ms(clock)
    await rate(listening, client, song, now, starred=True)
    await record(listening, client, [play("p1", song, now - DAY_MS)])
    await client.file.Delete(file_pb2.DeleteRequest(hash=song), metadata=client.meta())

    assert query(settings, "SELECT count(*) FROM song_stats") == [(0,)]
    assert query(settings, "SELECT count(*) FROM plays") == [(0,)]
    assert await stats_of(listening, client, song) == {}


# -- the feed ---------------------------------------------------------------------------

async def test_watch_on_another_device_sees_the_stats_changes_in_order(
        app, client, alice, listening, clock):
    one, two = await add_song(client, b"one", "one.wav"), await add_song(client, b"two",
                                                                         "two.wav")
    async with Client(app, port=app.ports["sync"]) as phone:
        phone.token = client.token
        stream = phone.sync.Watch(sync_pb2.WatchRequest(
            since=0, subjects=[sync_pb2.SUBJECT_SONG_STATS], heartbeat_seconds=3600,
            device=sync_pb2.Device(id="phone")), metadata=phone.meta())
        now = now_ms(clock)
        await rate(listening, client, one, now, starred=True)
        await record(listening, client, [play("p1", two, now - DAY_MS),
                                         play("p2", one, now - DAY_MS)])
        await rate(listening, client, two, now, rating=5)
        seen = []
        while len(seen) < 4:
            message = await asyncio.wait_for(stream.read(), 10)
            if message.HasField("event"):
                seen.append(message.event)
        stream.cancel()

    assert [(e.hash, e.subject) for e in seen] == [
        (one, sync_pb2.SUBJECT_SONG_STATS), (two, sync_pb2.SUBJECT_SONG_STATS),
        (one, sync_pb2.SUBJECT_SONG_STATS), (two, sync_pb2.SUBJECT_SONG_STATS)]
    assert [e.seq for e in seen] == sorted(e.seq for e in seen)
    assert seen[-1].stats.rating == 5 and seen[-1].stats.play_count == 1
    # Song events are not among them: uploads were before, and not asked for.
    assert all(e.stats.hash == e.hash for e in seen)


# -- isolation --------------------------------------------------------------------------

async def test_nothing_of_another_users_songs_is_shown_changed_or_counted(
        client, alice, listening, clock):
    song = await add_song(client, b"shared content", "a.wav")
    bob = await register(client, "bob")
    now = now_ms(clock)
    await rate(listening, client, song, now - 1000, starred=True, rating=5)
    await record(listening, client, [play("p1", song, now - DAY_MS)])

    # Bob does not have the song: he can neither see, rate nor play it.
    assert await stats_of(listening, client, song, token=bob) == {}
    code, _ = await status_of(listening.RateSong(library_pb2.RateSongRequest(
        hash=song, starred=False, at_ms=now), metadata=client.meta(bob)))
    assert code == grpc.StatusCode.NOT_FOUND
    assert (await record(listening, client, [play("p2", song, now - 1000)], token=bob))[0][1] \
        == INVALID

    # The same content in Bob's library: his own stats, never Alice's, and the same play
    # ids are his own.
    assert await add_song(client, b"shared content", "b.wav", token=bob) == song
    assert (await record(listening, client, [play("p1", song, now - 500)], token=bob)) == [
        ("p1", RECORDED, "")]
    bobs = (await stats_of(listening, client, song, token=bob))[song]
    assert (bobs.starred, bobs.rating, bobs.play_count, bobs.last_played_ms) == (
        False, 0, 1, now - 500)
    alices = (await stats_of(listening, client, song))[song]
    assert (alices.starred, alices.rating, alices.play_count, alices.last_played_ms) == (
        True, 5, 1, now - DAY_MS)
    assert [e.hash for e in await stats_events(client)] == [song, song]


# -- the client library and the commands --------------------------------------------------

async def test_the_client_sends_plays_in_batches_the_server_takes_and_reads_stats(
        app, library, tmp_path, clock):
    from musicsync.client.listening import Play

    song = (await library.upload(song_file(tmp_path, "one.wav"))).entry.hash
    start = now_ms(clock) - DAY_MS
    plays = [Play(f"phone-{n}", song, start + n, 120, completed=True, skipped=n % 3 == 0)
             for n in range(MAX_PLAYS_PER_BATCH + 500)]

    results = await library.listening.record_plays(plays)
    again = await library.listening.record_plays(plays[:2])

    assert [r.outcome for r in results] == ["recorded"] * len(plays)
    assert [r.outcome for r in again] == ["duplicate", "duplicate"]
    stats = (await library.listening.stats([song, sha(b"unknown")]))
    assert list(stats) == [song]
    assert (stats[song].play_count, stats[song].skip_count) == (1000, 500)
    rated = await library.listening.rate(song, starred=True, rating=4)
    assert (rated.starred, rated.rating) == (True, 4) and rated.rated_at_ms > 0


@pytest.mark.sqlite_only
async def test_star_unstar_and_rate_commands(app, library, cli, tmp_path):
    first = await library.upload(song_file(tmp_path, "one.wav"), path="A/one.wav")
    second = await library.upload(song_file(tmp_path, "two.wav"), path="A/two.wav")
    code, _, err = await cli("login", target_of(app), "--user", "alice", "--password-stdin",
                             stdin=PASSWORD + "\n")
    assert code == 0, err

    code, out, err = await cli("star", "A/one.wav", second.entry.hash)
    assert code == 0, err
    assert "starred A/one.wav" in out and "starred A/two.wav" in out
    code, out, err = await cli("unstar", "A/two.wav")
    assert (code, out.strip()) == (0, "unstarred A/two.wav"), err
    code, out, err = await cli("rate", "A/one.wav", "4")
    assert code == 0 and "rated A/one.wav 4/5" in out, err

    stats = await library.listening.stats([first.entry.hash, second.entry.hash])
    assert (stats[first.entry.hash].starred, stats[first.entry.hash].rating) == (True, 4)
    assert (stats[second.entry.hash].starred, stats[second.entry.hash].rating) == (False, 0)

    code, _, err = await cli("rate", "A/one.wav", "6")
    assert code == 2 and "0 (no rating) to 5" in err
    code, _, err = await cli("star", "A/nothing.wav")
    assert code == 1 and "A/nothing.wav: no such song" in err


async def test_extreme_values_get_a_clear_answer_never_an_internal_error(
        client, alice, listening, clock):
    song = await add_song(client, b"one")
    for fields in (dict(at_ms=2**63 - 1, rating=2), dict(at_ms=-2**63, starred=True),
                   dict(at_ms=now_ms(clock), rating=2**31 - 1),
                   dict(at_ms=now_ms(clock), rating=-2**31)):
        code, message = await status_of(listening.RateSong(
            library_pb2.RateSongRequest(hash=song, **fields), metadata=client.meta()))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (fields, code, message)
    results = await record(listening, client, [
        play("max", song, 2**63 - 1), play("min", song, -2**63),
        play("long", song, now_ms(clock) - DAY_MS, 2**32 - 1)])
    assert [outcome for _, outcome, _ in results] == [INVALID] * 3
    assert (await stats_of(listening, client, song))[song] == library_pb2.SongStats(hash=song)
