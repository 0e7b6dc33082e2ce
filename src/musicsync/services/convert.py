"""Database rows to wire messages, shared by the File and Sync servicers.

Stored text is clipped to the bounds of limits.py on its way out: rows written
before those bounds existed must not make an answer too big to send.
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.message import Message

from ..db.models import LibraryEntry, Playlist, SongStats
from ..sync.feed import Event
from ..sync.changes import ChangeKind, Subject
from ..limits import (MAX_FILENAME_BYTES, MAX_PATH_BYTES, MAX_PLAYLIST_DESCRIPTION_CHARS,
                      MAX_PLAYLIST_NAME_CHARS, MAX_TAG_CHARS, PAGE_BUDGET_BYTES, clip,
                      clip_utf8)
from ..proto import file_pb2, library_pb2, sync_pb2

# A repeated message field's tag and length prefix, at most.
_FIELD_OVERHEAD = 6


def file_entry(entry: LibraryEntry) -> file_pb2.FileEntry:
    return file_pb2.FileEntry(
        hash=entry.sha256.hex(), filename=filename(entry.filename), size=entry.size,
        title=clip(entry.title, MAX_TAG_CHARS), artist=clip(entry.artist, MAX_TAG_CHARS),
        album=clip(entry.album, MAX_TAG_CHARS),
        album_artist=clip(entry.album_artist, MAX_TAG_CHARS), track=entry.track,
        disc=entry.disc, year=entry.year, genre=clip(entry.genre, MAX_TAG_CHARS),
        duration=(entry.duration_ms + 500) // 1000, duration_ms=entry.duration_ms,
        bitrate=entry.bitrate, sample_rate=entry.sample_rate, channels=entry.channels,
        codec=clip(entry.codec, MAX_TAG_CHARS), created_at=entry.created_at,
        updated_at=entry.updated_at, path=path(entry.path))


def filename(stored: str) -> str:
    return clip_utf8(stored, MAX_FILENAME_BYTES)


def path(stored: str) -> str:
    return clip_utf8(stored, MAX_PATH_BYTES)


def encoded_size(messages: Sequence[Message]) -> int:
    """About the bytes ``messages`` take as a repeated field (a little over, never under)."""
    return sum(message.ByteSize() + _FIELD_OVERHEAD for message in messages)


def within_budget(messages: Sequence[Message], budget: int = PAGE_BUDGET_BYTES) -> int:
    """How many of the leading ``messages`` fit in ``budget`` bytes (at least one)."""
    used = 0
    for count, message in enumerate(messages):
        used += message.ByteSize() + _FIELD_OVERHEAD
        if used > budget and count > 0:
            return count
    return len(messages)


# Stored subjects and the wire's, both ways.
SUBJECTS = {Subject.SONG: sync_pb2.SUBJECT_SONG, Subject.PLAYLIST: sync_pb2.SUBJECT_PLAYLIST,
            Subject.SONG_STATS: sync_pb2.SUBJECT_SONG_STATS}
WIRE_SUBJECTS = {wire: stored for stored, wire in SUBJECTS.items()}
WIRE_SUBJECTS[sync_pb2.SUBJECT_UNSPECIFIED] = Subject.SONG


def change_event(event: Event) -> sync_pb2.ChangeEvent:
    change = event.change
    subject = Subject(change.subject)
    message = sync_pb2.ChangeEvent(seq=change.seq, kind=change.kind, hash=change.sha256.hex(),
                                   at=change.at, subject=SUBJECTS[subject])
    if subject == Subject.PLAYLIST:
        message.playlist.id = change.subject_id or 0
        if event.playlist is not None and change.kind != ChangeKind.DELETED:
            message.playlist.CopyFrom(playlist_message(event.playlist))
        return message
    if event.entry is not None and change.kind != ChangeKind.DELETED:
        message.file.CopyFrom(file_entry(event.entry))
    if subject == Subject.SONG_STATS:
        message.stats.CopyFrom(song_stats(change.sha256, event.stats))
    if change.replaces is not None:
        message.replaces = change.replaces.hex()
    return message


def playlist_message(playlist: Playlist) -> library_pb2.Playlist:
    """A playlist without its entries (GetPlaylist pages them)."""
    return library_pb2.Playlist(
        id=playlist.id, name=clip(playlist.name, MAX_PLAYLIST_NAME_CHARS),
        description=clip(playlist.description, MAX_PLAYLIST_DESCRIPTION_CHARS),
        version=playlist.version, entry_count=playlist.entry_count,
        created_at=playlist.created_at, updated_at=playlist.updated_at)


def song_stats(sha256: bytes, stats: SongStats | None) -> library_pb2.SongStats:
    """A song's stats (all zero when it has none yet)."""
    message = library_pb2.SongStats(hash=sha256.hex())
    if stats is not None:
        message.starred = bool(stats.starred)
        message.rating = stats.rating
        message.play_count = stats.play_count
        message.skip_count = stats.skip_count
        message.last_played_ms = stats.last_played_ms
        message.rated_at_ms = stats.rated_at_ms
    return message
