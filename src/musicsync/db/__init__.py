"""SQLite metadata: the engine and its sessions, the models, the schema migrations."""

from .engine import Database, sqlalchemy_url

__all__ = ["Database", "sqlalchemy_url"]
