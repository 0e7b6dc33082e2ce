"""How a change enters a user's feed: the next sequence number and a ``changes`` row.

Every change to what a user keeps takes the next value of the user's sequence
(``users.last_seq``) and writes a ``changes`` row in the same transaction as the
change itself, so the feed and what it describes can never disagree. Song events
are the first kind of change; others (playlists, favourites, plays) add kinds of
their own and record them through ``record_change`` the same way.

Both functions run inside a write transaction the caller owns (a sync Session: the
grouped writes call them directly, async sessions through ``run_sync``).
"""

from __future__ import annotations

import enum

from sqlalchemy import bindparam, insert, update
from sqlalchemy.orm import Session

from ..db.channel import announce_change
from ..db.models import Change, User


class ChangeKind(enum.IntEnum):
    """Values of sync.ChangeKind, as stored in changes.kind."""

    ADDED = 1
    UPDATED = 2
    DELETED = 3


class Subject(enum.IntEnum):
    """What a change is about, as stored in changes.subject (sync.Subject on the wire)."""

    SONG = 0  # sha256 names the song
    PLAYLIST = 1  # subject_id names the playlist; sha256 is empty
    SONG_STATS = 2  # sha256 names the song whose favourite, rating or plays changed


# What clients that name no subjects get: the song events they always had.
SONGS = frozenset({Subject.SONG})


# Built once: building statements per upload took most of its library transaction.
_NEXT_SEQ = (update(User.__table__).where(User.__table__.c.id == bindparam("user_id"))
             .values(last_seq=User.__table__.c.last_seq + 1)
             .returning(User.__table__.c.last_seq))
_INSERT_CHANGE = insert(Change.__table__)
_TAKE_SEQS = (update(User.__table__).where(User.__table__.c.id == bindparam("user_id"))
              .values(last_seq=User.__table__.c.last_seq + bindparam("count"))
              .returning(User.__table__.c.last_seq))


def next_seq(session: Session, user_id: int) -> int:
    """Takes the user's next change sequence number (inside the write transaction).

    The UPDATE locks the user's row until the commit, so concurrent writers of one
    user take consecutive numbers, never the same one."""
    return session.connection().execute(_NEXT_SEQ, {"user_id": user_id}).scalar_one()


def record_change(session: Session, user_id: int, seq: int, kind: ChangeKind,
                  sha256: bytes, now: int, *, replaces: bytes | None = None,
                  subject: Subject = Subject.SONG, subject_id: int | None = None) -> None:
    """Writes change ``seq`` (taken with next_seq in the same transaction); once it
    commits, the Watch streams of other replicas hear of it (db/channel.py)."""
    connection = session.connection()
    connection.execute(_INSERT_CHANGE, dict(
        user_id=user_id, seq=seq, kind=int(kind), sha256=sha256, at=now, replaces=replaces,
        subject=int(subject), subject_id=subject_id))
    announce_change(connection, user_id, seq)


def record_changes(session: Session, user_id: int, kind: ChangeKind, hashes: list[bytes],
                   now: int, *, subject: Subject) -> int:
    """One change per hash, in order, in bulk; returns the last one's seq.

    next_seq and record_change a change at a time cost two statements each: a batch of
    plays of 1,000 songs spent 600 ms on them (bench/plays.py), a few ms this way. The
    numbers are taken at once (the UPDATE locks the user's row as next_seq's does), the
    rows written in one executemany, and the commit announced once: a Watch woken by the
    last seq reads every change before it."""
    connection = session.connection()
    last = connection.execute(_TAKE_SEQS, {"user_id": user_id,
                                           "count": len(hashes)}).scalar_one()
    first = last - len(hashes) + 1
    connection.execute(_INSERT_CHANGE, [
        dict(user_id=user_id, seq=first + n, kind=int(kind), sha256=sha256, at=now,
             replaces=None, subject=int(subject), subject_id=None)
        for n, sha256 in enumerate(hashes)])
    announce_change(connection, user_id, last)
    return last

