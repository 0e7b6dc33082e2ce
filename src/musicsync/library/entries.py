"""A user's library entries: songs at their paths, and the blobs they point at.

Every change to a library (a song added, its path, filename or tags changed, a
song deleted) records a change in the user's feed in the same transaction
(sync/changes.py), so the feed and the library can never disagree. Deleted events are the tombstones
that tell an offline device to delete a song rather than upload it again; an
added event's ``replaces`` (a replace, see put_entry) is one too, for the
replaced hash.

Each entry sits at a path unique within its library (paths.py).

Playlist entries (players/playlists.py) point at library rows by id, so a replace and
a move keep a song's places. A deleted song's playlist entries stay as "missing":
remove_entry stores the song's last hash and path in them before the row goes (its
foreign key then clears their ``library_id``), and put_entry links them again when
the same content comes back (``relink_missing``). Neither changes a playlist's
version: no position moves.

The functions here run inside a write session the caller owns: sync functions of a
sync Session, for Database.grouped_write (async sessions call them through
``AsyncSession.run_sync``); after the commit, the caller tells the
``ChangeNotifier`` so Watch streams wake up.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from ..db.dialect import PerDialect
from ..db.models import Blob, LibraryEntry, Playlist, PlaylistEntry
from ..db.search_index import index_entry
from ..errors import FailedPrecondition
from ..sync.changes import ChangeKind, next_seq, record_change
from . import paths

PATH_TAKEN_HINT = ("pass its hash in `replaces` to replace it, or choose another path")


@dataclass(frozen=True)
class Tags:
    """What a library entry says about a song besides its bytes and filename."""

    title: str = ""
    artist: str = ""
    album: str = ""
    album_artist: str = ""
    genre: str = ""
    track: int = 0
    disc: int = 0
    year: int = 0
    duration_ms: int = 0
    bitrate: int = 0
    sample_rate: int = 0
    channels: int = 0
    codec: str = ""


TAG_FIELDS = tuple(Tags.__dataclass_fields__)

# The statements of every upload, built once and run as Core statements on the
# session's connection: building them (and the ORM's bulk-DML path) took most of
# an upload's library transaction (bench/small_uploads.py).
_BLOB_VALUES = dict(sha256=bindparam("sha256"), size=bindparam("size"),
                    created_at=bindparam("now"), corrupt=False)
_ENSURE_BLOB = PerDialect(lambda insert: insert(Blob.__table__).values(**_BLOB_VALUES)
                          .on_conflict_do_update(index_elements=[Blob.__table__.c.sha256],
                                                 set_={"corrupt": False}))
_RECORD_BLOB = PerDialect(lambda insert: insert(Blob.__table__).values(**_BLOB_VALUES)
                          .on_conflict_do_nothing(index_elements=[Blob.__table__.c.sha256]))
_INSERT_ENTRY = insert(LibraryEntry.__table__).returning(LibraryEntry.__table__.c.id)
_PATH_HOLDER = select(LibraryEntry.__table__.c.id).where(
    LibraryEntry.__table__.c.user_id == bindparam("user_id"),
    LibraryEntry.__table__.c.path == bindparam("path"))


def ensure_blob(session: Session, sha256: bytes, size: int, now: int) -> None:
    """Records a stored, verified blob (clearing a corrupt mark a fresh upload repaired)."""
    connection = session.connection()
    connection.execute(_ENSURE_BLOB.on(connection), {"sha256": sha256, "size": size, "now": now})


def record_blob_to_come(session: Session, sha256: bytes, size: int, now: int) -> None:
    """Records a blob about to be published, before it is (kept as it is if recorded).

    Until a library entry lists it, the record marks a publish in progress: one that
    a crash interrupted is undone at the next start (Files.recover)."""
    connection = session.connection()
    connection.execute(_RECORD_BLOB.on(connection), {"sha256": sha256, "size": size, "now": now})


@dataclass(frozen=True)
class Placement:
    """Where an upload asks its song to go.

    ``path``: a checked path (paths.normalise_path), or None to file the song at
    ``filename`` (made unique with " (2)" and so on). ``replaces``: the hash of the
    entry this content replaces, if any (see put_entry).
    """

    path: str | None = None
    filename: str = ""
    replaces: bytes | None = None


@dataclass(frozen=True)
class Stored:
    """What put_entry did: the entry, the change recorded (None: nothing changed), the
    path the content already had when another was asked for, the hash it replaced."""

    entry: LibraryEntry
    change: ChangeKind | None
    duplicate_of_path: str = ""
    replaced: bytes | None = None


def put_entry(session: Session, user_id: int, sha256: bytes, size: int,
              placement: Placement | str, tags: Tags, now: int) -> Stored:
    """Adds a song to the library, replaces one with it, or updates its place and tags.

    - Content the library already has stays where it is (its tags updated); asked for
      another path (``placement.path`` or the replaced entry's), that is reported as
      ``duplicate_of_path``. Without a path, a new filename renames it in its folder.
    - ``placement.replaces`` naming another entry of the user: that row takes the new
      content in place (same id, its path unless ``placement.path`` says otherwise),
      and one ADDED change names the replaced hash. Its blob is the caller's to retire.
    - Otherwise a new entry at ``placement.path``, or at ``placement.filename`` made
      unique.

    A path another entry holds raises FailedPrecondition. A string ``placement`` is a
    filename. The blob must be recorded (``ensure_blob``) in the same transaction.
    """
    if isinstance(placement, str):
        placement = Placement(filename=placement)
    entry = entry_by_hash(session, user_id, sha256)
    if entry is not None:
        return _update_in_place(session, entry, placement, tags, now)
    replaced = None
    if placement.replaces is not None and placement.replaces != sha256:
        replaced = entry_by_hash(session, user_id, placement.replaces)
    if replaced is not None:
        path = placement.path or replaced.path
        check_path_free(session, user_id, path, replaced.id)
        old_sha = replaced.sha256
        seq = next_seq(session, user_id)
        for key, value in asdict(tags).items():
            setattr(replaced, key, value)
        replaced.sha256, replaced.size = sha256, size
        replaced.path, replaced.filename = path, paths.basename(path)
        replaced.updated_at, replaced.seq = now, seq
        record_change(session, user_id, seq, ChangeKind.ADDED, sha256, now, replaces=old_sha)
        session.flush()
        relink_missing(session, user_id, sha256, replaced.id, path)
        index_entry(session, replaced)
        return Stored(replaced, ChangeKind.ADDED, replaced=old_sha)
    if placement.path is not None:
        path = placement.path
        check_path_free(session, user_id, path)
    else:
        path = free_path(session, user_id, placement.filename)
    seq = next_seq(session, user_id)
    values = dict(user_id=user_id, sha256=sha256, size=size, created_at=now, updated_at=now,
                  seq=seq, path=path, filename=paths.basename(path), **asdict(tags))
    # A Core insert (see _INSERT_ENTRY): the entry returned is not in the session.
    entry_id = session.connection().execute(_INSERT_ENTRY, values).scalar_one()
    record_change(session, user_id, seq, ChangeKind.ADDED, sha256, now)
    relink_missing(session, user_id, sha256, entry_id, path)
    entry = LibraryEntry(id=entry_id, **values)
    index_entry(session, entry)
    return Stored(entry, ChangeKind.ADDED)


def _update_in_place(session: Session, entry: LibraryEntry, placement: Placement,
                     tags: Tags, now: int) -> Stored:
    """put_entry for content the library has: new tags, a new filename, never a new path."""
    asked = placement.path
    if asked is None and placement.replaces is not None and placement.replaces != entry.sha256:
        target = entry_by_hash(session, entry.user_id, placement.replaces)
        asked = target.path if target is not None else None
    duplicate_of_path = entry.path if asked is not None and asked != entry.path else ""
    path = entry.path
    if asked is None and placement.filename and placement.filename != entry.filename:
        # A legacy upload renames the song: it keeps its folder.
        path = free_path(session, entry.user_id,
                               paths.join(paths.dirname(entry.path), placement.filename),
                               entry.id)
    values = {"path": path, "filename": paths.basename(path), **asdict(tags)}
    if all(getattr(entry, key) == value for key, value in values.items()):
        return Stored(entry, None, duplicate_of_path)
    seq = next_seq(session, entry.user_id)
    for key, value in values.items():
        setattr(entry, key, value)
    entry.updated_at, entry.seq = now, seq
    record_change(session, entry.user_id, seq, ChangeKind.UPDATED, entry.sha256, now)
    session.flush()
    index_entry(session, entry)
    return Stored(entry, ChangeKind.UPDATED, duplicate_of_path)


def move_entry(session: Session, user_id: int, sha256: bytes, path: str,
               now: int) -> tuple[LibraryEntry | None, bool]:
    """Gives an entry a new path (one UPDATED change; none if it is there already).

    Returns the entry (None if the user has none with this hash) and whether it moved;
    FailedPrecondition if another entry holds the path. (Its search document stays: a
    path is not searched.)"""
    entry = entry_by_hash(session, user_id, sha256)
    if entry is None or entry.path == path:
        return entry, False
    check_path_free(session, user_id, path, entry.id,
                          hint="move or delete that song first, or choose another path")
    seq = next_seq(session, user_id)
    entry.path, entry.filename = path, paths.basename(path)
    entry.updated_at, entry.seq = now, seq
    record_change(session, user_id, seq, ChangeKind.UPDATED, sha256, now)
    session.flush()
    return entry, True


def entry_by_hash(session: Session, user_id: int, sha256: bytes
                  ) -> LibraryEntry | None:
    return session.scalar(select(LibraryEntry).where(
        LibraryEntry.user_id == user_id, LibraryEntry.sha256 == sha256))


def path_holder(session: Session, user_id: int, path: str) -> LibraryEntry | None:
    """The user's entry at ``path``, if any."""
    return session.scalar(select(LibraryEntry).where(
        LibraryEntry.user_id == user_id, LibraryEntry.path == path))


def check_path_free(session: Session, user_id: int, path: str,
                    except_id: int | None = None, *,
                    hint: str = PATH_TAKEN_HINT) -> None:
    """FailedPrecondition if an entry other than ``except_id`` holds ``path``."""
    holder = path_holder(session, user_id, path)
    if holder is not None and holder.id != except_id:
        raise path_taken(path, holder.sha256, hint)


def path_taken(path: str, holder: bytes, hint: str = PATH_TAKEN_HINT) -> FailedPrecondition:
    return FailedPrecondition(f"another song of your library ({holder.hex()}) is at "
                              f"{path!r}; {hint}")


def free_path(session: Session, user_id: int, wanted: str,
              except_id: int | None = None) -> str:
    """``wanted``, or the first of "name (2).ext", "name (3).ext"... no other entry holds."""
    choice = paths.numbered(wanted)
    holder = session.connection().execute(
        _PATH_HOLDER, {"user_id": user_id, "path": choice}).scalar()
    if holder is None or holder == except_id:
        return choice  # the usual case, in one cheap statement
    first = 2
    while True:
        candidates = [paths.numbered(wanted)] if first == 2 else []
        candidates += [paths.numbered(wanted, number) for number in range(first, first + 50)]
        taken = dict(session.execute(
            select(LibraryEntry.path, LibraryEntry.id).where(
                LibraryEntry.user_id == user_id, LibraryEntry.path.in_(candidates))).all())
        for candidate in candidates:
            if taken.get(candidate, except_id) == except_id:
                return candidate
        first += 50


def remove_entry(session: Session, user_id: int, sha256: bytes, now: int) -> bool:
    """Deletes a song from the library, leaving a tombstone; False if it was not there.

    Its playlist entries stay, "missing", with its last hash and path (see above); its
    search document goes with it (ON DELETE CASCADE; db/search_index.py)."""
    connection = session.connection()
    connection.execute(_KEEP_LAST_KNOWN, {"owner": user_id, "song": sha256})
    removed = session.execute(
        delete(LibraryEntry).where(LibraryEntry.user_id == user_id, LibraryEntry.sha256 == sha256)
        .returning(LibraryEntry.id)).first()
    if removed is None:
        return False
    seq = next_seq(session, user_id)
    record_change(session, user_id, seq, ChangeKind.DELETED, sha256, now)
    return True


# A song about to go: its playlist entries keep its hash and path as they are now (they
# held the ones of when it was added: a replace or a move since changed them).
_library = LibraryEntry.__table__
_places = PlaylistEntry.__table__
_KEEP_LAST_KNOWN = (
    update(_places)
    .where(_places.c.library_id == select(_library.c.id).where(
        _library.c.user_id == bindparam("owner"),
        _library.c.sha256 == bindparam("song")).scalar_subquery())
    .values(sha256=bindparam("song"),
            path=select(_library.c.path).where(_library.c.id == _places.c.library_id)
            .scalar_subquery()))
# The user's missing entries of a song back in the library.
_RELINK = (
    update(_places)
    .where(_places.c.library_id.is_(None), _places.c.sha256 == bindparam("song"),
           _places.c.playlist_id.in_(select(Playlist.__table__.c.id).where(
               Playlist.__table__.c.user_id == bindparam("owner"))))
    .values(library_id=bindparam("row"), path=bindparam("where")))


def relink_missing(session: Session, user_id: int, sha256: bytes, entry_id: int,
                   path: str) -> None:
    """Links the user's "missing" playlist entries of ``sha256`` to library row ``entry_id``
    (content uploaded again after a delete)."""
    session.connection().execute(_RELINK, {"owner": user_id, "song": sha256, "row": entry_id,
                                           "where": path})


def blob_is_referenced(session: Session, sha256: bytes) -> bool:
    """Whether any library entry still points at the blob."""
    return session.scalar(
        select(LibraryEntry.id).where(LibraryEntry.sha256 == sha256).limit(1)) is not None
