"""Database rows to wire messages, shared by the File and Sync servicers."""

from __future__ import annotations

from ..db.models import LibraryEntry
from ..feed import Event
from ..library import ChangeKind
from ..proto import file_pb2, sync_pb2


def file_entry(entry: LibraryEntry) -> file_pb2.FileEntry:
    return file_pb2.FileEntry(
        hash=entry.sha256.hex(), filename=entry.filename, size=entry.size, title=entry.title,
        artist=entry.artist, album=entry.album, album_artist=entry.album_artist,
        track=entry.track, disc=entry.disc, year=entry.year, genre=entry.genre,
        duration=(entry.duration_ms + 500) // 1000, duration_ms=entry.duration_ms,
        bitrate=entry.bitrate, sample_rate=entry.sample_rate, channels=entry.channels,
        codec=entry.codec, created_at=entry.created_at, updated_at=entry.updated_at)


def change_event(event: Event) -> sync_pb2.ChangeEvent:
    change = event.change
    message = sync_pb2.ChangeEvent(seq=change.seq, kind=change.kind, hash=change.sha256.hex(),
                                   at=change.at)
    if event.entry is not None and change.kind != ChangeKind.DELETED:
        message.file.CopyFrom(file_entry(event.entry))
    return message
