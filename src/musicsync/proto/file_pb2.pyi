from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UploadRequest(_message.Message):
    __slots__ = ("metadata", "chunk")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    metadata: FileMetadata
    chunk: bytes
    def __init__(self, metadata: _Optional[_Union[FileMetadata, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class FileMetadata(_message.Message):
    __slots__ = ("filename", "title", "artist", "album", "duration", "sha256", "size", "upload_id", "offset", "album_artist", "track", "disc", "year", "genre", "path", "replaces")
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    ARTIST_FIELD_NUMBER: _ClassVar[int]
    ALBUM_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    ALBUM_ARTIST_FIELD_NUMBER: _ClassVar[int]
    TRACK_FIELD_NUMBER: _ClassVar[int]
    DISC_FIELD_NUMBER: _ClassVar[int]
    YEAR_FIELD_NUMBER: _ClassVar[int]
    GENRE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    REPLACES_FIELD_NUMBER: _ClassVar[int]
    filename: str
    title: str
    artist: str
    album: str
    duration: int
    sha256: str
    size: int
    upload_id: str
    offset: int
    album_artist: str
    track: int
    disc: int
    year: int
    genre: str
    path: str
    replaces: str
    def __init__(self, filename: _Optional[str] = ..., title: _Optional[str] = ..., artist: _Optional[str] = ..., album: _Optional[str] = ..., duration: _Optional[int] = ..., sha256: _Optional[str] = ..., size: _Optional[int] = ..., upload_id: _Optional[str] = ..., offset: _Optional[int] = ..., album_artist: _Optional[str] = ..., track: _Optional[int] = ..., disc: _Optional[int] = ..., year: _Optional[int] = ..., genre: _Optional[str] = ..., path: _Optional[str] = ..., replaces: _Optional[str] = ...) -> None: ...

class UploadResponse(_message.Message):
    __slots__ = ("hash", "file", "duplicate_of_path")
    HASH_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_OF_PATH_FIELD_NUMBER: _ClassVar[int]
    hash: str
    file: FileEntry
    duplicate_of_path: str
    def __init__(self, hash: _Optional[str] = ..., file: _Optional[_Union[FileEntry, _Mapping]] = ..., duplicate_of_path: _Optional[str] = ...) -> None: ...

class DownloadRequest(_message.Message):
    __slots__ = ("hash", "offset", "length", "chunk_size")
    HASH_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    hash: str
    offset: int
    length: int
    chunk_size: int
    def __init__(self, hash: _Optional[str] = ..., offset: _Optional[int] = ..., length: _Optional[int] = ..., chunk_size: _Optional[int] = ...) -> None: ...

class DownloadResponse(_message.Message):
    __slots__ = ("chunk", "total_size")
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    chunk: bytes
    total_size: int
    def __init__(self, chunk: _Optional[bytes] = ..., total_size: _Optional[int] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("hash",)
    HASH_FIELD_NUMBER: _ClassVar[int]
    hash: str
    def __init__(self, hash: _Optional[str] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("success",)
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    success: bool
    def __init__(self, success: _Optional[bool] = ...) -> None: ...

class StartUploadRequest(_message.Message):
    __slots__ = ("sha256", "size")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    size: int
    def __init__(self, sha256: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class StartUploadResponse(_message.Message):
    __slots__ = ("upload_id", "offset", "expires_at", "complete")
    UPLOAD_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    upload_id: str
    offset: int
    expires_at: int
    complete: bool
    def __init__(self, upload_id: _Optional[str] = ..., offset: _Optional[int] = ..., expires_at: _Optional[int] = ..., complete: _Optional[bool] = ...) -> None: ...

class StatRequest(_message.Message):
    __slots__ = ("hashes",)
    HASHES_FIELD_NUMBER: _ClassVar[int]
    hashes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, hashes: _Optional[_Iterable[str]] = ...) -> None: ...

class StatResponse(_message.Message):
    __slots__ = ("files", "missing")
    FILES_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[FileEntry]
    missing: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, files: _Optional[_Iterable[_Union[FileEntry, _Mapping]]] = ..., missing: _Optional[_Iterable[str]] = ...) -> None: ...

class FileEntry(_message.Message):
    __slots__ = ("hash", "filename", "size", "title", "artist", "album", "album_artist", "track", "disc", "year", "genre", "duration", "duration_ms", "bitrate", "sample_rate", "channels", "codec", "created_at", "updated_at", "path")
    HASH_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    ARTIST_FIELD_NUMBER: _ClassVar[int]
    ALBUM_FIELD_NUMBER: _ClassVar[int]
    ALBUM_ARTIST_FIELD_NUMBER: _ClassVar[int]
    TRACK_FIELD_NUMBER: _ClassVar[int]
    DISC_FIELD_NUMBER: _ClassVar[int]
    YEAR_FIELD_NUMBER: _ClassVar[int]
    GENRE_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    BITRATE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    hash: str
    filename: str
    size: int
    title: str
    artist: str
    album: str
    album_artist: str
    track: int
    disc: int
    year: int
    genre: str
    duration: int
    duration_ms: int
    bitrate: int
    sample_rate: int
    channels: int
    codec: str
    created_at: int
    updated_at: int
    path: str
    def __init__(self, hash: _Optional[str] = ..., filename: _Optional[str] = ..., size: _Optional[int] = ..., title: _Optional[str] = ..., artist: _Optional[str] = ..., album: _Optional[str] = ..., album_artist: _Optional[str] = ..., track: _Optional[int] = ..., disc: _Optional[int] = ..., year: _Optional[int] = ..., genre: _Optional[str] = ..., duration: _Optional[int] = ..., duration_ms: _Optional[int] = ..., bitrate: _Optional[int] = ..., sample_rate: _Optional[int] = ..., channels: _Optional[int] = ..., codec: _Optional[str] = ..., created_at: _Optional[int] = ..., updated_at: _Optional[int] = ..., path: _Optional[str] = ...) -> None: ...

class MoveRequest(_message.Message):
    __slots__ = ("hash", "path")
    HASH_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    hash: str
    path: str
    def __init__(self, hash: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class MoveResponse(_message.Message):
    __slots__ = ("file",)
    FILE_FIELD_NUMBER: _ClassVar[int]
    file: FileEntry
    def __init__(self, file: _Optional[_Union[FileEntry, _Mapping]] = ...) -> None: ...
