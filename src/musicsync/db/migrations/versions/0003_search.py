"""Browsing, search and statistics: the search documents and their full-text index (FTS5
on SQLite, GIN on PostgreSQL), filled from the songs already in libraries; indexes for
albums, artists, genres, years, recently added and recently played.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BigInt = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
EMPTY = sa.text("''")
ALBUM_ARTIST = "(CASE WHEN album_artist = '' THEN artist ELSE album_artist END)"
VECTOR = ("(setweight(to_tsvector('simple'::regconfig, title), 'A') || "
          "setweight(to_tsvector('simple'::regconfig, album), 'B') || "
          "setweight(to_tsvector('simple'::regconfig, artist), 'C'))")
# As db/search_index.py made them at this revision (a revision does not change later).
FTS = (
    "CREATE VIRTUAL TABLE search_fts USING fts5(title, album, artist, "
    "content='search_documents', content_rowid='library_id', "
    "tokenize='unicode61 remove_diacritics 2', prefix='1 2 3')",
    "CREATE TRIGGER search_documents_inserted AFTER INSERT ON search_documents BEGIN "
    "INSERT INTO search_fts (rowid, title, album, artist) "
    "VALUES (new.library_id, new.title, new.album, new.artist); END",
    "CREATE TRIGGER search_documents_deleted AFTER DELETE ON search_documents BEGIN "
    "INSERT INTO search_fts (search_fts, rowid, title, album, artist) "
    "VALUES ('delete', old.library_id, old.title, old.album, old.artist); END",
    "CREATE TRIGGER search_documents_updated AFTER UPDATE ON search_documents BEGIN "
    "INSERT INTO search_fts (search_fts, rowid, title, album, artist) "
    "VALUES ('delete', old.library_id, old.title, old.album, old.artist); "
    "INSERT INTO search_fts (rowid, title, album, artist) "
    "VALUES (new.library_id, new.title, new.album, new.artist); END",
)
_PLAIN = str.maketrans({"ø": "o", "ł": "l", "đ": "d", "ð": "d", "ħ": "h", "ı": "i",
                        "æ": "ae", "œ": "oe", "þ": "th", "ŋ": "n"})
BATCH = 1000


def fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold().translate(_PLAIN))
    kept = "".join(char if char.isalnum() else " " for char in decomposed
                   if not unicodedata.combining(char))
    return " ".join(kept.split())


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "search_documents",
        sa.Column("library_id", BigInt, sa.ForeignKey("library.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("user_id", BigInt, nullable=False),
        sa.Column("title", sa.Text(), nullable=False, server_default=EMPTY),
        sa.Column("album", sa.Text(), nullable=False, server_default=EMPTY),
        sa.Column("artist", sa.Text(), nullable=False, server_default=EMPTY),
    )
    if sqlite:
        for statement in FTS:
            op.execute(statement)
    else:
        op.execute(f"CREATE INDEX ix_search_documents_words ON search_documents "
                   f"USING gin ({VECTOR})")
    op.execute(f"CREATE INDEX ix_library_album ON library (user_id, album, {ALBUM_ARTIST})")
    op.execute(f"CREATE INDEX ix_library_album_artist ON library "
               f"(user_id, {ALBUM_ARTIST}, album)")
    op.create_index("ix_library_genre", "library", ["user_id", "genre"])
    op.create_index("ix_library_year", "library", ["user_id", "year"])
    op.create_index("ix_library_created", "library", ["user_id", "created_at"])
    op.create_index("ix_song_stats_played", "song_stats", ["user_id", "last_played_ms"])
    _fill()


def _fill() -> None:
    """A search document for every song already in a library."""
    bind = op.get_bind()
    documents = sa.table("search_documents", sa.column("library_id"), sa.column("user_id"),
                         sa.column("title"), sa.column("album"), sa.column("artist"))
    rows = bind.execute(sa.text(
        "SELECT id, user_id, title, album, artist, album_artist FROM library ORDER BY id"))
    while batch := rows.fetchmany(BATCH):
        bind.execute(documents.insert(), [
            {"library_id": id_, "user_id": user_id, "title": fold(title), "album": fold(album),
             "artist": fold(artist if album_artist in ("", artist)
                            else f"{artist} {album_artist}")}
            for id_, user_id, title, album, artist, album_artist in batch])


def downgrade() -> None:
    for index in ("ix_library_album", "ix_library_album_artist", "ix_library_genre",
                  "ix_library_year", "ix_library_created"):
        op.drop_index(index, table_name="library")
    op.drop_index("ix_song_stats_played", table_name="song_stats")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE search_fts")
    op.drop_table("search_documents")
