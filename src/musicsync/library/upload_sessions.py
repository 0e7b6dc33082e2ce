"""The upload_sessions rows of resumable uploads: sync functions of a Session.

Run inside Database.grouped_write (or quick_read), as Core statements built
once: a resumable upload asked the database for its session four times through
the async session (StartUpload, the stream's lookup, the complete offset, the
end), each a dozen hand-offs to aiosqlite's thread and a turn of its own at the
write lock, and ran at under half the rate of a plain upload
(bench/small_uploads.py). Now StartUpload is one grouped write, the stream's
lookup one quick read, and the complete offset and the end ride along with
the publish's two grouped writes (Files.publish).
"""

from __future__ import annotations

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from ..db.models import UploadSession

_SESSIONS = UploadSession.__table__
_COLUMNS = (_SESSIONS.c.id, _SESSIONS.c.user_id, _SESSIONS.c.sha256, _SESSIONS.c.size,
            _SESSIONS.c.committed, _SESSIONS.c.expires_at)
_OF_CONTENT = select(*_COLUMNS).where(_SESSIONS.c.user_id == bindparam("user_id"),
                                      _SESSIONS.c.sha256 == bindparam("sha256"))
_BY_ID = select(*_COLUMNS).where(_SESSIONS.c.id == bindparam("upload_id"),
                                 _SESSIONS.c.user_id == bindparam("user_id"))
_OPEN_OTHERS = select(func.count()).select_from(_SESSIONS).where(
    _SESSIONS.c.user_id == bindparam("user_id"), _SESSIONS.c.expires_at > bindparam("now"),
    _SESSIONS.c.sha256 != bindparam("sha256"))
_INSERT = insert(_SESSIONS)
_DELETE = delete(_SESSIONS).where(_SESSIONS.c.id == bindparam("upload_id"))
_RENEW = update(_SESSIONS).where(_SESSIONS.c.id == bindparam("upload_id")).values(
    expires_at=bindparam("new_expires_at"))
_COMPLETE = select(*_COLUMNS).where(_SESSIONS.c.committed == _SESSIONS.c.size)
_EXPIRED = delete(_SESSIONS).where(_SESSIONS.c.expires_at <= bindparam("now"))
_IDS = select(_SESSIONS.c.id)
_RECORD = update(_SESSIONS).where(_SESSIONS.c.id == bindparam("upload_id")).values(
    committed=bindparam("new_committed"), expires_at=bindparam("new_expires_at"))


def of_content(session: Session, user_id: int, sha256: bytes) -> Row | None:
    """The user's session of ``sha256`` (id, user_id, sha256, size, committed,
    expires_at), expired or not."""
    return session.connection().execute(_OF_CONTENT, {"user_id": user_id,
                                                      "sha256": sha256}).first()


def by_id(session: Session, user_id: int, upload_id: str) -> Row | None:
    """The user's session ``upload_id`` (columns as of_content), expired or not."""
    return session.connection().execute(_BY_ID, {"upload_id": upload_id,
                                                 "user_id": user_id}).first()


def count_others(session: Session, user_id: int, sha256: bytes, now: int) -> int:
    """The user's unexpired sessions of content other than ``sha256``."""
    return session.connection().execute(_OPEN_OTHERS, {"user_id": user_id, "now": now,
                                                       "sha256": sha256}).scalar_one()


def create(session: Session, upload_id: str, user_id: int, sha256: bytes, size: int,
           now: int, expires_at: int) -> None:
    session.connection().execute(_INSERT, {
        "id": upload_id, "user_id": user_id, "sha256": sha256, "size": size,
        "committed": 0, "created_at": now, "expires_at": expires_at})


def renew(session: Session, upload_id: str, expires_at: int) -> None:
    session.connection().execute(_RENEW, {"upload_id": upload_id,
                                          "new_expires_at": expires_at})


def record_offset(session: Session, upload_id: str, committed: int, expires_at: int) -> None:
    """Records ``committed`` bytes as durably held (no error if the session is gone)."""
    session.connection().execute(_RECORD, {"upload_id": upload_id, "new_committed": committed,
                                           "new_expires_at": expires_at})


def end(session: Session, upload_id: str) -> None:
    """Deletes the session's row (no error if it is gone)."""
    session.connection().execute(_DELETE, {"upload_id": upload_id})


def complete(session: Session) -> list[Row]:
    """Every user's sessions whose file is complete (columns as of_content)."""
    return list(session.connection().execute(_COMPLETE).all())


def end_expired(session: Session, now: int) -> tuple[int, set[str]]:
    """Deletes the sessions expired at ``now``: (how many, the ids of those left)."""
    connection = session.connection()
    expired = connection.execute(_EXPIRED, {"now": now}).rowcount
    return expired, set(connection.execute(_IDS).scalars().all())
