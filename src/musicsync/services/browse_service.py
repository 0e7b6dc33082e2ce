"""library.BrowseService (library.proto): browsing, search and statistics.

Decodes requests, asks players/browse.py, search.py and stats.py, and encodes their rows.
Pages end early at the byte budget (convert.within_budget), their token then continuing
after the last row sent, so every answer stays under the 4 MiB a client accepts.
GetAlbum without a page answers as it did before it paged (older clients): up to
MAX_ALBUM_SONGS songs within UNPAGED_ALBUM_BUDGET_BYTES, with a token when more remain.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import InvalidArgument
from ..interceptors import current_principal
from ..limits import MAX_ALBUM_SONGS, MAX_TAG_CHARS, PAGE_BUDGET_BYTES, check_chars, clip
from ..players import browse, search, stats
from ..players.context import PlayerContext
from ..players.pages import Page, page_size
from ..proto import library_pb2, library_pb2_grpc
from .convert import encoded_size, file_entry, within_budget

# GetAlbum without a page (older clients): up to MAX_ALBUM_SONGS songs within this much.
UNPAGED_ALBUM_BUDGET_BYTES = 3 * PAGE_BUDGET_BYTES

_SORTS = {int(sort) for sort in browse.Sort} | {library_pb2.SORT_ORDER_UNSPECIFIED}


def _sort(value: int) -> browse.Sort | int:
    if value not in _SORTS:
        raise InvalidArgument(f"sort {value} is not a SortOrder")
    return browse.Sort(value) if value else 0


def album_message(album: browse.Album) -> library_pb2.Album:
    return library_pb2.Album(
        album_artist=clip(album.album_artist, MAX_TAG_CHARS),
        album=clip(album.album, MAX_TAG_CHARS),
        year=album.year, track_count=album.track_count, duration_ms=album.duration_ms,
        art_hash=album.art_hash, play_count=album.play_count)


def artist_message(artist: browse.Artist) -> library_pb2.Artist:
    return library_pb2.Artist(name=clip(artist.name, MAX_TAG_CHARS),
                              album_count=artist.album_count, song_count=artist.song_count)


def count_message(count: stats.Count) -> library_pb2.Count:
    return library_pb2.Count(name=clip(count.name, MAX_TAG_CHARS), songs=count.songs,
                             bytes=count.bytes, duration_ms=count.duration_ms)


def _fitted(page: Page, encode: Callable, budget: int = PAGE_BUDGET_BYTES
            ) -> tuple[list, str]:
    """A page's messages within the byte budget, and the token of what comes next."""
    messages = [encode(row) for row in page.rows]
    fit = within_budget(messages, budget)
    if fit < len(messages):
        return messages[:fit], page.token_after(fit - 1)
    return messages, page.token_after(len(messages) - 1) if page.more else ""


class BrowseServicer(library_pb2_grpc.BrowseServiceServicer):
    """Artists, albums, genres, years, an album's songs, search and statistics of the
    caller's library (nothing of another user's is ever read)."""

    def __init__(self, context: PlayerContext) -> None:
        self._context = context
        self._stats = stats.StatsCache()

    async def ListArtists(self, request, context):
        user_id, size = current_principal().user_id, page_size(request.page.size)
        sort = _sort(request.sort)
        page = await self._read_long(lambda session: browse.list_artists(
            session, user_id, sort, size, request.page.token))
        artists, token = _fitted(page, artist_message)
        return library_pb2.ListArtistsResponse(artists=artists, next_page_token=token)

    async def ListAlbums(self, request, context):
        user_id, size = current_principal().user_id, page_size(request.page.size)
        sort = _sort(request.sort)
        artist = check_chars(request.artist, "artist", MAX_TAG_CHARS)
        genre = check_chars(request.genre, "genre", MAX_TAG_CHARS)
        page = await self._read_long(lambda session: browse.list_albums(
            session, user_id, sort, size, request.page.token, artist=artist, genre=genre,
            year=request.year))
        albums, token = _fitted(page, album_message)
        return library_pb2.ListAlbumsResponse(albums=albums, next_page_token=token)

    async def ListGenres(self, request, context):
        user_id, size = current_principal().user_id, page_size(request.page.size)
        page = await self._read_long(lambda session: browse.list_genres(
            session, user_id, size, request.page.token))
        genres, token = _fitted(page, lambda row: library_pb2.Genre(
            name=clip(row[0], MAX_TAG_CHARS), song_count=row[1]))
        return library_pb2.ListGenresResponse(genres=genres, next_page_token=token)

    async def ListYears(self, request, context):
        user_id, size = current_principal().user_id, page_size(request.page.size)
        page = await self._read_long(lambda session: browse.list_years(
            session, user_id, size, request.page.token))
        years, token = _fitted(page, lambda row: library_pb2.Year(year=row[0],
                                                                  song_count=row[1]))
        return library_pb2.ListYearsResponse(years=years, next_page_token=token)

    async def GetAlbum(self, request, context):
        user_id = current_principal().user_id
        key = request.album
        album_artist = check_chars(key.album_artist, "album.album_artist", MAX_TAG_CHARS)
        name = check_chars(key.album, "album.album", MAX_TAG_CHARS)
        if request.HasField("page"):
            size, token, budget = (page_size(request.page.size), request.page.token,
                                   PAGE_BUDGET_BYTES)
        else:
            # Older clients page nothing: as many songs as they always had in one answer.
            size, token, budget = MAX_ALBUM_SONGS, "", UNPAGED_ALBUM_BUDGET_BYTES
        album, page = await self._read_long(lambda session: browse.get_album(
            session, user_id, album_artist, name, size, token))
        songs, token = _fitted(page, file_entry, budget)
        return library_pb2.GetAlbumResponse(album=album_message(album), songs=songs,
                                            next_page_token=token)

    async def Search(self, request, context):
        user_id, size = current_principal().user_id, page_size(request.page.size)
        search.query_words(request.query)  # its bounds, before anything is read
        found = await self._read_long(lambda session: search.search(
            session, user_id, request.query, size, request.page.token))
        songs = [file_entry(song) for song in found.songs]
        albums = [album_message(album) for album in found.albums]
        artists = [artist_message(artist) for artist in found.artists]
        fit = within_budget(songs, PAGE_BUDGET_BYTES - encoded_size(albums) - encoded_size(artists))
        token = found.next_token
        if fit < len(songs):
            token = search.token_after(found.scores[fit - 1], found.songs[fit - 1].id)
        return library_pb2.SearchResponse(songs=songs[:fit], albums=albums, artists=artists,
                                          next_page_token=token)

    async def GetStats(self, request, context):
        user_id = current_principal().user_id
        figures = await self._read_long(lambda session: self._stats.statistics(session,
                                                                                user_id))
        return library_pb2.GetStatsResponse(
            song_count=figures.total.songs, total_bytes=figures.total.bytes,
            total_duration_ms=figures.total.duration_ms,
            by_format=[count_message(count) for count in figures.by_format],
            by_codec=[count_message(count) for count in figures.by_codec],
            by_year=[count_message(count) for count in figures.by_year],
            top_artists=[count_message(count) for count in figures.top_artists],
            top_albums=[album_message(album) for album in figures.top_albums],
            recently_added=[file_entry(song) for song in figures.recently_added],
            recently_played=[file_entry(song) for song in figures.recently_played])

    async def _read_long(self, work: Callable):
        """``work(session)`` in a read transaction of its own: for reads that may group a
        whole library (db.long_read: apart from the one-row lookups of every call)."""
        return await self._context.db.long_read(work)
