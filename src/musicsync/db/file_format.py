"""A song's format as SQL: the extension of its filename, lowercased ("" without one).

SQLite has no function that finds the last dot: ``rtrim(name, <name without dots>)``
strips every character but dots from the end, leaving the name up to its last dot, and
replacing that prefix with nothing leaves the extension. PostgreSQL asks a regular
expression.
"""

from __future__ import annotations

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import GenericFunction
from sqlalchemy.types import Text


class file_extension(GenericFunction):  # noqa: N801 - named as SQL names functions
    """The lowercased extension of a filename column ("" when it has no dot)."""

    type = Text()
    inherit_cache = True


@compiles(file_extension, "sqlite")
def _on_sqlite(element, compiler, **kw) -> str:
    name = compiler.process(element.clauses, **kw)
    return (f"(CASE WHEN instr({name}, '.') > 0 THEN "
            f"lower(replace({name}, rtrim({name}, replace({name}, '.', '')), '')) ELSE '' END)")


@compiles(file_extension, "postgresql")
def _on_postgresql(element, compiler, **kw) -> str:
    name = compiler.process(element.clauses, **kw)
    return f"lower(coalesce(substring({name} from '\\.([^.]*)$'), ''))"
