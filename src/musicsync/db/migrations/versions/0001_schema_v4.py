"""The schema of legacy version 4 (accounts, library, change feed, devices, uploads), on both
databases.

On SQLite this is the very schema legacy.py's four steps build (tests/test_migrations.py
compares them), so a database from before Alembic is stamped here after them.
PostgreSQL's INTEGER has 32 bits: ids, sizes, times and sequence numbers are BIGINT there
(SQLite's INTEGER already has 64, and its rowid key must be spelled INTEGER PRIMARY KEY).
Flags are BOOLEAN on PostgreSQL, 0 or 1 on SQLite as before.

Self-contained on purpose: a revision must not change when the models do.

Revision ID: 0001
Revises:
Create Date: 2026-11-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
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
    op.create_table(
        "users",
        sa.Column("id", BigInt, primary_key=True, autoincrement=True),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("username_key", sa.Text(), nullable=False, unique=True),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("disabled", Flag, nullable=False, server_default=sa.false()),
        sa.Column("tokens_valid_after", BigInt, nullable=False, server_default=NO),
        sa.Column("created_at", BigInt, nullable=False),
        sa.Column("last_seq", BigInt, nullable=False, server_default=NO),
        sa.Column("pruned_seq", BigInt, nullable=False, server_default=NO),
        sa.Column("quota_bytes", BigInt),
        # Ids of deleted accounts are never handed out again.
        sqlite_autoincrement=True,
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("id", BigInt, primary_key=True),
        _user_id(),
        sa.Column("family_id", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(), nullable=False, unique=True),
        sa.Column("issued_at", BigInt, nullable=False),
        sa.Column("expires_at", BigInt, nullable=False),
        sa.Column("rotated_at", BigInt),
        sa.Column("revoked_at", BigInt),
    )
    op.create_index("ix_refresh_tokens_family", "refresh_tokens", ["family_id", "revoked_at"])
    op.create_index("ix_refresh_tokens_user", "refresh_tokens", ["user_id"])
    op.create_table(
        "login_failures",
        sa.Column("username_key", sa.Text(), primary_key=True),
        sa.Column("address", sa.Text(), primary_key=True, server_default=EMPTY),
        sa.Column("failures", sa.Integer(), nullable=False, server_default=NO),
        sa.Column("failed_at", BigInt, nullable=False, server_default=NO),
        sa.Column("last_success", BigInt),
    )
    op.create_index("ix_login_failures_failed_at", "login_failures", ["failed_at"])
    op.create_table(
        "blobs",
        sa.Column("sha256", sa.LargeBinary(), primary_key=True),
        sa.Column("size", BigInt, nullable=False),
        sa.Column("created_at", BigInt, nullable=False),
        sa.Column("corrupt", Flag, nullable=False, server_default=sa.false()),
    )
    tag = sa.Integer()
    op.create_table(
        "library",
        sa.Column("id", BigInt, primary_key=True),
        _user_id(),
        sa.Column("sha256", sa.LargeBinary(), sa.ForeignKey("blobs.sha256"), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("size", BigInt, nullable=False),
        *(sa.Column(name, sa.Text(), nullable=False, server_default=EMPTY)
          for name in ("title", "artist", "album", "album_artist", "genre")),
        *(sa.Column(name, tag, nullable=False, server_default=NO)
          for name in ("track", "disc", "year", "duration_ms", "bitrate", "sample_rate",
                       "channels")),
        sa.Column("codec", sa.Text(), nullable=False, server_default=EMPTY),
        sa.Column("created_at", BigInt, nullable=False),
        sa.Column("updated_at", BigInt, nullable=False),
        sa.Column("seq", BigInt, nullable=False),
        sa.Column("path", sa.Text(), nullable=False, server_default=EMPTY),
        sa.UniqueConstraint("user_id", "sha256", name="uq_library_user_sha256"),
    )
    op.create_index("ix_library_sha256", "library", ["sha256"])
    op.create_index("uq_library_user_path", "library", ["user_id", "path"], unique=True)
    op.create_table(
        "changes",
        sa.Column("user_id", BigInt, sa.ForeignKey("users.id", ondelete="CASCADE"),
                  primary_key=True, autoincrement=False),
        sa.Column("seq", BigInt, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.LargeBinary(), nullable=False),
        sa.Column("at", BigInt, nullable=False),
        sa.Column("replaces", sa.LargeBinary()),
    )
    op.create_table(
        "devices",
        sa.Column("user_id", BigInt, sa.ForeignKey("users.id", ondelete="CASCADE"),
                  primary_key=True, autoincrement=False),
        sa.Column("device_id", sa.Text(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False, server_default=EMPTY),
        sa.Column("cursor", BigInt, nullable=False, server_default=NO),
        sa.Column("last_seen", BigInt, nullable=False),
    )
    op.create_table(
        "upload_sessions",
        sa.Column("id", sa.Text(), primary_key=True),
        _user_id(),
        sa.Column("sha256", sa.LargeBinary(), nullable=False),
        sa.Column("size", BigInt, nullable=False),
        sa.Column("committed", BigInt, nullable=False, server_default=NO),
        sa.Column("created_at", BigInt, nullable=False),
        sa.Column("expires_at", BigInt, nullable=False),
        sa.UniqueConstraint("user_id", "sha256", name="uq_upload_sessions_user_sha256"),
    )
    op.create_index("ix_upload_sessions_expires", "upload_sessions", ["expires_at"])


def downgrade() -> None:
    for table in ("upload_sessions", "devices", "changes", "library", "blobs",
                  "login_failures", "refresh_tokens", "users"):
        op.drop_table(table)
