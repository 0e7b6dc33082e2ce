"""A user's playlists: named, ordered lists of songs of their library, edited by operations.

- Entries refer to library rows (``library_id``): a replace (an upload with ``replaces``)
  and a Move keep the row's id, so a song keeps its places through them; a playlist
  shows the song's hash and path as they are now.
- A song deleted from the library leaves its entries in place as "missing" (the row's
  foreign key sets ``library_id`` to NULL; library/entries.remove_entry first stores the
  song's last hash and path in them). When the same content enters the library again
  (library/entries.put_entry), the user's missing entries with that hash are linked to
  it again. Neither changes a playlist's version: no position moves, so no edit in
  flight becomes stale, and devices hear of it from the song's own DELETED/ADDED event.
- Every change of a playlist (created, renamed, described, edited, deleted) takes the
  next version and records one change event (subject PLAYLIST) in the same transaction.
- A user's playlists are listed all at once (older clients) or page by page, by name
  then id, with keyset tokens (pages.py).
- Edits are operations (insert at, remove at, move) applied in order, atomically, to the
  version the device based them on: a playlist changed since answers Aborted naming the
  current version, nothing applied. The device fetches it, rebases its operations on
  the other device's and sends them again (README, "Playlists").

No grpc here (services/playlist_service.py decodes the wire).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..db import Database
from ..db.models import LibraryEntry, Playlist, PlaylistEntry
from ..errors import Aborted, AlreadyExists, InvalidArgument, NotFound, ResourceExhausted
from ..limits import (MAX_PLAYLIST_DESCRIPTION_CHARS, MAX_PLAYLIST_ENTRIES,
                      MAX_PLAYLIST_HASHES_PER_REQUEST, MAX_PLAYLIST_NAME_CHARS,
                      MAX_PLAYLIST_OPERATIONS, MAX_PLAYLISTS_PER_USER, check_chars)
from ..sync.changes import ChangeKind, Subject, next_seq, record_change
from ..sync.notifier import ChangeNotifier
from .pages import Page, decode_token, scoped

DEFAULT_PAGE = 500
MAX_PAGE = 1000


# -- operations, as services/ decodes them ---------------------------------------------

@dataclass(frozen=True)
class Insert:
    """Songs (raw SHA-256 each) inserted before ``position`` (the entry count appends)."""

    position: int
    hashes: tuple[bytes, ...]


@dataclass(frozen=True)
class Remove:
    """``count`` entries removed from ``position`` on."""

    position: int
    count: int


@dataclass(frozen=True)
class Move:
    """``count`` entries from ``from_position`` moved so that the first lands at
    ``to_position``, an index in the playlist without them."""

    from_position: int
    to_position: int
    count: int = 1


Operation = Insert | Remove | Move


@dataclass(frozen=True)
class Item:
    """What a place in a playlist holds: the library row (None: missing) and the song's
    hash and path as stored with the entry."""

    library_id: int | None
    sha256: bytes
    path: str


@dataclass(frozen=True)
class ShownEntry:
    """An entry as a device sees it: the song's hash and path now (the last known ones
    when missing)."""

    position: int
    sha256: bytes
    path: str
    missing: bool


# -- checks of what a device sends ------------------------------------------------------

def check_name(name: str) -> str:
    """The name without surrounding spaces; InvalidArgument if empty, too long or holding
    control characters."""
    name = check_chars(name, "name", MAX_PLAYLIST_NAME_CHARS).strip()
    if not name:
        raise InvalidArgument(f"a playlist needs a name (1 to {MAX_PLAYLIST_NAME_CHARS} "
                              f"characters)")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise InvalidArgument("a playlist's name may hold no control characters "
                              "(line breaks, tabs)")
    return name


def check_description(description: str) -> str:
    return check_chars(description, "description", MAX_PLAYLIST_DESCRIPTION_CHARS)


def check_hash_count(count: int) -> None:
    if count > MAX_PLAYLIST_HASHES_PER_REQUEST:
        raise InvalidArgument(
            f"a request may name at most {MAX_PLAYLIST_HASHES_PER_REQUEST} songs in all "
            f"(got {count}); add more with further edits")


def check_operation_count(count: int) -> None:
    if count == 0:
        raise InvalidArgument("an edit needs at least one operation")
    if count > MAX_PLAYLIST_OPERATIONS:
        raise InvalidArgument(f"an edit may hold at most {MAX_PLAYLIST_OPERATIONS} "
                              f"operations (got {count}); send them in several edits")


def page_bounds(offset: int, limit: int) -> tuple[int, int]:
    if offset < 0:
        raise InvalidArgument(f"offset must be 0 or more (got {offset})")
    if not 0 <= limit <= MAX_PAGE:
        raise InvalidArgument(f"limit must be between 0 and {MAX_PAGE} (0 means "
                              f"{DEFAULT_PAGE}); got {limit}")
    return offset, limit or DEFAULT_PAGE


# -- applying operations ----------------------------------------------------------------

def apply(items: list[Item], operations: Sequence[Operation],
          songs: dict[bytes, Item]) -> list[Item]:
    """The entries after ``operations``, in order; InvalidArgument naming the first
    operation whose positions do not fit the playlist as the ones before left it."""
    items = list(items)
    for number, operation in enumerate(operations, 1):
        size = len(items)
        if isinstance(operation, Insert):
            if not 0 <= operation.position <= size:
                raise _bad(number, "insert", f"position {operation.position} is outside "
                           f"0 to {size} (the entry count appends)", size)
            if not operation.hashes:
                raise _bad(number, "insert", "names no songs", size)
            items[operation.position:operation.position] = [songs[h] for h in operation.hashes]
        elif isinstance(operation, Remove):
            start, count = operation.position, operation.count
            if count < 1 or start < 0 or start + count > size:
                raise _bad(number, "remove", f"position {start} and count {count} do not "
                           f"fit (count 1 or more, position + count at most {size})", size)
            del items[start:start + count]
        else:
            start, count, to = operation.from_position, operation.count or 1, operation.to_position
            if count < 1 or start < 0 or start + count > size:
                raise _bad(number, "move", f"from_position {start} and count {count} do not "
                           f"fit (from_position + count at most {size})", size)
            moved = items[start:start + count]
            del items[start:start + count]
            if not 0 <= to <= len(items):
                raise _bad(number, "move", f"to_position {to} is outside 0 to {len(items)} "
                           f"(an index in the playlist without the moved entries)", size)
            items[to:to] = moved
    if len(items) > MAX_PLAYLIST_ENTRIES:
        raise ResourceExhausted(f"a playlist may hold at most {MAX_PLAYLIST_ENTRIES} entries; "
                                f"this edit would make {len(items)}")
    return items


def _bad(number: int, kind: str, what: str, size: int) -> InvalidArgument:
    return InvalidArgument(f"operation {number} ({kind}): {what}; the playlist has {size} "
                           f"entries at that point")


# -- the store ------------------------------------------------------------------------

class Playlists:
    """The playlists of every user, each call about one user's."""

    def __init__(self, db: Database, notifier: ChangeNotifier, clock) -> None:
        self._db = db
        self._notifier = notifier
        self._clock = clock

    def _now(self) -> int:
        return int(self._clock())

    async def _write(self, user_id: int, work) -> Playlist:
        """Runs ``work(session, seq)`` in a write transaction after taking the user's next
        change seq (``work`` records the change); wakes Watch streams after the commit."""
        try:
            async with self._db.write() as session:
                def run(sync_session: Session):
                    return work(sync_session)
                playlist, seq = await session.run_sync(run)
        except IntegrityError as exc:  # the unique name, raced past the check (replicas)
            raise AlreadyExists("you already have a playlist of that name") from exc
        await self._notifier.published(user_id, seq)
        return playlist

    async def create(self, user_id: int, name: str, description: str,
                     hashes: Sequence[bytes]) -> Playlist:
        name, description = check_name(name), check_description(description)
        check_hash_count(len(hashes))
        now = self._now()

        def work(session: Session):
            count = session.scalar(select(func.count()).select_from(Playlist)
                                   .where(Playlist.user_id == user_id))
            if count >= MAX_PLAYLISTS_PER_USER:
                raise ResourceExhausted(f"you may have at most {MAX_PLAYLISTS_PER_USER} "
                                        f"playlists; delete one first")
            _check_name_free(session, user_id, name)
            songs = _songs(session, user_id, hashes)
            playlist = Playlist(user_id=user_id, name=name, description=description,
                                version=1, entry_count=len(hashes), created_at=now,
                                updated_at=now)
            session.add(playlist)
            session.flush()
            _write_items(session, playlist.id, [], [songs[h] for h in hashes])
            seq = _record(session, user_id, playlist, ChangeKind.ADDED, now)
            return playlist, seq

        return await self._write(user_id, work)

    async def get(self, user_id: int, playlist_id: int, offset: int = 0,
                  limit: int = 0) -> tuple[Playlist, list[ShownEntry]]:
        """The playlist and the entries from ``offset`` on, at most ``limit`` (0: 500)."""
        offset, limit = page_bounds(offset, limit)

        def read(session: Session):
            playlist = _owned(session, user_id, playlist_id)
            rows = session.execute(
                select(PlaylistEntry.position, PlaylistEntry.sha256, PlaylistEntry.path,
                       LibraryEntry.sha256, LibraryEntry.path)
                .outerjoin(LibraryEntry, LibraryEntry.id == PlaylistEntry.library_id)
                .where(PlaylistEntry.playlist_id == playlist_id,
                       PlaylistEntry.position >= offset,
                       PlaylistEntry.position < offset + limit)
                .order_by(PlaylistEntry.position)).all()
            session.expunge(playlist)
            return playlist, [ShownEntry(position, now_sha or sha, now_path or path,
                                         now_sha is None)
                              for position, sha, path, now_sha, now_path in rows]

        return await self._db.quick_read(read)

    async def of_user(self, user_id: int) -> list[Playlist]:
        """The user's playlists, by name."""
        def read(session: Session):
            playlists = list(session.scalars(select(Playlist).where(Playlist.user_id == user_id)
                                             .order_by(Playlist.name, Playlist.id)))
            session.expunge_all()
            return playlists

        return await self._db.quick_read(read)

    async def page_of_user(self, user_id: int, size: int, token: str) -> Page:
        """A page of the user's playlists by name (then id), after ``token``'s position."""
        listing = scoped("playlists", user_id)
        after = decode_token(token, listing, "si")
        query = select(Playlist).where(Playlist.user_id == user_id)
        if after:
            query = query.where(tuple_(Playlist.name, Playlist.id) > tuple_(*after))

        def read(session: Session):
            playlists = list(session.scalars(query.order_by(Playlist.name, Playlist.id)
                                             .limit(size + 1)))
            session.expunge_all()
            return Page(playlists[:size], len(playlists) > size, listing,
                        lambda playlist: (playlist.name, playlist.id))

        return await self._db.quick_read(read)

    async def update(self, user_id: int, playlist_id: int, name: str | None,
                     description: str | None, base_version: int = 0) -> Playlist:
        """Renames and/or describes; ``base_version`` 0 means whatever the current one."""
        if name is not None:
            name = check_name(name)
        if description is not None:
            description = check_description(description)
        if name is None and description is None:
            raise InvalidArgument("nothing to update: give a name, a description or both")
        now = self._now()

        def work(session: Session):
            playlist = _owned(session, user_id, playlist_id)
            if base_version:
                _check_version(playlist, base_version)
            if name is not None and name != playlist.name:
                _check_name_free(session, user_id, name)
                playlist.name = name
            if description is not None:
                playlist.description = description
            return playlist, _record(session, user_id, playlist, ChangeKind.UPDATED, now)

        return await self._write(user_id, work)

    async def edit(self, user_id: int, playlist_id: int, base_version: int,
                   operations: Sequence[Operation]) -> Playlist:
        """Applies ``operations`` in order, all or none, to version ``base_version``."""
        check_operation_count(len(operations))
        hashes = [h for op in operations if isinstance(op, Insert) for h in op.hashes]
        check_hash_count(len(hashes))
        if base_version < 1:
            raise InvalidArgument("base_version is required: the version the positions of "
                                  "your operations refer to (GetPlaylist gives it)")
        now = self._now()

        def work(session: Session):
            playlist = _owned(session, user_id, playlist_id)
            _check_version(playlist, base_version)
            songs = _songs(session, user_id, hashes)
            before = _items(session, playlist_id)
            after = apply(before, operations, songs)
            _write_items(session, playlist_id, before, after)
            playlist.entry_count = len(after)
            return playlist, _record(session, user_id, playlist, ChangeKind.UPDATED, now)

        return await self._write(user_id, work)

    async def delete(self, user_id: int, playlist_id: int) -> None:
        now = self._now()

        def work(session: Session):
            playlist = _owned(session, user_id, playlist_id)
            seq = next_seq(session, user_id)
            session.execute(delete(PlaylistEntry)
                            .where(PlaylistEntry.playlist_id == playlist_id))
            session.execute(delete(Playlist).where(Playlist.id == playlist.id))
            record_change(session, user_id, seq, ChangeKind.DELETED, b"", now,
                          subject=Subject.PLAYLIST, subject_id=playlist_id)
            return None, seq

        await self._write(user_id, work)


# -- inside a transaction -------------------------------------------------------------

def _owned(session: Session, user_id: int, playlist_id: int) -> Playlist:
    """The user's playlist; NotFound for none, and for another user's alike."""
    if not 0 < playlist_id < 2 ** 63:  # past a BIGINT: no such id, never a database error
        raise NotFound(f"you have no playlist {playlist_id}")
    playlist = session.scalar(select(Playlist).where(Playlist.id == playlist_id,
                                                     Playlist.user_id == user_id))
    if playlist is None:
        raise NotFound(f"you have no playlist {playlist_id}")
    return playlist


def _check_version(playlist: Playlist, base_version: int) -> None:
    if playlist.version != base_version:
        raise Aborted(f"playlist {playlist.id} is at version {playlist.version}, not "
                      f"{base_version}: fetch it, reapply your edit, send again")


def _check_name_free(session: Session, user_id: int, name: str) -> None:
    holder = session.scalar(select(Playlist.id).where(Playlist.user_id == user_id,
                                                      Playlist.name == name))
    if holder is not None:
        raise AlreadyExists(f"you already have a playlist named {name!r} (id {holder}); "
                            f"choose another name")


def _songs(session: Session, user_id: int, hashes: Sequence[bytes]) -> dict[bytes, Item]:
    """The library rows of ``hashes``; NotFound naming those the library lacks."""
    wanted = set(hashes)
    if not wanted:
        return {}
    found = {sha: Item(entry_id, sha, path) for entry_id, sha, path in session.execute(
        select(LibraryEntry.id, LibraryEntry.sha256, LibraryEntry.path)
        .where(LibraryEntry.user_id == user_id, LibraryEntry.sha256.in_(wanted)))}
    unknown = [h.hex() for h in hashes if h not in found]
    if unknown:
        more = f" and {len(set(unknown)) - 1} more" if len(set(unknown)) > 1 else ""
        raise NotFound(f"song {unknown[0]} is not in your library{more}; upload it first")
    return found


def _items(session: Session, playlist_id: int) -> list[Item]:
    return [Item(*row) for row in session.execute(
        select(PlaylistEntry.library_id, PlaylistEntry.sha256, PlaylistEntry.path)
        .where(PlaylistEntry.playlist_id == playlist_id).order_by(PlaylistEntry.position))]


def _write_items(session: Session, playlist_id: int, before: list[Item],
                 after: list[Item]) -> None:
    """Rewrites the positions whose entry changed: from the first difference to the last
    (an append writes only the new rows; an insert at the front rewrites them all)."""
    longest = max(len(before), len(after))
    first = next((i for i in range(longest)
                  if i >= len(before) or i >= len(after) or before[i] != after[i]), longest)
    if first == longest:
        return
    end = longest
    while end > first and end <= min(len(before), len(after)) and before[end - 1] == after[end - 1]:
        end -= 1
    if first < len(before):
        session.execute(delete(PlaylistEntry).where(PlaylistEntry.playlist_id == playlist_id,
                                                    PlaylistEntry.position >= first,
                                                    PlaylistEntry.position < end))
    rows = [dict(playlist_id=playlist_id, position=position, library_id=item.library_id,
                 sha256=item.sha256, path=item.path)
            for position, item in enumerate(after[first:end], first)]
    if rows:
        session.execute(insert(PlaylistEntry.__table__), rows)


def _record(session: Session, user_id: int, playlist: Playlist, kind: ChangeKind,
            now: int) -> int:
    """Bumps the playlist's version and records its change; the seq taken."""
    seq = next_seq(session, user_id)
    if kind != ChangeKind.ADDED:
        playlist.version += 1
    playlist.updated_at = now
    session.flush()
    record_change(session, user_id, seq, kind, b"", now, subject=Subject.PLAYLIST,
                  subject_id=playlist.id)
    return seq
