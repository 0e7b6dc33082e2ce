"""Alembic revisions, one file each, applied in order (see the package's docstring)."""
