"""What SQLite and PostgreSQL spell differently, for the statements of the domain.

The domain builds its statements with these and never names a dialect:
- an upsert is INSERT ... ON CONFLICT on both, but SQLAlchemy gives each dialect
  its own construct: ``insert_for(bind)`` hands out the right one, and
  ``PerDialect`` keeps a prebuilt statement once per dialect (hot paths build
  their statements once; see library/entries.py);
- the larger of two values is ``max(a, b)`` on SQLite and ``GREATEST(a, b)`` on
  PostgreSQL: ``greatest(a, b)``;
- an upsert of many rows at once: ``UpsertMany``, one statement over arrays on
  PostgreSQL (its statement triggers then run once), executemany on SQLite.

PostgreSQL's constructs are imported only when a PostgreSQL database is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import ReturnTypeFromArgs


def dialect_name(bind: Any) -> str:
    """"sqlite" or "postgresql", for an engine, connection or (async) session."""
    dialect = getattr(bind, "dialect", None)
    if dialect is None:
        dialect = bind.get_bind().dialect
    return dialect.name


def insert_for(bind: Any) -> Callable:
    """The dialect's ``insert()``, whose statements have on_conflict_do_update/nothing."""
    return importlib.import_module(f"sqlalchemy.dialects.{dialect_name(bind)}").insert


class PerDialect:
    """A statement built once per dialect by ``build(insert)`` (insert: see insert_for)."""

    def __init__(self, build: Callable[[Callable], Any]) -> None:
        self._build = build
        self._built: dict[str, Any] = {}

    def on(self, bind: Any) -> Any:
        name = dialect_name(bind)
        statement = self._built.get(name)
        if statement is None:
            statement = self._built[name] = self._build(insert_for(bind))
        return statement


class UpsertMany:
    """INSERT ... ON CONFLICT of many rows (of distinct keys), built once per dialect.

    ``build(statement)`` adds the ON CONFLICT clause to the dialect's INSERT of the
    table's ``columns``. On PostgreSQL the rows go as one array per column through
    ``unnest``, so a batch is one statement: statement triggers (db/summaries.py) run
    once, not once a row, and nothing is compiled per batch (a VALUES list of 1,000 rows
    took 100-160 ms to compile). SQLite runs the statement for each row (executemany)."""

    def __init__(self, table: Any, columns: Sequence[str],
                 build: Callable[[Any], Any]) -> None:
        self._table, self._columns, self._build = table, tuple(columns), build
        self._built: dict[str, Any] = {}

    def _statement(self, connection: Any) -> Any:
        name = dialect_name(connection)
        built = self._built.get(name)
        if built is None:
            statement = insert_for(connection)(self._table)
            if name == "postgresql":
                from sqlalchemy import bindparam, func, select
                from sqlalchemy.dialects.postgresql import ARRAY

                statement = statement.from_select(self._columns, select(*(
                    func.unnest(bindparam(column, type_=ARRAY(self._table.c[column].type)))
                    for column in self._columns)))
            built = self._built[name] = self._build(statement)
        return built

    def execute(self, connection: Any, rows: list[dict]) -> None:
        if not rows:
            return
        statement = self._statement(connection)
        if dialect_name(connection) == "sqlite":
            connection.execute(statement, rows)
        else:
            connection.execute(statement, {column: [row[column] for row in rows]
                                           for column in self._columns})


class greatest(ReturnTypeFromArgs):  # noqa: N801 - named as SQL names it
    """The larger of its arguments (``func.max`` of two values is SQLite's alone)."""

    inherit_cache = True


@compiles(greatest, "sqlite")
def _greatest_on_sqlite(element, compiler, **kw) -> str:
    return f"max({compiler.process(element.clauses, **kw)})"
