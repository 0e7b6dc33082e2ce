"""A song's format as SQL: the end of its filename, from which stats.py reads the extension.

Grouping a library by its extensions computed in SQL cost SQLite most of a statistics
call (finding the last dot takes rtrim/replace tricks, per row); grouping by the last
``SUFFIX_CHARS`` characters is cheap, and the few suffixes without a dot (no extension,
or a longer one) are looked at whole. SQLite spells it ``substr(name, -n)``, PostgreSQL
``right(name, n)``.
"""

from __future__ import annotations

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import GenericFunction
from sqlalchemy.types import Text

SUFFIX_CHARS = 6


class filename_suffix(GenericFunction):  # noqa: N801 - named as SQL names functions
    """The last SUFFIX_CHARS characters of a filename column, lowercased."""

    type = Text()
    inherit_cache = True


@compiles(filename_suffix, "sqlite")
def _on_sqlite(element, compiler, **kw) -> str:
    return f"lower(substr({compiler.process(element.clauses, **kw)}, -{SUFFIX_CHARS}))"


@compiles(filename_suffix, "postgresql")
def _on_postgresql(element, compiler, **kw) -> str:
    return f"lower(right({compiler.process(element.clauses, **kw)}, {SUFFIX_CHARS}))"
