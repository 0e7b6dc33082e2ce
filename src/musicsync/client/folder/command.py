"""`musicsync sync DIR`: the options, the sign-in, and the exit code.

Exit codes: 0 everything synced; 1 some files failed (listed on stderr), or the
server could not be reached; 2 usage or configuration: not signed in (or the
sign-in ended), the folder refused (its marker gone, another account's), a
mass deletion stopped.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

from ..commands import FAILED, OK, USAGE
from ..credentials import CredentialsStore, open_client
from ..errors import ClientError, NotSignedIn
from . import guard
from .index import FolderIndex, index_path
from .plan import MassDelete
from .report import Reporter
from .session import Account, PassOptions, sync_pass


def run(args) -> int:
    """Runs `musicsync sync` with parsed ``args``; the exit code."""
    if getattr(args, "forget", False):
        return forget(args.dir)
    return asyncio.run(main(args))


def options_of(args) -> PassOptions:
    return PassOptions(direction=args.direction, no_delete=args.no_delete,
                       max_delete=args.max_delete, force=args.force, dry_run=args.dry_run,
                       jobs=args.jobs, playlists=not getattr(args, "no_playlists", False))


async def main(args) -> int:
    reporter = Reporter(quiet=args.quiet, as_json=args.json)
    try:
        credentials = CredentialsStore().require()
        client = open_client()
    except NotSignedIn as exc:
        reporter.error(exc.message)
        return USAGE
    account = Account(credentials.server, credentials.username)
    options = options_of(args)
    async with client:
        if args.watch and not args.dry_run:
            from .watching import Watcher
            return await Watcher(client, args.dir, account, options, reporter).run()
        try:
            with reporter.session():
                summary = await sync_pass(client, args.dir, account, options, reporter)
        except (guard.FolderRefused, MassDelete) as exc:
            reporter.error(str(exc))
            return USAGE
        except NotSignedIn as exc:
            reporter.error(exc.message)
            return USAGE
        except ClientError as exc:
            reporter.error(f"{exc.message}; nothing more was changed (what was done is "
                           "kept, and the next run continues from there)")
            return FAILED
        except sqlite3.Error as exc:  # e.g. the disk holding the folder is full
            reporter.error(f"cannot write the folder's index in {args.dir}/.musicsync: "
                           f"{exc}; what was done is kept")
            return FAILED
    reporter.summary(summary)
    return FAILED if summary.failed else OK


def forget(directory: str) -> int:
    """`sync --forget DIR`: this computer forgets the folder's last sync, so the next run
    starts afresh (nothing deleted on either side, missing songs copied)."""
    root = Path(os.path.abspath(os.path.expanduser(directory)))
    try:
        remembered = guard.forget(root)
    except guard.FolderRefused as exc:
        Reporter.error(str(exc))
        return USAGE
    if index_path(root).is_file():
        with FolderIndex.open(root) as index:
            index.forget_sync()
        remembered = True
    if remembered:
        print(f"forgot the last sync of {root}; the next `musicsync sync {root}` starts "
              "afresh: it deletes nothing on either side and copies what is missing")
    else:
        print(f"{root} was not synced from this computer; nothing to forget")
    return OK
