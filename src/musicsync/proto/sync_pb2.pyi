from . import file_pb2 as _file_pb2
from . import library_pb2 as _library_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChangeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANGE_KIND_UNSPECIFIED: _ClassVar[ChangeKind]
    CHANGE_KIND_ADDED: _ClassVar[ChangeKind]
    CHANGE_KIND_UPDATED: _ClassVar[ChangeKind]
    CHANGE_KIND_DELETED: _ClassVar[ChangeKind]

class Subject(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SUBJECT_UNSPECIFIED: _ClassVar[Subject]
    SUBJECT_SONG: _ClassVar[Subject]
    SUBJECT_PLAYLIST: _ClassVar[Subject]
    SUBJECT_SONG_STATS: _ClassVar[Subject]
CHANGE_KIND_UNSPECIFIED: ChangeKind
CHANGE_KIND_ADDED: ChangeKind
CHANGE_KIND_UPDATED: ChangeKind
CHANGE_KIND_DELETED: ChangeKind
SUBJECT_UNSPECIFIED: Subject
SUBJECT_SONG: Subject
SUBJECT_PLAYLIST: Subject
SUBJECT_SONG_STATS: Subject

class GetSyncResponse(_message.Message):
    __slots__ = ("files",)
    FILES_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[FileInfo]
    def __init__(self, files: _Optional[_Iterable[_Union[FileInfo, _Mapping]]] = ...) -> None: ...

class FileInfo(_message.Message):
    __slots__ = ("hash", "filename", "path")
    HASH_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    hash: str
    filename: str
    path: str
    def __init__(self, hash: _Optional[str] = ..., filename: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class ListFilesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListFilesResponse(_message.Message):
    __slots__ = ("files", "next_page_token")
    FILES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[_file_pb2.FileEntry]
    next_page_token: str
    def __init__(self, files: _Optional[_Iterable[_Union[_file_pb2.FileEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Device(_message.Message):
    __slots__ = ("id", "name")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class DiffRequest(_message.Message):
    __slots__ = ("hashes", "cursor", "device")
    HASHES_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    cursor: int
    device: Device
    def __init__(self, hashes: _Optional[_Iterable[bytes]] = ..., cursor: _Optional[int] = ..., device: _Optional[_Union[Device, _Mapping]] = ...) -> None: ...

class DiffResponse(_message.Message):
    __slots__ = ("upload", "download", "delete", "cursor")
    UPLOAD_FIELD_NUMBER: _ClassVar[int]
    DOWNLOAD_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    upload: _containers.RepeatedScalarFieldContainer[bytes]
    download: _containers.RepeatedCompositeFieldContainer[_file_pb2.FileEntry]
    delete: _containers.RepeatedScalarFieldContainer[bytes]
    cursor: int
    def __init__(self, upload: _Optional[_Iterable[bytes]] = ..., download: _Optional[_Iterable[_Union[_file_pb2.FileEntry, _Mapping]]] = ..., delete: _Optional[_Iterable[bytes]] = ..., cursor: _Optional[int] = ...) -> None: ...

class ChangeEvent(_message.Message):
    __slots__ = ("seq", "kind", "hash", "file", "at", "replaces", "subject", "playlist", "stats")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    REPLACES_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    PLAYLIST_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    kind: ChangeKind
    hash: str
    file: _file_pb2.FileEntry
    at: int
    replaces: str
    subject: Subject
    playlist: _library_pb2.Playlist
    stats: _library_pb2.SongStats
    def __init__(self, seq: _Optional[int] = ..., kind: _Optional[_Union[ChangeKind, str]] = ..., hash: _Optional[str] = ..., file: _Optional[_Union[_file_pb2.FileEntry, _Mapping]] = ..., at: _Optional[int] = ..., replaces: _Optional[str] = ..., subject: _Optional[_Union[Subject, str]] = ..., playlist: _Optional[_Union[_library_pb2.Playlist, _Mapping]] = ..., stats: _Optional[_Union[_library_pb2.SongStats, _Mapping]] = ...) -> None: ...

class ChangesRequest(_message.Message):
    __slots__ = ("since", "limit", "device", "subjects")
    SINCE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    SUBJECTS_FIELD_NUMBER: _ClassVar[int]
    since: int
    limit: int
    device: Device
    subjects: _containers.RepeatedScalarFieldContainer[Subject]
    def __init__(self, since: _Optional[int] = ..., limit: _Optional[int] = ..., device: _Optional[_Union[Device, _Mapping]] = ..., subjects: _Optional[_Iterable[_Union[Subject, str]]] = ...) -> None: ...

class ChangesResponse(_message.Message):
    __slots__ = ("events", "cursor", "has_more")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[ChangeEvent]
    cursor: int
    has_more: bool
    def __init__(self, events: _Optional[_Iterable[_Union[ChangeEvent, _Mapping]]] = ..., cursor: _Optional[int] = ..., has_more: _Optional[bool] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("since", "device", "heartbeat_seconds", "subjects")
    SINCE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SUBJECTS_FIELD_NUMBER: _ClassVar[int]
    since: int
    device: Device
    heartbeat_seconds: int
    subjects: _containers.RepeatedScalarFieldContainer[Subject]
    def __init__(self, since: _Optional[int] = ..., device: _Optional[_Union[Device, _Mapping]] = ..., heartbeat_seconds: _Optional[int] = ..., subjects: _Optional[_Iterable[_Union[Subject, str]]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("at",)
    AT_FIELD_NUMBER: _ClassVar[int]
    at: int
    def __init__(self, at: _Optional[int] = ...) -> None: ...

class WatchResponse(_message.Message):
    __slots__ = ("event", "heartbeat", "cursor")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    event: ChangeEvent
    heartbeat: Heartbeat
    cursor: int
    def __init__(self, event: _Optional[_Union[ChangeEvent, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., cursor: _Optional[int] = ...) -> None: ...

class AckRequest(_message.Message):
    __slots__ = ("device", "cursor")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    device: Device
    cursor: int
    def __init__(self, device: _Optional[_Union[Device, _Mapping]] = ..., cursor: _Optional[int] = ...) -> None: ...

class AckResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
