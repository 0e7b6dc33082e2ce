"""What players keep beyond files: playlists, song stats (favourites, ratings, play counts),
plays, cover art; change events about other subjects than songs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigInt = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Flag = sa.Boolean().with_variant(sa.Integer(), "sqlite")
NO = sa.text("0")
EMPTY = sa.text("''")


def _user_id() -> sa.Column:
    return sa.Column("user_id", BigInt, sa.ForeignKey("users.id", ondelete="CASCADE"),
                     nullable=False)


def upgrade() -> None:
    # SQLite adds columns to a filled table in place (no copy): nullable, or with a default.
    op.add_column("changes", sa.Column("subject", sa.Integer(), nullable=False,
                                       server_default=NO))
    op.add_column("changes", sa.Column("subject_id", BigInt, nullable=True))
    op.add_column("library", sa.Column("art_sha256", sa.LargeBinary(), nullable=True))
    op.create_table(
        "playlists",
        sa.Column("id", BigInt, primary_key=True),
        _user_id(),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False, server_default=EMPTY),
        sa.Column("version", BigInt, nullable=False, server_default=sa.text("1")),
        sa.Column("entry_count", sa.Integer(), nullable=False, server_default=NO),
        sa.Column("created_at", BigInt, nullable=False),
        sa.Column("updated_at", BigInt, nullable=False),
        sa.UniqueConstraint("user_id", "name", name="uq_playlists_user_name"),
    )
    op.create_table(
        "playlist_entries",
        sa.Column("playlist_id", BigInt, sa.ForeignKey("playlists.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("library_id", BigInt, sa.ForeignKey("library.id", ondelete="SET NULL"),
                  nullable=True),
        sa.Column("sha256", sa.LargeBinary(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
    )
    op.create_index("ix_playlist_entries_library", "playlist_entries",
                    ["library_id", "sha256"])
    op.create_table(
        "song_stats",
        sa.Column("library_id", BigInt, sa.ForeignKey("library.id", ondelete="CASCADE"),
                  primary_key=True),
        _user_id(),
        sa.Column("starred", Flag, nullable=False, server_default=sa.false()),
        sa.Column("rating", sa.Integer(), nullable=False, server_default=NO),
        sa.Column("rated_at_ms", BigInt, nullable=False, server_default=NO),
        sa.Column("play_count", BigInt, nullable=False, server_default=NO),
        sa.Column("skip_count", BigInt, nullable=False, server_default=NO),
        sa.Column("last_played_ms", BigInt, nullable=False, server_default=NO),
    )
    op.create_index("ix_song_stats_user", "song_stats", ["user_id"])
    op.create_table(
        "plays",
        sa.Column("user_id", BigInt, sa.ForeignKey("users.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("play_id", sa.Text(), primary_key=True),
        sa.Column("library_id", BigInt, sa.ForeignKey("library.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("started_at_ms", BigInt, nullable=False),
        sa.Column("seconds_played", sa.Integer(), nullable=False, server_default=NO),
        sa.Column("completed", Flag, nullable=False, server_default=sa.false()),
        sa.Column("skipped", Flag, nullable=False, server_default=sa.false()),
        sa.Column("received_at", BigInt, nullable=False),
    )
    op.create_index("ix_plays_library", "plays", ["library_id", "started_at_ms"])
    op.create_table(
        "art_images",
        sa.Column("sha256", sa.LargeBinary(), primary_key=True),
        sa.Column("mime_type", sa.Text(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("size", BigInt, nullable=False),
        sa.Column("created_at", BigInt, nullable=False),
    )
    op.create_table(
        "art_resized",
        sa.Column("art_sha256", sa.LargeBinary(),
                  sa.ForeignKey("art_images.sha256", ondelete="CASCADE"), primary_key=True),
        sa.Column("size", sa.Integer(), primary_key=True),
        sa.Column("sha256", sa.LargeBinary(), nullable=False),
        sa.Column("mime_type", sa.Text(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("bytes", BigInt, nullable=False),
    )


def downgrade() -> None:
    for table in ("art_resized", "art_images", "plays", "song_stats", "playlist_entries",
                  "playlists"):
        op.drop_table(table)
    op.drop_column("library", "art_sha256")
    op.drop_column("changes", "subject_id")
    op.drop_column("changes", "subject")
