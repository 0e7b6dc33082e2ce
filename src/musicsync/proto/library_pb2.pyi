from . import file_pb2 as _file_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SortOrder(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SORT_ORDER_UNSPECIFIED: _ClassVar[SortOrder]
    SORT_ORDER_NAME: _ClassVar[SortOrder]
    SORT_ORDER_ARTIST: _ClassVar[SortOrder]
    SORT_ORDER_YEAR: _ClassVar[SortOrder]
    SORT_ORDER_RECENTLY_ADDED: _ClassVar[SortOrder]
    SORT_ORDER_MOST_PLAYED: _ClassVar[SortOrder]
SORT_ORDER_UNSPECIFIED: SortOrder
SORT_ORDER_NAME: SortOrder
SORT_ORDER_ARTIST: SortOrder
SORT_ORDER_YEAR: SortOrder
SORT_ORDER_RECENTLY_ADDED: SortOrder
SORT_ORDER_MOST_PLAYED: SortOrder

class Playlist(_message.Message):
    __slots__ = ("id", "name", "description", "version", "entries", "entry_count", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    ENTRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    description: str
    version: int
    entries: _containers.RepeatedCompositeFieldContainer[PlaylistEntry]
    entry_count: int
    created_at: int
    updated_at: int
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., version: _Optional[int] = ..., entries: _Optional[_Iterable[_Union[PlaylistEntry, _Mapping]]] = ..., entry_count: _Optional[int] = ..., created_at: _Optional[int] = ..., updated_at: _Optional[int] = ...) -> None: ...

class PlaylistEntry(_message.Message):
    __slots__ = ("hash", "path", "missing", "position")
    HASH_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    hash: str
    path: str
    missing: bool
    position: int
    def __init__(self, hash: _Optional[str] = ..., path: _Optional[str] = ..., missing: _Optional[bool] = ..., position: _Optional[int] = ...) -> None: ...

class CreatePlaylistRequest(_message.Message):
    __slots__ = ("name", "description", "hashes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    hashes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., hashes: _Optional[_Iterable[str]] = ...) -> None: ...

class CreatePlaylistResponse(_message.Message):
    __slots__ = ("playlist",)
    PLAYLIST_FIELD_NUMBER: _ClassVar[int]
    playlist: Playlist
    def __init__(self, playlist: _Optional[_Union[Playlist, _Mapping]] = ...) -> None: ...

class GetPlaylistRequest(_message.Message):
    __slots__ = ("id", "offset", "limit")
    ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    id: int
    offset: int
    limit: int
    def __init__(self, id: _Optional[int] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class GetPlaylistResponse(_message.Message):
    __slots__ = ("playlist",)
    PLAYLIST_FIELD_NUMBER: _ClassVar[int]
    playlist: Playlist
    def __init__(self, playlist: _Optional[_Union[Playlist, _Mapping]] = ...) -> None: ...

class ListPlaylistsRequest(_message.Message):
    __slots__ = ("page",)
    PAGE_FIELD_NUMBER: _ClassVar[int]
    page: Page
    def __init__(self, page: _Optional[_Union[Page, _Mapping]] = ...) -> None: ...

class ListPlaylistsResponse(_message.Message):
    __slots__ = ("playlists", "next_page_token")
    PLAYLISTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    playlists: _containers.RepeatedCompositeFieldContainer[Playlist]
    next_page_token: str
    def __init__(self, playlists: _Optional[_Iterable[_Union[Playlist, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdatePlaylistRequest(_message.Message):
    __slots__ = ("id", "name", "description", "base_version")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    BASE_VERSION_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    description: str
    base_version: int
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., base_version: _Optional[int] = ...) -> None: ...

class UpdatePlaylistResponse(_message.Message):
    __slots__ = ("playlist",)
    PLAYLIST_FIELD_NUMBER: _ClassVar[int]
    playlist: Playlist
    def __init__(self, playlist: _Optional[_Union[Playlist, _Mapping]] = ...) -> None: ...

class PlaylistOperation(_message.Message):
    __slots__ = ("insert", "remove", "move")
    class Insert(_message.Message):
        __slots__ = ("position", "hashes")
        POSITION_FIELD_NUMBER: _ClassVar[int]
        HASHES_FIELD_NUMBER: _ClassVar[int]
        position: int
        hashes: _containers.RepeatedScalarFieldContainer[str]
        def __init__(self, position: _Optional[int] = ..., hashes: _Optional[_Iterable[str]] = ...) -> None: ...
    class Remove(_message.Message):
        __slots__ = ("position", "count")
        POSITION_FIELD_NUMBER: _ClassVar[int]
        COUNT_FIELD_NUMBER: _ClassVar[int]
        position: int
        count: int
        def __init__(self, position: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...
    class Move(_message.Message):
        __slots__ = ("from_position", "to_position", "count")
        FROM_POSITION_FIELD_NUMBER: _ClassVar[int]
        TO_POSITION_FIELD_NUMBER: _ClassVar[int]
        COUNT_FIELD_NUMBER: _ClassVar[int]
        from_position: int
        to_position: int
        count: int
        def __init__(self, from_position: _Optional[int] = ..., to_position: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...
    INSERT_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    MOVE_FIELD_NUMBER: _ClassVar[int]
    insert: PlaylistOperation.Insert
    remove: PlaylistOperation.Remove
    move: PlaylistOperation.Move
    def __init__(self, insert: _Optional[_Union[PlaylistOperation.Insert, _Mapping]] = ..., remove: _Optional[_Union[PlaylistOperation.Remove, _Mapping]] = ..., move: _Optional[_Union[PlaylistOperation.Move, _Mapping]] = ...) -> None: ...

class EditPlaylistRequest(_message.Message):
    __slots__ = ("id", "base_version", "operations")
    ID_FIELD_NUMBER: _ClassVar[int]
    BASE_VERSION_FIELD_NUMBER: _ClassVar[int]
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    id: int
    base_version: int
    operations: _containers.RepeatedCompositeFieldContainer[PlaylistOperation]
    def __init__(self, id: _Optional[int] = ..., base_version: _Optional[int] = ..., operations: _Optional[_Iterable[_Union[PlaylistOperation, _Mapping]]] = ...) -> None: ...

class EditPlaylistResponse(_message.Message):
    __slots__ = ("playlist",)
    PLAYLIST_FIELD_NUMBER: _ClassVar[int]
    playlist: Playlist
    def __init__(self, playlist: _Optional[_Union[Playlist, _Mapping]] = ...) -> None: ...

class DeletePlaylistRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class DeletePlaylistResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SongStats(_message.Message):
    __slots__ = ("hash", "starred", "rating", "play_count", "skip_count", "last_played_ms", "rated_at_ms")
    HASH_FIELD_NUMBER: _ClassVar[int]
    STARRED_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    PLAY_COUNT_FIELD_NUMBER: _ClassVar[int]
    SKIP_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_PLAYED_MS_FIELD_NUMBER: _ClassVar[int]
    RATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    hash: str
    starred: bool
    rating: int
    play_count: int
    skip_count: int
    last_played_ms: int
    rated_at_ms: int
    def __init__(self, hash: _Optional[str] = ..., starred: _Optional[bool] = ..., rating: _Optional[int] = ..., play_count: _Optional[int] = ..., skip_count: _Optional[int] = ..., last_played_ms: _Optional[int] = ..., rated_at_ms: _Optional[int] = ...) -> None: ...

class RateSongRequest(_message.Message):
    __slots__ = ("hash", "starred", "rating", "at_ms")
    HASH_FIELD_NUMBER: _ClassVar[int]
    STARRED_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    hash: str
    starred: bool
    rating: int
    at_ms: int
    def __init__(self, hash: _Optional[str] = ..., starred: _Optional[bool] = ..., rating: _Optional[int] = ..., at_ms: _Optional[int] = ...) -> None: ...

class RateSongResponse(_message.Message):
    __slots__ = ("stats",)
    STATS_FIELD_NUMBER: _ClassVar[int]
    stats: SongStats
    def __init__(self, stats: _Optional[_Union[SongStats, _Mapping]] = ...) -> None: ...

class Play(_message.Message):
    __slots__ = ("id", "hash", "started_at_ms", "seconds_played", "completed", "skipped")
    ID_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_PLAYED_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    id: str
    hash: str
    started_at_ms: int
    seconds_played: int
    completed: bool
    skipped: bool
    def __init__(self, id: _Optional[str] = ..., hash: _Optional[str] = ..., started_at_ms: _Optional[int] = ..., seconds_played: _Optional[int] = ..., completed: _Optional[bool] = ..., skipped: _Optional[bool] = ...) -> None: ...

class RecordPlaysRequest(_message.Message):
    __slots__ = ("plays",)
    PLAYS_FIELD_NUMBER: _ClassVar[int]
    plays: _containers.RepeatedCompositeFieldContainer[Play]
    def __init__(self, plays: _Optional[_Iterable[_Union[Play, _Mapping]]] = ...) -> None: ...

class PlayResult(_message.Message):
    __slots__ = ("id", "outcome", "error")
    class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OUTCOME_UNSPECIFIED: _ClassVar[PlayResult.Outcome]
        OUTCOME_RECORDED: _ClassVar[PlayResult.Outcome]
        OUTCOME_DUPLICATE: _ClassVar[PlayResult.Outcome]
        OUTCOME_INVALID: _ClassVar[PlayResult.Outcome]
    OUTCOME_UNSPECIFIED: PlayResult.Outcome
    OUTCOME_RECORDED: PlayResult.Outcome
    OUTCOME_DUPLICATE: PlayResult.Outcome
    OUTCOME_INVALID: PlayResult.Outcome
    ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    id: str
    outcome: PlayResult.Outcome
    error: str
    def __init__(self, id: _Optional[str] = ..., outcome: _Optional[_Union[PlayResult.Outcome, str]] = ..., error: _Optional[str] = ...) -> None: ...

class RecordPlaysResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[PlayResult]
    def __init__(self, results: _Optional[_Iterable[_Union[PlayResult, _Mapping]]] = ...) -> None: ...

class GetSongStatsRequest(_message.Message):
    __slots__ = ("hashes",)
    HASHES_FIELD_NUMBER: _ClassVar[int]
    hashes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, hashes: _Optional[_Iterable[str]] = ...) -> None: ...

class GetSongStatsResponse(_message.Message):
    __slots__ = ("stats",)
    STATS_FIELD_NUMBER: _ClassVar[int]
    stats: _containers.RepeatedCompositeFieldContainer[SongStats]
    def __init__(self, stats: _Optional[_Iterable[_Union[SongStats, _Mapping]]] = ...) -> None: ...

class AlbumKey(_message.Message):
    __slots__ = ("album_artist", "album")
    ALBUM_ARTIST_FIELD_NUMBER: _ClassVar[int]
    ALBUM_FIELD_NUMBER: _ClassVar[int]
    album_artist: str
    album: str
    def __init__(self, album_artist: _Optional[str] = ..., album: _Optional[str] = ...) -> None: ...

class GetCoverArtRequest(_message.Message):
    __slots__ = ("hash", "album", "size")
    HASH_FIELD_NUMBER: _ClassVar[int]
    ALBUM_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    hash: str
    album: AlbumKey
    size: int
    def __init__(self, hash: _Optional[str] = ..., album: _Optional[_Union[AlbumKey, _Mapping]] = ..., size: _Optional[int] = ...) -> None: ...

class GetCoverArtResponse(_message.Message):
    __slots__ = ("chunk", "mime_type", "width", "height", "total_size")
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    chunk: bytes
    mime_type: str
    width: int
    height: int
    total_size: int
    def __init__(self, chunk: _Optional[bytes] = ..., mime_type: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., total_size: _Optional[int] = ...) -> None: ...

class Artist(_message.Message):
    __slots__ = ("name", "album_count", "song_count")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ALBUM_COUNT_FIELD_NUMBER: _ClassVar[int]
    SONG_COUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    album_count: int
    song_count: int
    def __init__(self, name: _Optional[str] = ..., album_count: _Optional[int] = ..., song_count: _Optional[int] = ...) -> None: ...

class Album(_message.Message):
    __slots__ = ("album_artist", "album", "year", "track_count", "duration_ms", "art_hash", "play_count")
    ALBUM_ARTIST_FIELD_NUMBER: _ClassVar[int]
    ALBUM_FIELD_NUMBER: _ClassVar[int]
    YEAR_FIELD_NUMBER: _ClassVar[int]
    TRACK_COUNT_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    ART_HASH_FIELD_NUMBER: _ClassVar[int]
    PLAY_COUNT_FIELD_NUMBER: _ClassVar[int]
    album_artist: str
    album: str
    year: int
    track_count: int
    duration_ms: int
    art_hash: str
    play_count: int
    def __init__(self, album_artist: _Optional[str] = ..., album: _Optional[str] = ..., year: _Optional[int] = ..., track_count: _Optional[int] = ..., duration_ms: _Optional[int] = ..., art_hash: _Optional[str] = ..., play_count: _Optional[int] = ...) -> None: ...

class Genre(_message.Message):
    __slots__ = ("name", "song_count")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SONG_COUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    song_count: int
    def __init__(self, name: _Optional[str] = ..., song_count: _Optional[int] = ...) -> None: ...

class Year(_message.Message):
    __slots__ = ("year", "song_count")
    YEAR_FIELD_NUMBER: _ClassVar[int]
    SONG_COUNT_FIELD_NUMBER: _ClassVar[int]
    year: int
    song_count: int
    def __init__(self, year: _Optional[int] = ..., song_count: _Optional[int] = ...) -> None: ...

class Page(_message.Message):
    __slots__ = ("size", "token")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    size: int
    token: str
    def __init__(self, size: _Optional[int] = ..., token: _Optional[str] = ...) -> None: ...

class ListArtistsRequest(_message.Message):
    __slots__ = ("page", "sort")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    SORT_FIELD_NUMBER: _ClassVar[int]
    page: Page
    sort: SortOrder
    def __init__(self, page: _Optional[_Union[Page, _Mapping]] = ..., sort: _Optional[_Union[SortOrder, str]] = ...) -> None: ...

class ListArtistsResponse(_message.Message):
    __slots__ = ("artists", "next_page_token")
    ARTISTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    artists: _containers.RepeatedCompositeFieldContainer[Artist]
    next_page_token: str
    def __init__(self, artists: _Optional[_Iterable[_Union[Artist, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListAlbumsRequest(_message.Message):
    __slots__ = ("page", "sort", "artist", "genre", "year")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    SORT_FIELD_NUMBER: _ClassVar[int]
    ARTIST_FIELD_NUMBER: _ClassVar[int]
    GENRE_FIELD_NUMBER: _ClassVar[int]
    YEAR_FIELD_NUMBER: _ClassVar[int]
    page: Page
    sort: SortOrder
    artist: str
    genre: str
    year: int
    def __init__(self, page: _Optional[_Union[Page, _Mapping]] = ..., sort: _Optional[_Union[SortOrder, str]] = ..., artist: _Optional[str] = ..., genre: _Optional[str] = ..., year: _Optional[int] = ...) -> None: ...

class ListAlbumsResponse(_message.Message):
    __slots__ = ("albums", "next_page_token")
    ALBUMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    albums: _containers.RepeatedCompositeFieldContainer[Album]
    next_page_token: str
    def __init__(self, albums: _Optional[_Iterable[_Union[Album, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListGenresRequest(_message.Message):
    __slots__ = ("page",)
    PAGE_FIELD_NUMBER: _ClassVar[int]
    page: Page
    def __init__(self, page: _Optional[_Union[Page, _Mapping]] = ...) -> None: ...

class ListGenresResponse(_message.Message):
    __slots__ = ("genres", "next_page_token")
    GENRES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    genres: _containers.RepeatedCompositeFieldContainer[Genre]
    next_page_token: str
    def __init__(self, genres: _Optional[_Iterable[_Union[Genre, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListYearsRequest(_message.Message):
    __slots__ = ("page",)
    PAGE_FIELD_NUMBER: _ClassVar[int]
    page: Page
    def __init__(self, page: _Optional[_Union[Page, _Mapping]] = ...) -> None: ...

class ListYearsResponse(_message.Message):
    __slots__ = ("years", "next_page_token")
    YEARS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    years: _containers.RepeatedCompositeFieldContainer[Year]
    next_page_token: str
    def __init__(self, years: _Optional[_Iterable[_Union[Year, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetAlbumRequest(_message.Message):
    __slots__ = ("album", "page")
    ALBUM_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    album: AlbumKey
    page: Page
    def __init__(self, album: _Optional[_Union[AlbumKey, _Mapping]] = ..., page: _Optional[_Union[Page, _Mapping]] = ...) -> None: ...

class GetAlbumResponse(_message.Message):
    __slots__ = ("album", "songs", "next_page_token")
    ALBUM_FIELD_NUMBER: _ClassVar[int]
    SONGS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    album: Album
    songs: _containers.RepeatedCompositeFieldContainer[_file_pb2.FileEntry]
    next_page_token: str
    def __init__(self, album: _Optional[_Union[Album, _Mapping]] = ..., songs: _Optional[_Iterable[_Union[_file_pb2.FileEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("query", "page")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    query: str
    page: Page
    def __init__(self, query: _Optional[str] = ..., page: _Optional[_Union[Page, _Mapping]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("songs", "albums", "artists", "next_page_token")
    SONGS_FIELD_NUMBER: _ClassVar[int]
    ALBUMS_FIELD_NUMBER: _ClassVar[int]
    ARTISTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    songs: _containers.RepeatedCompositeFieldContainer[_file_pb2.FileEntry]
    albums: _containers.RepeatedCompositeFieldContainer[Album]
    artists: _containers.RepeatedCompositeFieldContainer[Artist]
    next_page_token: str
    def __init__(self, songs: _Optional[_Iterable[_Union[_file_pb2.FileEntry, _Mapping]]] = ..., albums: _Optional[_Iterable[_Union[Album, _Mapping]]] = ..., artists: _Optional[_Iterable[_Union[Artist, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Count(_message.Message):
    __slots__ = ("name", "songs", "bytes", "duration_ms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SONGS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    name: str
    songs: int
    bytes: int
    duration_ms: int
    def __init__(self, name: _Optional[str] = ..., songs: _Optional[int] = ..., bytes: _Optional[int] = ..., duration_ms: _Optional[int] = ...) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("song_count", "total_bytes", "total_duration_ms", "by_format", "by_codec", "by_year", "top_artists", "top_albums", "recently_added", "recently_played")
    SONG_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    BY_FORMAT_FIELD_NUMBER: _ClassVar[int]
    BY_CODEC_FIELD_NUMBER: _ClassVar[int]
    BY_YEAR_FIELD_NUMBER: _ClassVar[int]
    TOP_ARTISTS_FIELD_NUMBER: _ClassVar[int]
    TOP_ALBUMS_FIELD_NUMBER: _ClassVar[int]
    RECENTLY_ADDED_FIELD_NUMBER: _ClassVar[int]
    RECENTLY_PLAYED_FIELD_NUMBER: _ClassVar[int]
    song_count: int
    total_bytes: int
    total_duration_ms: int
    by_format: _containers.RepeatedCompositeFieldContainer[Count]
    by_codec: _containers.RepeatedCompositeFieldContainer[Count]
    by_year: _containers.RepeatedCompositeFieldContainer[Count]
    top_artists: _containers.RepeatedCompositeFieldContainer[Count]
    top_albums: _containers.RepeatedCompositeFieldContainer[Album]
    recently_added: _containers.RepeatedCompositeFieldContainer[_file_pb2.FileEntry]
    recently_played: _containers.RepeatedCompositeFieldContainer[_file_pb2.FileEntry]
    def __init__(self, song_count: _Optional[int] = ..., total_bytes: _Optional[int] = ..., total_duration_ms: _Optional[int] = ..., by_format: _Optional[_Iterable[_Union[Count, _Mapping]]] = ..., by_codec: _Optional[_Iterable[_Union[Count, _Mapping]]] = ..., by_year: _Optional[_Iterable[_Union[Count, _Mapping]]] = ..., top_artists: _Optional[_Iterable[_Union[Count, _Mapping]]] = ..., top_albums: _Optional[_Iterable[_Union[Album, _Mapping]]] = ..., recently_added: _Optional[_Iterable[_Union[_file_pb2.FileEntry, _Mapping]]] = ..., recently_played: _Optional[_Iterable[_Union[_file_pb2.FileEntry, _Mapping]]] = ...) -> None: ...
