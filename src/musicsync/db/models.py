"""ORM models of the metadata database.

The schema itself is created and upgraded by ``migrations``; these classes
describe it for queries, and a test checks that both agree, on SQLite and PostgreSQL.

Hashes are stored as 32 raw bytes (half the size of hex, and what Diff
compares); times are Unix seconds. Ids, sizes, times and sequence numbers are
``BigInt``: PostgreSQL's INTEGER has 32 bits (SQLite's has 64, and its rowid key
must be spelled INTEGER). Flags are ``Flag``: BOOLEAN on PostgreSQL, 0 or 1 in an
INTEGER on SQLite as before; the domain writes True and False and reads truthiness.
"""

from __future__ import annotations

from sqlalchemy import (BigInteger, Boolean, ForeignKey, Index, Integer, LargeBinary, Text,
                        UniqueConstraint, false, text)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

BigInt = BigInteger().with_variant(Integer(), "sqlite")
Flag = Boolean().with_variant(Integer(), "sqlite")
# Defaults in the schema too, not only in the ORM: an empty database is created from
# these classes (migrations/__init__.py), and plain INSERTs rely on them.
NO = text("0")
EMPTY = text("''")
# Whom an album belongs to: its album artist, or its artist when that tag is empty
# (players/browse.py). Spelled as SQL, the same in the indexes below and in the queries
# that use them: SQLite matches an index's expression only to the very same expression.
ALBUM_ARTIST_SQL = "(CASE WHEN album_artist = '' THEN artist ELSE album_artist END)"

class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    # Ids of deleted accounts are never handed out again.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(Text, nullable=False)
    # NFC-normalised and case-folded: what uniqueness and sign-in compare.
    username_key: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    password_hash: Mapped[str] = mapped_column(Text, nullable=False)
    disabled: Mapped[bool] = mapped_column(Flag, nullable=False, default=False,
                                           server_default=false())
    # Access tokens issued before this second are refused (password changes).
    tokens_valid_after: Mapped[int] = mapped_column(BigInt, nullable=False, default=0,
                                                    server_default=NO)
    created_at: Mapped[int] = mapped_column(BigInt, nullable=False)
    # Per-user change sequence: the seq of the newest change event.
    last_seq: Mapped[int] = mapped_column(BigInt, nullable=False, default=0, server_default=NO)
    # Change events up to this seq were pruned; older cursors are expired.
    pruned_seq: Mapped[int] = mapped_column(BigInt, nullable=False, default=0, server_default=NO)
    # Bytes this user may store; NULL falls back to the server-wide quota.
    quota_bytes: Mapped[int | None] = mapped_column(BigInt, nullable=True)


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"
    __table_args__ = (
        # Also answers "is this sign-in revoked?" for every authenticated call.
        Index("ix_refresh_tokens_family", "family_id", "revoked_at"),
        Index("ix_refresh_tokens_user", "user_id"),
    )

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInt, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    # All tokens descending from one sign-in share a family.
    family_id: Mapped[str] = mapped_column(Text, nullable=False)
    # SHA-256 of the token; the token itself is never stored.
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, unique=True)
    issued_at: Mapped[int] = mapped_column(BigInt, nullable=False)
    expires_at: Mapped[int] = mapped_column(BigInt, nullable=False)
    # Set when the token was exchanged by Refresh; using it again is theft.
    rotated_at: Mapped[int | None] = mapped_column(BigInt, nullable=True)
    revoked_at: Mapped[int | None] = mapped_column(BigInt, nullable=True)


class LoginFailure(Base):
    """Failed sign-ins of one account from one client address (auth/throttle.py)."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_failed_at", "failed_at"),)

    # SHA-256 (hex) of the normalized username: 64 characters whatever was sent.
    username_key: Mapped[str] = mapped_column(Text, primary_key=True)
    # The client's IPv4 address or IPv6 /64 (at most 64 characters).
    address: Mapped[str] = mapped_column(Text, primary_key=True, default="", server_default=EMPTY)
    # Failures in a row from this address (a success or a quiet day starts over).
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default=NO)
    failed_at: Mapped[int] = mapped_column(BigInt, nullable=False, default=0, server_default=NO)
    # The last successful sign-in from this address: it is exempt from the account ceiling.
    last_success: Mapped[int | None] = mapped_column(BigInt, nullable=True)


class Blob(Base):
    """One stored content, shared by every library entry with its hash."""

    __tablename__ = "blobs"

    sha256: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    size: Mapped[int] = mapped_column(BigInt, nullable=False)
    created_at: Mapped[int] = mapped_column(BigInt, nullable=False)
    # Set by `musicsync fsck --repair` when the content no longer matches.
    corrupt: Mapped[bool] = mapped_column(Flag, nullable=False, default=False,
                                          server_default=false())


class LibraryEntry(Base):
    """A song in one user's library."""

    __tablename__ = "library"
    __table_args__ = (
        UniqueConstraint("user_id", "sha256", name="uq_library_user_sha256"),
        Index("ix_library_sha256", "sha256"),
        Index("uq_library_user_path", "user_id", "path", unique=True),
        # Browsing (revision 0003): albums by name and by artist, read page by page in
        # index order; genres and years counted from the index alone; recently added.
        Index("ix_library_album", "user_id", "album", text(ALBUM_ARTIST_SQL)),
        Index("ix_library_album_artist", "user_id", text(ALBUM_ARTIST_SQL), "album"),
        Index("ix_library_genre", "user_id", "genre"),
        Index("ix_library_year", "user_id", "year"),
        Index("ix_library_created", "user_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInt, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    sha256: Mapped[bytes] = mapped_column(
        LargeBinary, ForeignKey("blobs.sha256"), nullable=False)
    # The last segment of ``path``.
    filename: Mapped[str] = mapped_column(Text, nullable=False)
    # Where the song sits in the user's folder tree ("Artist/Album/01 Song.flac"; the
    # rules are in paths.py); unique within a library.
    # (Its schema default is SQLite's price for adding the column to a filled table.)
    path: Mapped[str] = mapped_column(Text, nullable=False, server_default=EMPTY)
    size: Mapped[int] = mapped_column(BigInt, nullable=False)
    title: Mapped[str] = mapped_column(Text, nullable=False, default="", server_default=EMPTY)
    artist: Mapped[str] = mapped_column(Text, nullable=False, default="", server_default=EMPTY)
    album: Mapped[str] = mapped_column(Text, nullable=False, default="", server_default=EMPTY)
    album_artist: Mapped[str] = mapped_column(Text, nullable=False, default="",
                                              server_default=EMPTY)
    genre: Mapped[str] = mapped_column(Text, nullable=False, default="", server_default=EMPTY)
    track: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default=NO)
    disc: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default=NO)
    year: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default=NO)
    duration_ms: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default=NO)
    bitrate: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default=NO)
    sample_rate: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default=NO)
    channels: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default=NO)
    codec: Mapped[str] = mapped_column(Text, nullable=False, default="", server_default=EMPTY)
    created_at: Mapped[int] = mapped_column(BigInt, nullable=False)
    updated_at: Mapped[int] = mapped_column(BigInt, nullable=False)
    # seq of the change event that last touched this entry.
    seq: Mapped[int] = mapped_column(BigInt, nullable=False)
    # SHA-256 of the song's embedded cover picture (art_images), if it has one.
    art_sha256: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class Change(Base):
    """One event of a user's change feed; deleted events are the tombstones."""

    __tablename__ = "changes"

    user_id: Mapped[int] = mapped_column(
        BigInt, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInt, primary_key=True)
    # 1 added, 2 updated, 3 deleted (the values of sync.ChangeKind).
    kind: Mapped[int] = mapped_column(Integer, nullable=False)
    sha256: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    at: Mapped[int] = mapped_column(BigInt, nullable=False)
    # On an added event: the hash of the entry this song replaced (gone with it).
    replaces: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # What the event is about (sync/changes.Subject): 0 a song (sha256 names it), 1 a
    # playlist (subject_id; sha256 empty), 2 a song's stats (sha256 names the song).
    subject: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default=NO)
    subject_id: Mapped[int | None] = mapped_column(BigInt, nullable=True)


class Device(Base):
    """A device that syncs, with the cursor it has acknowledged."""

    __tablename__ = "devices"

    user_id: Mapped[int] = mapped_column(
        BigInt, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    device_id: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False, default="", server_default=EMPTY)
    cursor: Mapped[int] = mapped_column(BigInt, nullable=False, default=0, server_default=NO)
    last_seen: Mapped[int] = mapped_column(BigInt, nullable=False)


class UploadSession(Base):
    """A resumable upload: partial data kept in the blob store under ``id``."""

    __tablename__ = "upload_sessions"
    __table_args__ = (
        UniqueConstraint("user_id", "sha256", name="uq_upload_sessions_user_sha256"),
        Index("ix_upload_sessions_expires", "expires_at"),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInt, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    sha256: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    size: Mapped[int] = mapped_column(BigInt, nullable=False)
    # Bytes durably stored so far: where the next Upload stream continues.
    committed: Mapped[int] = mapped_column(BigInt, nullable=False, default=0, server_default=NO)
    created_at: Mapped[int] = mapped_column(BigInt, nullable=False)
    expires_at: Mapped[int] = mapped_column(BigInt, nullable=False)


class Playlist(Base):
    """A user's playlist; its entries are PlaylistEntry rows."""

    __tablename__ = "playlists"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_playlists_user_name"),)

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInt, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="",
                                             server_default=EMPTY)
    # One more with every change: what an edit's base version is compared with.
    version: Mapped[int] = mapped_column(BigInt, nullable=False, default=1,
                                         server_default=text("1"))
    entry_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default=NO)
    created_at: Mapped[int] = mapped_column(BigInt, nullable=False)
    updated_at: Mapped[int] = mapped_column(BigInt, nullable=False)


class PlaylistEntry(Base):
    """A place in a playlist: the library entry it holds (None once the song is deleted:
    "missing"), with the song's last hash and path to show and to find it again."""

    __tablename__ = "playlist_entries"
    # By library row (a song deleted), and missing entries (NULL) by hash (a song back).
    __table_args__ = (Index("ix_playlist_entries_library", "library_id", "sha256"),)

    playlist_id: Mapped[int] = mapped_column(
        BigInt, ForeignKey("playlists.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    library_id: Mapped[int | None] = mapped_column(
        BigInt, ForeignKey("library.id", ondelete="SET NULL"), nullable=True)
    sha256: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    path: Mapped[str] = mapped_column(Text, nullable=False)


class SongStats(Base):
    """A song's favourite, rating and play counts (kept through replaces and moves: the
    library entry keeps its id)."""

    __tablename__ = "song_stats"
    __table_args__ = (Index("ix_song_stats_user", "user_id"),
                      # Recently played (statistics; revision 0003).
                      Index("ix_song_stats_played", "user_id", "last_played_ms"))

    library_id: Mapped[int] = mapped_column(
        BigInt, ForeignKey("library.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInt, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    starred: Mapped[bool] = mapped_column(Flag, nullable=False, default=False,
                                          server_default=false())
    rating: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default=NO)
    # Device clock, Unix milliseconds: the latest star or rating wins.
    rated_at_ms: Mapped[int] = mapped_column(BigInt, nullable=False, default=0, server_default=NO)
    play_count: Mapped[int] = mapped_column(BigInt, nullable=False, default=0, server_default=NO)
    skip_count: Mapped[int] = mapped_column(BigInt, nullable=False, default=0, server_default=NO)
    last_played_ms: Mapped[int] = mapped_column(BigInt, nullable=False, default=0,
                                                server_default=NO)


class PlayRecord(Base):
    """One play a device recorded; its id (made by the device) makes a resend count once."""

    __tablename__ = "plays"
    __table_args__ = (Index("ix_plays_library", "library_id", "started_at_ms"),)

    user_id: Mapped[int] = mapped_column(
        BigInt, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    play_id: Mapped[str] = mapped_column(Text, primary_key=True)
    library_id: Mapped[int] = mapped_column(
        BigInt, ForeignKey("library.id", ondelete="CASCADE"), nullable=False)
    started_at_ms: Mapped[int] = mapped_column(BigInt, nullable=False)
    seconds_played: Mapped[int] = mapped_column(Integer, nullable=False, default=0,
                                                server_default=NO)
    completed: Mapped[bool] = mapped_column(Flag, nullable=False, default=False,
                                            server_default=false())
    skipped: Mapped[bool] = mapped_column(Flag, nullable=False, default=False,
                                          server_default=false())
    received_at: Mapped[int] = mapped_column(BigInt, nullable=False)


class ArtImage(Base):
    """A cover picture, stored once by the SHA-256 of its bytes (songs of an album share it)."""

    __tablename__ = "art_images"

    sha256: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    mime_type: Mapped[str] = mapped_column(Text, nullable=False)
    width: Mapped[int] = mapped_column(Integer, nullable=False)
    height: Mapped[int] = mapped_column(Integer, nullable=False)
    size: Mapped[int] = mapped_column(BigInt, nullable=False)
    created_at: Mapped[int] = mapped_column(BigInt, nullable=False)


class ArtResized(Base):
    """A resized copy of a cover picture, kept for the next request of that size."""

    __tablename__ = "art_resized"

    art_sha256: Mapped[bytes] = mapped_column(
        LargeBinary, ForeignKey("art_images.sha256", ondelete="CASCADE"), primary_key=True)
    size: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    mime_type: Mapped[str] = mapped_column(Text, nullable=False)
    width: Mapped[int] = mapped_column(Integer, nullable=False)
    height: Mapped[int] = mapped_column(Integer, nullable=False)
    bytes: Mapped[int] = mapped_column(BigInt, nullable=False)



class SearchDocument(Base):
    """A song's words as search compares them (db/search_index.py): lowercased, diacritics
    and punctuation gone, one space between words. Written with the library entry, in its
    transaction; gone with it (ON DELETE CASCADE). The full-text index over it is SQLite's
    FTS5 table ``search_fts`` (kept by triggers) or PostgreSQL's GIN index: neither is in
    the models (search_index.create_index makes them)."""

    __tablename__ = "search_documents"

    library_id: Mapped[int] = mapped_column(
        BigInt, ForeignKey("library.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInt, nullable=False)
    title: Mapped[str] = mapped_column(Text, nullable=False, default="", server_default=EMPTY)
    album: Mapped[str] = mapped_column(Text, nullable=False, default="", server_default=EMPTY)
    # The artist and the album artist.
    artist: Mapped[str] = mapped_column(Text, nullable=False, default="", server_default=EMPTY)
