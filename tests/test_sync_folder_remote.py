"""The server's library as a folder sync rebuilds it: a snapshot with the change feed
replayed (folder.remote.replay), checked against what the feed's events carry."""

from __future__ import annotations

from musicsync.client.folder.remote import replay
from musicsync.client.models import ChangeEvent, RemoteFile


def added(seq: int, sha: str, path: str | None, replaces: str = "",
          kind: str = "added") -> ChangeEvent:
    file = RemoteFile(hash=sha, path=path, filename=path.rsplit("/", 1)[-1], size=seq * 10) \
        if path is not None else None
    return ChangeEvent(seq=seq, kind=kind, hash=sha, file=file, at=0, replaces=replaces)


def deleted(seq: int, sha: str) -> ChangeEvent:
    return ChangeEvent(seq=seq, kind="deleted", hash=sha, file=None, at=0)


def test_added_moved_and_deleted_songs_end_where_the_library_has_them():
    songs, sizes = replay({"a.wav": "A", "b.wav": "B"}, {"A": 1, "B": 2}, [
        added(1, "C", "New/c.wav"),
        added(2, "A", "Moved/a.wav", kind="updated"),
        deleted(3, "B"),
    ])
    assert songs == {"Moved/a.wav": "A", "New/c.wav": "C"}
    assert sizes == {"A": 20, "C": 10}


def test_a_replace_takes_the_old_songs_place_and_the_old_song_goes():
    songs, _ = replay({"x/s.wav": "OLD"}, {"OLD": 1},
                      [added(5, "NEW", "x/s.wav", replaces="OLD")])
    assert songs == {"x/s.wav": "NEW"}


def test_a_song_deleted_later_waits_for_its_deletion_and_a_moved_one_frees_its_path():
    # Events carry songs as they are now: a song added then deleted has no entry, and a
    # song that later moved shows its new path at its first event already.
    songs, _ = replay({"p.wav": "G"}, {"G": 1}, [
        added(1, "T", None),  # gone since
        added(2, "H", "p.wav"),  # takes p.wav: G moved away meanwhile...
        added(3, "G", "q.wav", kind="updated"),  # ...to q.wav
        deleted(4, "T"),
    ])
    assert songs == {"p.wav": "H", "q.wav": "G"}


def test_a_song_deleted_and_added_again_is_there():
    songs, _ = replay({"a.wav": "A"}, {"A": 1}, [deleted(1, "A"), added(2, "A", "again/a.wav")])
    assert songs == {"again/a.wav": "A"}
