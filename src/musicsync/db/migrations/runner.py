"""Alembic run from code, on a connection already in a transaction: no alembic.ini, no env.py.

Importing this module imports Alembic and Mako: ``migrate`` does so only when an
upgrade is due. A new revision is made from the template here with::

    python -c 'from alembic import command; from musicsync.db.migrations.runner import \\
        config; command.revision(config(), "what it changes", rev_id="0002")'

then written by hand (autogenerate is a draft at best: read tests/test_migrations.py)
and ``HEAD_REVISION`` moved to it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection

from . import HEAD_REVISION, too_new

SCRIPTS = Path(__file__).parent


def config() -> Config:
    """Alembic's configuration: only where the scripts are."""
    settings = Config()
    settings.set_main_option("script_location", str(SCRIPTS))
    settings.set_main_option("path_separator", "os")
    return settings


def scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(config())


@contextmanager
def _environment(connection: Connection, destination: str,
                 steps: Callable[[ScriptDirectory, str | None], list]):
    """Alembic's environment on ``connection`` moving to ``destination`` by ``steps``."""
    script = scripts()
    environment = EnvironmentContext(config(), script, destination_rev=destination,
                                     fn=lambda found, _context: steps(script, found))
    with environment:
        # The caller's transaction holds every step: Alembic begins none of its own.
        environment.configure(connection=connection, transactional_ddl=True)
        yield script, environment


def upgrade(connection: Connection, *, stamp: str | None = None) -> None:
    """Upgrade to the head inside the connection's transaction, stamping ``stamp`` first.

    Raises SchemaTooNew when the database's revision is not one of ours."""
    with _environment(connection, "head",
                      lambda script, found: script._upgrade_revs("head", found)
                      ) as (script, environment):
        context = environment.get_context()
        if stamp is not None:
            context.stamp(script, stamp)
        found = context.get_current_revision()
        if found is not None:
            try:
                script.get_revision(found)
            except CommandError:
                raise too_new(repr(found), repr(HEAD_REVISION)) from None
        environment.run_migrations()


def downgrade(connection: Connection, revision: str) -> None:
    """Back to ``revision`` inside the connection's transaction (tests of an upgrade start
    from a database as an older musicsync left it)."""
    with _environment(connection, revision,
                      lambda script, found: script._downgrade_revs(revision, found)
                      ) as (_script, environment):
        environment.run_migrations()
