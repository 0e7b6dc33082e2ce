"""The full-text index of songs: what each dialect spells differently about search.

Every song has a ``search_documents`` row (models.SearchDocument) holding its words as
``fold`` makes them: lowercased, diacritics and punctuation gone, one space between words
("Björk – Jóga" is "bjork joga"). ``index_entry`` writes it with the library entry, in
the same transaction (library/entries.py calls it); deleting the entry deletes it
(ON DELETE CASCADE), so the index never disagrees with the library.

Over those rows each dialect keeps its own index:

- SQLite: ``search_fts``, an FTS5 table with external content (the documents), tokenizer
  ``unicode61 remove_diacritics 2`` and prefix indexes of 1 to 3 characters, kept in step
  by triggers on ``search_documents``. It is not a model: ``create_index`` makes it
  for a new database (migrations._create) and revision 0003 for an upgraded one.
- PostgreSQL: a GIN index over the weighted tsvector of the documents
  (SEARCH_VECTOR_SQL; title A, album B, artists C); queries are prefix tsqueries
  (``word:*``). Diacritics are folded here in Python, so no ``unaccent`` extension.

``matching(bind, words, scope)`` is the one question the domain asks: the library ids
whose document has every word as a word or the start of one, in the scope's columns.
Words reach it already folded (only letters and digits), so nothing a user types is ever
read as FTS5 or tsquery syntax.
"""

from __future__ import annotations

import enum
import unicodedata

from sqlalchemy import Connection, Select, select, text
from sqlalchemy.orm import Session

from .dialect import PerDialect, dialect_name
from .models import SearchDocument

# Letters NFKD does not take apart, spelled as people type them without the mark.
_PLAIN = str.maketrans({"ø": "o", "ł": "l", "đ": "d", "ð": "d", "ħ": "h", "ı": "i",
                        "æ": "ae", "œ": "oe", "þ": "th", "ŋ": "n"})

# PostgreSQL's full-text vector of a search document: title weighs A, album B, artists C
# (a query restricted to weights searches those columns alone). The GIN index is on this
# very expression, and queries repeat it to use the index.
SEARCH_VECTOR_SQL = ("(setweight(to_tsvector('simple'::regconfig, title), 'A') || "
                     "setweight(to_tsvector('simple'::regconfig, album), 'B') || "
                     "setweight(to_tsvector('simple'::regconfig, artist), 'C'))")
# Not a model's Index: its postgresql_using made SQLAlchemy import its PostgreSQL dialect
# on every start, SQLite's too (some 2 MiB of a server's memory).
GIN_INDEX = "ix_search_documents_words"
POSTGRES_DDL = (f"CREATE INDEX {GIN_INDEX} ON search_documents USING gin ({SEARCH_VECTOR_SQL})",)

# The FTS5 table and the triggers that keep it in step with search_documents.
FTS_TABLE = "search_fts"
SQLITE_DDL = (
    f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5(title, album, artist, "
    "content='search_documents', content_rowid='library_id', "
    "tokenize='unicode61 remove_diacritics 2', prefix='1 2 3')",
    "CREATE TRIGGER search_documents_inserted AFTER INSERT ON search_documents BEGIN "
    f"INSERT INTO {FTS_TABLE} (rowid, title, album, artist) "
    "VALUES (new.library_id, new.title, new.album, new.artist); END",
    "CREATE TRIGGER search_documents_deleted AFTER DELETE ON search_documents BEGIN "
    f"INSERT INTO {FTS_TABLE} ({FTS_TABLE}, rowid, title, album, artist) "
    "VALUES ('delete', old.library_id, old.title, old.album, old.artist); END",
    "CREATE TRIGGER search_documents_updated AFTER UPDATE ON search_documents BEGIN "
    f"INSERT INTO {FTS_TABLE} ({FTS_TABLE}, rowid, title, album, artist) "
    "VALUES ('delete', old.library_id, old.title, old.album, old.artist); "
    f"INSERT INTO {FTS_TABLE} (rowid, title, album, artist) "
    "VALUES (new.library_id, new.title, new.album, new.artist); END",
)
# FTS5's own tables beside search_fts: derived data, not rows to copy (db copy).
FTS_TABLES = frozenset({FTS_TABLE} | {f"{FTS_TABLE}_{suffix}" for suffix in
                                      ("data", "idx", "docsize", "config", "content")})


class Scope(enum.Enum):
    """Which columns a search looks in: FTS5 column names, tsquery weights."""

    SONGS = ("{title album artist}", "")
    ALBUMS = ("{album artist}", "BC")
    ARTISTS = ("{artist}", "C")


def fold(text_: str) -> str:
    """``text_`` as the index stores and compares it: lowercase words of letters and digits
    without diacritics, one space apart."""
    decomposed = unicodedata.normalize("NFKD", text_.casefold().translate(_PLAIN))
    kept = "".join(char if char.isalnum() else " " for char in decomposed
                   if not unicodedata.combining(char))
    return " ".join(kept.split())


def document_of(entry) -> dict:
    """A library entry's search document (its row's values)."""
    artists = entry.artist if entry.album_artist in ("", entry.artist) else (
        f"{entry.artist} {entry.album_artist}")
    return {"library_id": entry.id, "user_id": entry.user_id, "title": fold(entry.title),
            "album": fold(entry.album), "artist": fold(artists)}


def _upsert(insert):
    table = SearchDocument.__table__
    statement = insert(table)
    return statement.on_conflict_do_update(
        index_elements=[table.c.library_id],
        set_={name: statement.excluded[name] for name in ("title", "album", "artist")})


_UPSERT = PerDialect(_upsert)


def index_entry(session: Session, entry) -> None:
    """Writes the entry's search document (in the caller's transaction)."""
    connection = session.connection()
    connection.execute(_UPSERT.on(connection), document_of(entry))


def create_index(connection: Connection) -> None:
    """The full-text index (see above): the FTS5 table and its triggers, or the GIN index."""
    sqlite = dialect_name(connection) == "sqlite"
    for statement in SQLITE_DDL if sqlite else POSTGRES_DDL:
        connection.exec_driver_sql(statement)


def matching(bind, words: list[str], scope: Scope) -> Select:
    """A SELECT of the library ids (of every user: the caller narrows) whose document has
    every one of ``words`` (folded, non-empty) as a word or a word's start, in the scope's
    columns. Use it as ``column.in_(...)`` of a query that does not name search_documents
    unaliased (PostgreSQL's condition names its columns bare)."""
    columns, weights = scope.value
    if dialect_name(bind) == "sqlite":
        # Quoted, so that a word spelled like an operator (AND, NEAR) is a word.
        query = f"{columns} : (" + " AND ".join(f'"{word}"*' for word in words) + ")"
        ids = select(text("rowid")).select_from(text(FTS_TABLE)).where(
            text(f"{FTS_TABLE} MATCH :search_query").bindparams(search_query=query))
    else:
        query = " & ".join(f"{word}:*{weights}" for word in words)
        ids = select(SearchDocument.library_id).where(
            text(f"{SEARCH_VECTOR_SQL} @@ to_tsquery('simple'::regconfig, :search_query)")
            .bindparams(search_query=query))
    return ids
