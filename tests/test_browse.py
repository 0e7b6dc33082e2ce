"""BrowseService: artists, albums, genres and years page by page, an album's songs in order,
search (diacritics, prefixes, ranking, FTS syntax typed by users), statistics against
figures computed by hand, the search index following every library change, and
isolation between users. Runs on SQLite and PostgreSQL (conftest.BOTH_DATABASES)."""

from __future__ import annotations

import base64
import json

import grpc
import pytest

from musicsync.db.migrations import HEAD_REVISION
from musicsync.proto import auth_pb2, file_pb2, library_pb2, library_pb2_grpc

from .conftest import PASSWORD, REGISTRATION_KEY
from .helpers import downgrade, query, status_of
from .transfer import upload, wav_bytes


class Songs:
    """Uploads songs for one user and calls BrowseService with that user's token."""

    def __init__(self, client, token: str) -> None:
        self.client = client
        self.token = token
        self.browse = library_pb2_grpc.BrowseServiceStub(client.channel)
        self.count = 0

    async def add(self, title: str = "", artist: str = "", album: str = "", *,
                  album_artist: str = "", genre: str = "", year: int = 0, track: int = 0,
                  disc: int = 0, path: str = "", replaces: str = "",
                  seconds: float = 0.2) -> file_pb2.FileEntry:
        self.count += 1
        data = wav_bytes(seconds, salt=f"{self.token[-8:]}-{self.count}".encode())
        metadata = file_pb2.FileMetadata(
            filename=path.rpartition("/")[2] or f"song{self.count}.wav", title=title,
            artist=artist, album=album, album_artist=album_artist, genre=genre, year=year,
            track=track, disc=disc, path=path, replaces=replaces)
        response = await upload(self.client, data, metadata, token=self.token)
        return response.file

    async def call(self, method: str, request):
        return await getattr(self.browse, method)(request, metadata=self.client.meta(self.token))

    async def search(self, text: str, size: int = 0, token: str = ""
                     ) -> library_pb2.SearchResponse:
        return await self.call("Search", library_pb2.SearchRequest(
            query=text, page=library_pb2.Page(size=size, token=token)))

    async def titles(self, text: str) -> list[str]:
        return [song.title for song in (await self.search(text)).songs]


@pytest.fixture
async def songs(client, alice) -> Songs:
    return Songs(client, alice.token)


async def register(client, name: str) -> str:
    response = await client.auth.Register(auth_pb2.RegisterRequest(
        username=name, password=PASSWORD, security_key=REGISTRATION_KEY))
    return response.token


# -- Search --------------------------------------------------------------------------------

async def test_search_ignores_case_and_diacritics_both_ways(songs):
    await songs.add("Jóga", "Björk", "Homogenic")
    await songs.add("Halo", "Beyoncé", "I Am... Sasha Fierce")
    await songs.add("Crazy", "Gnarls Barkley", "St. Elsewhere")
    assert await songs.titles("bjork") == ["Jóga"]
    assert await songs.titles("BJÖRK joga") == ["Jóga"]
    assert await songs.titles("beyo") == ["Halo"]
    assert await songs.titles("BEYONCE") == ["Halo"]
    assert await songs.titles("sasha fier") == ["Halo"]
    assert await songs.titles("bjork halo") == []  # every word must match


async def test_search_finds_words_by_their_start_only(songs):
    await songs.add("Wonderwall", "Oasis", "Morning Glory")
    assert await songs.titles("wonder") == ["Wonderwall"]
    assert await songs.titles("glo") == ["Wonderwall"]
    assert await songs.titles("wall") == []  # the middle of a word is not a match


async def test_search_ranks_title_above_album_and_artist_and_whole_words_above_prefixes(songs):
    await songs.add("Something Else", "Love", "Others")       # artist, whole word: 2
    await songs.add("Lovely Day", "Bill Withers", "Menagerie")  # title, prefix: 4
    await songs.add("Other", "Someone", "Lovesongs")           # album, prefix: 1
    await songs.add("Love", "Anyone", "Anything")              # title, whole word: 8
    assert await songs.titles("love") == ["Love", "Lovely Day", "Something Else", "Other"]


async def test_search_pages_through_every_match_once_best_first(songs):
    for number in range(7):
        await songs.add(f"Track {number}", "Pager", "Pages")
    await songs.add("Pager", "Other", "Else")  # the title match leads
    seen, token = [], ""
    while True:
        page = await songs.search("pager", size=3, token=token)
        seen += [song.title for song in page.songs]
        if token:
            assert not page.albums and not page.artists  # the first page only
        else:
            assert [album.album for album in page.albums] == ["Pages"]
            assert [artist.name for artist in page.artists] == ["Pager"]
        token = page.next_page_token
        if not token:
            break
    assert seen[0] == "Pager"
    assert sorted(seen) == sorted(["Pager"] + [f"Track {n}" for n in range(7)])


@pytest.mark.parametrize("typed", ['"', "*", "NEAR(", 'NEAR("a" "b")', "title:x", "a AND",
                                   "-", "^", "(", "'", "!", "a & b | c", "x:*", "\\", "%_"])
async def test_search_syntax_characters_are_text_and_never_an_error(songs, typed):
    await songs.add("Near Dark", "Some Band", "Album")
    response = await songs.search(typed)
    assert all(song.title == "Near Dark" for song in response.songs)
    if typed == "NEAR(":
        assert [song.title for song in response.songs] == ["Near Dark"]


async def test_search_query_bounds_are_invalid_argument(songs):
    code, message = await status_of(songs.search("x" * 201))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "200 characters" in message
    code, message = await status_of(songs.search(" ".join("abcdefghijk")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "10 words" in message
    code, message = await status_of(songs.search("x", token="not a token"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "token" in message


async def test_search_follows_uploads_tag_edits_moves_and_deletes(songs, settings):
    first = await songs.add("Original Title", "Band", "Record", path="Band/Record/1.wav")
    assert await songs.titles("original") == ["Original Title"]
    # A tag edit: new content replacing the old entry.
    edited = await songs.add("Edited Title", "Band", "Record", replaces=first.hash)
    assert await songs.titles("original") == []
    assert await songs.titles("edited") == ["Edited Title"]
    # A move keeps the song findable.
    await songs.client.file.Move(file_pb2.MoveRequest(hash=edited.hash, path="Elsewhere/1.wav"),
                                 metadata=songs.client.meta(songs.token))
    assert await songs.titles("edited band") == ["Edited Title"]
    await songs.client.file.Delete(file_pb2.DeleteRequest(hash=edited.hash),
                                   metadata=songs.client.meta(songs.token))
    assert await songs.titles("edited") == []
    assert query(settings, "SELECT count(*) FROM search_documents") == [(0,)]


# -- Browsing ------------------------------------------------------------------------------

async def test_paging_through_albums_returns_each_once_in_order(songs):
    expected = []
    for number in range(11):
        artist = f"artist {number % 3}"
        album = f"album {number % 5:02d}"
        await songs.add(f"t{number}", artist, album)
        expected.append((album, artist))
    expected = sorted(set(expected))
    for sort, key in ((library_pb2.SORT_ORDER_NAME, lambda a: (a.album, a.album_artist)),
                      (library_pb2.SORT_ORDER_ARTIST, lambda a: (a.album_artist, a.album))):
        seen, token = [], ""
        while True:
            page = await songs.call("ListAlbums", library_pb2.ListAlbumsRequest(
                page=library_pb2.Page(size=2, token=token), sort=sort))
            assert len(page.albums) <= 2
            seen += page.albums
            token = page.next_page_token
            if not token:
                break
        assert [key(album) for album in seen] == sorted(key(a) for a in seen)
        assert sorted((a.album, a.album_artist) for a in seen) == expected


async def test_albums_join_album_artist_and_artist_and_carry_their_figures(songs, settings):
    one = await songs.add("One", "Guest", "Shared", album_artist="Host", year=1999, seconds=0.5)
    two = await songs.add("Two", "Host", "Shared", year=2001, seconds=0.25)
    query(settings, "UPDATE library SET art_sha256 = ? WHERE sha256 = ?", b"a" * 32,
          bytes.fromhex(two.hash))
    listed = await songs.call("ListAlbums", library_pb2.ListAlbumsRequest())
    assert [(a.album_artist, a.album, a.year, a.track_count, a.duration_ms, a.art_hash)
            for a in listed.albums] == [
        ("Host", "Shared", 2001, 2, one.duration_ms + two.duration_ms, two.hash)]
    artists = await songs.call("ListArtists", library_pb2.ListArtistsRequest())
    assert [(a.name, a.album_count, a.song_count) for a in artists.artists] == [("Host", 1, 2)]


async def test_album_filters_sorts_genres_and_years(songs, clock):
    await songs.add("a", "X", "Old", genre="Rock", year=1970)
    clock.advance(1)
    await songs.add("b", "X", "New", genre="Pop", year=2020)
    clock.advance(1)
    await songs.add("c", "Y", "Mid", genre="Rock", year=1990)
    names = lambda response: [album.album for album in response.albums]  # noqa: E731
    assert names(await songs.call("ListAlbums", library_pb2.ListAlbumsRequest(
        artist="X"))) == ["New", "Old"]
    assert names(await songs.call("ListAlbums", library_pb2.ListAlbumsRequest(
        genre="Rock"))) == ["Mid", "Old"]
    assert names(await songs.call("ListAlbums", library_pb2.ListAlbumsRequest(
        year=1990))) == ["Mid"]
    assert names(await songs.call("ListAlbums", library_pb2.ListAlbumsRequest(
        sort=library_pb2.SORT_ORDER_YEAR))) == ["Old", "Mid", "New"]
    assert names(await songs.call("ListAlbums", library_pb2.ListAlbumsRequest(
        sort=library_pb2.SORT_ORDER_RECENTLY_ADDED))) == ["Mid", "New", "Old"]
    genres = await songs.call("ListGenres", library_pb2.ListGenresRequest())
    assert [(g.name, g.song_count) for g in genres.genres] == [("Pop", 1), ("Rock", 2)]
    years = await songs.call("ListYears", library_pb2.ListYearsRequest(
        page=library_pb2.Page(size=2)))
    assert [(y.year, y.song_count) for y in years.years] == [(1970, 1), (1990, 1)]
    rest = await songs.call("ListYears", library_pb2.ListYearsRequest(
        page=library_pb2.Page(token=years.next_page_token)))
    assert [(y.year, y.song_count) for y in rest.years] == [(2020, 1)]
    assert not rest.next_page_token


async def test_get_album_lists_songs_in_disc_then_track_order(songs):
    await songs.add("d2t1", "A", "Set", disc=2, track=1)
    await songs.add("d1t2", "A", "Set", disc=1, track=2)
    await songs.add("d1t1", "A", "Set", disc=1, track=1)
    await songs.add("d2t3", "A", "Set", disc=2, track=3)
    await songs.add("elsewhere", "A", "Other", disc=1, track=1)
    response = await songs.call("GetAlbum", library_pb2.GetAlbumRequest(
        album=library_pb2.AlbumKey(album_artist="A", album="Set")))
    assert [song.title for song in response.songs] == ["d1t1", "d1t2", "d2t1", "d2t3"]
    assert response.album.track_count == 4
    code, _ = await status_of(songs.call("GetAlbum", library_pb2.GetAlbumRequest(
        album=library_pb2.AlbumKey(album_artist="A", album="Missing"))))
    assert code == grpc.StatusCode.NOT_FOUND


async def album_page(songs: Songs, album: str, size: int, token: str = "",
                     album_artist: str = "A") -> library_pb2.GetAlbumResponse:
    return await songs.call("GetAlbum", library_pb2.GetAlbumRequest(
        album=library_pb2.AlbumKey(album_artist=album_artist, album=album),
        page=library_pb2.Page(size=size, token=token)))


def forged(token: str, *values) -> str:
    """``token`` with its position (the values after the listing's name) replaced."""
    listing = json.loads(base64.urlsafe_b64decode(token))[0]
    return base64.urlsafe_b64encode(json.dumps([listing, *values]).encode()).decode()


async def test_an_albums_songs_page_each_once_in_disc_track_path_order(songs, monkeypatch):
    from musicsync.services import browse_service
    made = []
    for n in range(30):  # discs and tracks repeat: the path orders songs of one place
        made.append(await songs.add(f"s{n}", "A", "Big", disc=1 + n % 2, track=n % 4,
                                    path=f"Big/{(n * 7) % 30:02d}.wav", seconds=0.05))
    await songs.add("elsewhere", "A", "Other", path="Other/1.wav", seconds=0.05)
    order = [song.title for song in sorted(made, key=lambda s: (s.disc, s.track, s.path))]
    duration = sum(song.duration_ms for song in made)
    seen, sizes, token = [], [], ""
    while True:
        page = await album_page(songs, "Big", 7, token)
        assert (page.album.track_count, page.album.duration_ms) == (30, duration)
        seen += [song.title for song in page.songs]
        sizes.append(len(page.songs))
        token = page.next_page_token
        if not token:
            break
    assert (seen, sizes) == (order, [7, 7, 7, 7, 2])
    # A client from before paging sends no page: the whole album, as it always had.
    old = await songs.call("GetAlbum", library_pb2.GetAlbumRequest(
        album=library_pb2.AlbumKey(album_artist="A", album="Big")))
    assert [song.title for song in old.songs] == order and old.next_page_token == ""
    # Past MAX_ALBUM_SONGS it gets the first ones, and a token for the rest.
    monkeypatch.setattr(browse_service, "MAX_ALBUM_SONGS", 10)
    old = await songs.call("GetAlbum", library_pb2.GetAlbumRequest(
        album=library_pb2.AlbumKey(album_artist="A", album="Big")))
    assert [song.title for song in old.songs] == order[:10] and old.album.track_count == 30
    rest = await album_page(songs, "Big", 0, old.next_page_token)
    assert [song.title for song in rest.songs] == order[10:] and rest.next_page_token == ""


async def test_album_page_tokens_garbage_forged_or_of_another_album_are_invalid_argument(
        songs):
    for n in range(3):
        await songs.add(f"s{n}", "A", "Set", track=n + 1, seconds=0.05)
    await songs.add("o1", "A", "Other", seconds=0.05)
    await songs.add("o2", "A", "Other", seconds=0.05)
    token = (await album_page(songs, "Set", 1)).next_page_token
    other = (await album_page(songs, "Other", 1)).next_page_token
    albums = (await songs.call("ListAlbums", library_pb2.ListAlbumsRequest(
        page=library_pb2.Page(size=1)))).next_page_token
    # A position made up by the client reads only its own album's songs, after it.
    made_up = await album_page(songs, "Set", 5, forged(token, 0, 2, "", 0))
    assert [song.title for song in made_up.songs] == ["s1", "s2"]
    for bad in ("not a token", "x" * 20000, other, albums, forged(token, 0, 1, "p"),
                forged(token, 0, 2 ** 40, "p", 1), forged(token, 0, 1, "p", 2 ** 64),
                forged(token, 0, 1, "p\x00", 1), forged(token, "0", 1, "p", 1),
                forged(token, 0, 1, "\udfff", 1), forged(token, 0, 1.5, "p", 1)):
        code, message = await status_of(album_page(songs, "Set", 1, bad))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, bad
        assert "page.token is not a token of this listing" in message
    code, message = await status_of(album_page(songs, "Set", 501))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "500" in message


async def test_forged_positions_past_an_integer_are_invalid_argument_not_internal(songs):
    await songs.add("s", "A", "Set", year=1999, seconds=0.05)
    encode = lambda *values: base64.urlsafe_b64encode(  # noqa: E731
        json.dumps(values).encode()).decode()
    for call in (songs.call("ListYears", library_pb2.ListYearsRequest(
                     page=library_pb2.Page(token=encode("years", 2 ** 40)))),
                 songs.call("ListAlbums", library_pb2.ListAlbumsRequest(
                     sort=library_pb2.SORT_ORDER_YEAR,
                     page=library_pb2.Page(token=encode("albums:3", 2 ** 40, "a", "b")))),
                 songs.call("Search", library_pb2.SearchRequest(  # a score is an INTEGER
                     query="set", page=library_pb2.Page(token=encode("search", 2 ** 40, 1))))):
        code, message = await status_of(call)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "page.token" in message


async def test_page_bounds_are_invalid_argument(songs):
    for size in (-1, 501):
        code, message = await status_of(songs.call("ListAlbums", library_pb2.ListAlbumsRequest(
            page=library_pb2.Page(size=size))))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "500" in message
    genres_token = (await songs.call("ListGenres", library_pb2.ListGenresRequest(
        page=library_pb2.Page(size=1)))).next_page_token
    assert genres_token == ""  # nothing to page yet
    code, message = await status_of(songs.call("ListAlbums", library_pb2.ListAlbumsRequest(
        page=library_pb2.Page(token="x" * 20000))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "token" in message


# -- Statistics ----------------------------------------------------------------------------

async def test_statistics_match_figures_computed_by_hand(songs, settings, clock):
    a = await songs.add("a", "Alpha", "First", year=2000, seconds=0.5, path="x/a.wav")
    clock.advance(10)
    b = await songs.add("b", "Alpha", "First", year=2000, seconds=0.25, path="x/b.WAV")
    clock.advance(10)
    c = await songs.add("c", "Beta", "Second", year=1990, seconds=0.25, path="x/c")
    user_id = query(settings, "SELECT id FROM users WHERE username = 'alice'")[0][0]
    for song, plays, last in ((a, 3, 5000), (b, 1, 9000), (c, 7, 1000)):
        library_id = query(settings, "SELECT id FROM library WHERE sha256 = ?",
                           bytes.fromhex(song.hash))[0][0]
        query(settings, "INSERT INTO song_stats (library_id, user_id, play_count, "
              "last_played_ms) VALUES (?, ?, ?, ?)", library_id, user_id, plays, last)
    figures = await songs.call("GetStats", library_pb2.GetStatsRequest())
    assert figures.song_count == 3
    assert figures.total_bytes == a.size + b.size + c.size
    assert figures.total_duration_ms == a.duration_ms + b.duration_ms + c.duration_ms
    assert [(f.name, f.songs, f.bytes) for f in figures.by_format] == [
        ("wav", 2, a.size + b.size), ("", 1, c.size)]
    assert [(y.name, y.songs, y.duration_ms) for y in figures.by_year] == [
        ("1990", 1, c.duration_ms), ("2000", 2, a.duration_ms + b.duration_ms)]
    assert [(c_.name, c_.songs) for c_ in figures.by_codec] == [(a.codec, 3)]
    assert [(t.name, t.songs) for t in figures.top_artists] == [("Beta", 7), ("Alpha", 4)]
    assert [(t.album, t.play_count, t.track_count) for t in figures.top_albums] == [
        ("Second", 7, 1), ("First", 4, 2)]
    assert [s.title for s in figures.recently_added] == ["c", "b", "a"]
    assert [s.title for s in figures.recently_played] == ["b", "a", "c"]


def running_totals(settings) -> tuple[list, list]:
    """The statistics' running totals (db/summaries.py), and the same figures computed
    from the library and its songs' plays afresh; sorted alike."""
    from musicsync.db.summaries import afresh

    computed = afresh("postgresql" if settings.database_url else "sqlite")
    return ([sorted(query(settings, f"SELECT * FROM {table}")) for table in computed],
            [sorted(query(settings, select)) for select in computed.values()])


async def test_statistics_totals_follow_uploads_replaces_moves_deletes_and_plays(
        songs, settings, clock, client, app):
    listening = library_pb2_grpc.ListeningServiceStub(client.channel)

    async def plays(song, count: int) -> None:
        clock.advance(1)
        start = int(clock.now * 1000) - 60_000
        await listening.RecordPlays(library_pb2.RecordPlaysRequest(plays=[
            library_pb2.Play(id=f"{song.hash[:8]}-{clock.now}-{n}", hash=song.hash,
                             started_at_ms=start + n, seconds_played=100, completed=True)
            for n in range(count)]), metadata=client.meta(songs.token))

    one = await songs.add("one", "Alpha", "First", year=2000, path="a/one.wav")
    two = await songs.add("two", "Alpha", "First", year=2000, path="a/two.wav")
    three = await songs.add("three", "Beta", "Second", year=1990, path="b/three.wav")
    await plays(one, 3)
    await plays(two, 2)
    await plays(three, 5)
    kept, afresh = running_totals(settings)
    assert kept == afresh and len(kept[0]) == 2 and len(kept[1]) == 2
    # A tag edit moves the song's bytes to another year and its plays to another album.
    two = await songs.add("two", "Gamma", "Third", year=2011, path="a/two.wav",
                          replaces=two.hash)
    # A move to another extension moves it to another format.
    await client.file.Move(file_pb2.MoveRequest(hash=one.hash, path="a/one.flac"),
                           metadata=client.meta(songs.token))
    await plays(three, 1)
    await client.file.Delete(file_pb2.DeleteRequest(hash=three.hash),
                             metadata=client.meta(songs.token))
    kept, afresh = running_totals(settings)
    assert kept == afresh
    figures = await songs.call("GetStats", library_pb2.GetStatsRequest())
    assert figures.song_count == 2
    assert sorted((f.name, f.songs) for f in figures.by_format) == [("flac", 1), ("wav", 1)]
    assert [(y.name, y.songs) for y in figures.by_year] == [("2000", 1), ("2011", 1)]
    assert [(t.name, t.songs) for t in figures.top_artists] == [("Alpha", 3), ("Gamma", 2)]
    assert [(a.album, a.play_count) for a in figures.top_albums] == [("First", 3), ("Third", 2)]
    # Another user's songs and plays are theirs; deleting them leaves alice's untouched.
    bob = Songs(client, await register(client, "bob"))
    await bob.add("bob's", "Alpha", "First", year=2000)
    await app.accounts.delete_user("bob")
    kept, afresh = running_totals(settings)
    assert kept == afresh and len(kept[0]) == 2
    await app.accounts.delete_user("alice")
    assert running_totals(settings) == ([[], []], [[], []])


async def test_upgrading_to_revision_0004_totals_the_songs_and_plays_already_there(
        songs, settings, clock, client, app):
    first = await songs.add("a", "Alpha", "First", year=2000, path="a.wav")
    await songs.add("b", "Beta", "Second", year=1990, path="b.mp3.wav")
    user_id = query(settings, "SELECT id FROM users WHERE username = 'alice'")[0][0]
    library_id = query(settings, "SELECT id FROM library WHERE sha256 = ?",
                       bytes.fromhex(first.hash))[0][0]
    query(settings, "INSERT INTO song_stats (library_id, user_id, play_count) VALUES (?, ?, 4)",
          library_id, user_id)
    before = running_totals(settings)
    assert before[0] == before[1] and before[0][1] == [(user_id, "Alpha", "First", 4)]
    await app.stop()
    downgrade(settings, "0003")
    assert query(settings, "SELECT version_num FROM alembic_version") == [("0003",)]
    from musicsync.server import App

    async with App(settings, clock=clock):
        assert query(settings, "SELECT version_num FROM alembic_version") == [(HEAD_REVISION,)]
        assert running_totals(settings) == before


# -- Isolation -----------------------------------------------------------------------------

async def test_another_users_songs_are_never_found_listed_or_counted(songs, client):
    await songs.add("Shared Word", "Alice Band", "Alice Album", genre="Mine", year=1111)
    bob = Songs(client, await register(client, "bob"))
    assert await bob.titles("shared") == []
    assert not (await bob.call("ListAlbums", library_pb2.ListAlbumsRequest())).albums
    assert not (await bob.call("ListArtists", library_pb2.ListArtistsRequest())).artists
    assert not (await bob.call("ListGenres", library_pb2.ListGenresRequest())).genres
    assert not (await bob.call("ListYears", library_pb2.ListYearsRequest())).years
    code, _ = await status_of(bob.call("GetAlbum", library_pb2.GetAlbumRequest(
        album=library_pb2.AlbumKey(album_artist="Alice Band", album="Alice Album"))))
    assert code == grpc.StatusCode.NOT_FOUND
    stats = await bob.call("GetStats", library_pb2.GetStatsRequest())
    assert stats.song_count == 0 and not stats.recently_added and not stats.by_year
    # And Alice still sees hers.
    assert await songs.titles("shared") == ["Shared Word"]


# -- The index of songs uploaded before search existed --------------------------------------

async def test_upgrading_to_revision_0003_indexes_the_songs_already_there(settings, clock):
    from musicsync.server import App

    from .helpers import Client

    async with App(settings, clock=clock) as app, Client(app) as client:
        old = Songs(client, await register(client, "alice"))
        await old.add("Jóga", "Björk", "Homogenic")
    # Back to revision 0002, as a database from before browsing was: no index at all.
    downgrade(settings, "0002")
    assert query(settings, "SELECT version_num FROM alembic_version") == [("0002",)]
    async with App(settings, clock=clock) as app, Client(app) as client:
        token = (await client.auth.Login(auth_pb2.LoginRequest(
            username="alice", password=PASSWORD))).token
        songs = Songs(client, token)
        assert await songs.titles("bjork") == ["Jóga"]
        assert query(settings, "SELECT version_num FROM alembic_version") == [(HEAD_REVISION,)]
        # And the upgraded index follows changes like a new one.
        await songs.add("Hyperballad", "Björk", "Post")
        assert sorted(await songs.titles("bjork")) == ["Hyperballad", "Jóga"]


async def test_an_album_page_token_of_another_user_continues_nothing(songs, client):
    bob = Songs(client, await register(client, "bob"))
    for who in (songs, bob):  # the same album key in both libraries
        for n in range(2):
            await who.add(f"{who.token[-6:]}{n}", "A", "Same", track=n + 1, seconds=0.05)
    alices = (await album_page(songs, "Same", 1)).next_page_token
    bobs = (await album_page(bob, "Same", 1)).next_page_token
    for who, token in ((bob, alices), (songs, bobs)):
        code, message = await status_of(album_page(who, "Same", 1, token))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "token" in message
    mine = await album_page(songs, "Same", 5, alices)
    assert [song.title for song in mine.songs] == [f"{songs.token[-6:]}1"]
