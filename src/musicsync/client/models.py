"""What the client hands back: plain frozen values instead of protobuf messages."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..proto import file_pb2, sync_pb2


@dataclass(frozen=True)
class Device:
    """This installation as the server knows it: a stable id it chose, and a name to show."""

    id: str
    name: str = ""

    def message(self) -> sync_pb2.Device:
        return sync_pb2.Device(id=self.id, name=self.name)


@dataclass(frozen=True)
class RemoteFile:
    """A song of the user's library on the server. ``hash`` is the lowercase hex SHA-256."""

    hash: str
    path: str
    filename: str
    size: int
    title: str = ""
    artist: str = ""
    album: str = ""
    album_artist: str = ""
    track: int = 0
    disc: int = 0
    year: int = 0
    genre: str = ""
    duration_ms: int = 0
    bitrate: int = 0
    sample_rate: int = 0
    channels: int = 0
    codec: str = ""
    created_at: int = 0
    updated_at: int = 0

    @classmethod
    def from_proto(cls, entry: file_pb2.FileEntry) -> RemoteFile:
        # A server from before folder paths files every song at its filename.
        return cls(
            hash=entry.hash, path=entry.path or entry.filename, filename=entry.filename,
            size=entry.size, title=entry.title, artist=entry.artist, album=entry.album,
            album_artist=entry.album_artist, track=entry.track, disc=entry.disc,
            year=entry.year, genre=entry.genre,
            duration_ms=entry.duration_ms or entry.duration * 1000, bitrate=entry.bitrate,
            sample_rate=entry.sample_rate, channels=entry.channels, codec=entry.codec,
            created_at=entry.created_at, updated_at=entry.updated_at)


CHANGE_KINDS = {
    sync_pb2.CHANGE_KIND_ADDED: "added",
    sync_pb2.CHANGE_KIND_UPDATED: "updated",
    sync_pb2.CHANGE_KIND_DELETED: "deleted",
}


@dataclass(frozen=True)
class ChangeEvent:
    """One change of the library: ``kind`` is "added", "updated" or "deleted".

    ``file`` is the entry as it is now (None for a deletion, or when it is gone since);
    ``replaces`` names the hash an added song replaced: download the new one into that
    song's path, then delete the old one. ``cursor`` is the feed's position after this event.
    """

    seq: int
    kind: str
    hash: str
    file: RemoteFile | None
    at: int
    replaces: str = ""
    cursor: int = 0

    @classmethod
    def from_proto(cls, event: sync_pb2.ChangeEvent, cursor: int | None = None) -> ChangeEvent:
        return cls(seq=event.seq, kind=CHANGE_KINDS.get(event.kind, "unknown"), hash=event.hash,
                   file=RemoteFile.from_proto(event.file) if event.HasField("file") else None,
                   at=event.at, replaces=event.replaces,
                   cursor=event.seq if cursor is None else cursor)


@dataclass(frozen=True)
class Heartbeat:
    """A Watch stream's sign of life while nothing changes (server time, Unix seconds)."""

    at: int
    cursor: int


@dataclass(frozen=True)
class UploadResult:
    """What an upload did: the song's hash and entry, and the song bytes this call sent.

    ``duplicate_of_path`` is set when the library already held these bytes at another path
    (the song stays there). ``resumed_from`` is the offset the last attempt started at.
    """

    hash: str
    entry: RemoteFile
    duplicate_of_path: str
    bytes_sent: int
    resumed_from: int = 0
    attempts: int = 1


@dataclass(frozen=True)
class DownloadResult:
    """A finished download: where it is, its hash and size, and the bytes this call received."""

    path: str
    hash: str
    size: int
    bytes_received: int
    resumed_from: int = 0


@dataclass(frozen=True)
class StatResult:
    """Which of the hashes asked about are in the library (entries) and which are not."""

    found: list[RemoteFile] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DiffResult:
    """What a device has to do, as lowercase hex hashes: send ``upload`` to the server,
    fetch ``download``, delete ``delete`` locally; then remember ``cursor``."""

    upload: list[str]
    download: list[RemoteFile]
    delete: list[str]
    cursor: int
