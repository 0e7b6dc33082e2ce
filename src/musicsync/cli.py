"""The `musicsync` command: argument parsing only; the work happens elsewhere."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import os
import signal
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from . import __version__
from .client.commands import add_client_commands
from .client.commands import run as run_client_command
from .config import OPTIONS, SERVICES, Settings, parse_duration, parse_port
from .errors import ConfigError, MusicsyncError

# The database layer (SQLAlchemy) is imported by the commands that use it, so
# that `musicsync health`, run by container health checks every few seconds,
# starts in a quarter of the time and memory.

log = logging.getLogger("musicsync")

SERVE_EPILOG = """\
Every option can also be set by the environment variable shown in brackets;
a flag wins over the environment. Pass secrets in the environment or in files
(SECRET_KEY_FILE, SECURITY_KEY_FILE, S3_ACCESS_KEY_FILE, S3_SECRET_KEY_FILE),
not as flags: other users of the machine see flags in `ps`. Without SECRET_KEY
and SECURITY_KEY the server generates both once and keeps them in DATA_DIR
with mode 0600; the registration key is printed in the log of the start that
generates it.

Without a SERVICE, all services run in one process, and each of the three
ports serves all of them. With one, only that service runs, on PORT (or its
default port): for a container or process per service sharing one DATA_DIR
or DATABASE_URL.
"""

USER_EPILOGS = {
    "delete": "The user's songs that no other library holds are removed from the blob "
              "store at once, so `delete` takes the same storage options as `serve` and "
              "`gc` (--data-dir, S3_*). If the storage cannot be reached, the user is "
              "deleted all the same, the command says how many songs are left in the "
              "store, and exits 1: run `musicsync gc` once the storage answers again. It "
              "also exits 1, touching nothing there, when the storage it was given does "
              "not hold the songs (e.g. a local folder where the server uses S3).",
}


def _add_options(parser: argparse.ArgumentParser, fields: set[str] | None = None) -> None:
    for option in OPTIONS:
        if fields is not None and option.field not in fields:
            continue
        flag = "--" + option.field.replace("_", "-")
        parser.add_argument(flag, dest=option.field, type=option.parse, metavar=option.metavar,
                            help=f"{option.help} [{option.env}]")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="musicsync", description="Self-hosted music library sync over gRPC.")
    parser.add_argument("--version", action="version", version=f"musicsync {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="run the gRPC server", description="Run the musicsync gRPC server.",
        epilog=SERVE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("service", nargs="?", choices=SERVICES,
                       help="run only this service (default: all, in one process)")
    _add_options(serve)
    serve.set_defaults(func=_serve)

    user = commands.add_parser(
        "user", help="manage accounts",
        description="Manage accounts in the server's database; works while the server runs. "
                    "The database must exist (the server creates it at its first start): "
                    "pass the server's --data-dir or DATABASE_URL. To create accounts before "
                    "the first start, use `user add --create`.")
    user_commands = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    db_fields = {"data_dir", "database_url", "argon2_time_cost", "argon2_memory_kib",
                 "argon2_parallelism", "log_level"}
    store_fields = {"data_dir", "database_url", "s3_endpoint", "s3_access_key", "s3_secret_key",
                    "s3_bucket", "s3_use_ssl", "storage_timeout", "log_level",
                    "s3_access_key_file", "s3_secret_key_file"}
    for name, help_text, func in (
        ("add", "create an account", _user_add),
        ("list", "list accounts", _user_list),
        ("passwd", "set a new password (signs the user out everywhere)", _user_passwd),
        ("disable", "block an account and sign it out everywhere", _user_disable),
        ("enable", "unblock an account", _user_enable),
        ("unlock", "forget an account's failed sign-ins, so throttling stops at once",
         _user_unlock),
        ("delete", "delete an account with its library", _user_delete),
    ):
        sub = user_commands.add_parser(name, help=help_text, description=help_text.capitalize(),
                                       epilog=USER_EPILOGS.get(name))
        if name != "list":
            sub.add_argument("username")
        if name in ("add", "passwd"):
            sub.add_argument("--password-stdin", action="store_true",
                             help="read the password from the first line of standard input")
        if name == "add":
            sub.add_argument("--create", action="store_true",
                             help="create the database if there is none yet (before the "
                                  "server's first start)")
        if name == "delete":
            sub.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        _add_options(sub, db_fields | (store_fields if name == "delete" else set()))
        sub.set_defaults(func=func)

    backup = commands.add_parser(
        "backup", help="write a consistent copy of the database (works while the server runs)",
        description="Write a consistent copy of the SQLite database to FILE while the server "
                    "runs. The copy appears complete or not at all; it holds password "
                    "hashes, so it is readable by its owner only. To restore, stop the "
                    "server and put the copy in place of the database file. Blobs are not "
                    "included: back up DATA_DIR/blobs (or the S3 bucket) as well.")
    backup.add_argument("file", type=Path, metavar="FILE", help="where to write the copy")
    backup.add_argument("--force", action="store_true", help="replace FILE if it exists")
    _add_options(backup, {"data_dir", "database_url", "log_level"})
    backup.set_defaults(func=_backup)

    db = commands.add_parser(
        "db", help="move the database between SQLite and PostgreSQL",
        description="Operations on the metadata database as a whole.")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_copy = db_commands.add_parser(
        "copy", help="copy every row of one database into an empty one, verified",
        description="Copy the metadata of SOURCE into TARGET, each an SQLite file path, "
                    "an sqlite:// URL or a postgresql:// URL: users and password hashes, "
                    "refresh tokens, sign-in failures, libraries, the change feed, devices "
                    "and their cursors, upload sessions, with their ids. Stop the server "
                    "first: the copy reads SOURCE as of one moment (it is opened read-only "
                    "and left as it was), and what a server writes after that moment is "
                    "not copied. SOURCE must have this musicsync's schema. TARGET is "
                    "brought to the latest schema and must hold no rows; the copy is one "
                    "transaction, verified (row count and SHA-256 of each table) before "
                    "it commits, so TARGET ends empty or complete. Songs are not in the "
                    "database: the server's blob store (DATA_DIR/blobs or S3) stays as "
                    "it is.",
        epilog="Exit 0 copied and verified, 1 refused or failed (nothing written), 2 a "
               "usage error. Then point DATABASE_URL at TARGET and start the server.")
    db_copy.add_argument("source", metavar="SOURCE", help="the database to copy from")
    db_copy.add_argument("target", metavar="TARGET", help="the empty database to copy into")
    _add_options(db_copy, {"log_level"})
    db_copy.set_defaults(func=_db_copy)

    fsck = commands.add_parser(
        "fsck", help="check that the library and the blob store agree (safe while serving)",
        description="Check that every library entry's blob is stored, and re-hash every "
                    "stored blob to check its content matches its name. Reports missing and "
                    "corrupt blobs, size mismatches and orphans (blobs no library lists). "
                    "Exit 0 when all is well, 1 when something was found (even if "
                    "repaired), 2 for a usage or configuration error.")
    fsck.add_argument("--repair", action="store_true",
                      help="remove orphan blobs older than --grace, mark missing and corrupt "
                           "blobs so downloads answer DATA_LOSS until the song is uploaded "
                           "again; library entries are never removed")
    fsck.add_argument("--no-rehash", dest="rehash", action="store_false",
                      help="only compare names and sizes (fast; skips reading every blob)")
    _add_grace(fsck)
    _add_options(fsck, store_fields)
    fsck.set_defaults(func=_fsck)

    gc = commands.add_parser(
        "gc", help="remove blobs no library lists and expired upload sessions",
        description="Remove stored blobs that no library entry lists (once older than "
                    "--grace), their records, and expired upload sessions with their "
                    "partial data. Safe while the server runs.")
    gc.add_argument("--dry-run", action="store_true", help="list what would go, remove nothing")
    _add_grace(gc)
    _add_options(gc, store_fields | {"upload_session_ttl"})
    gc.set_defaults(func=_gc)

    health = commands.add_parser(
        "health", help="ask a running server whether it serves (exit 0) or not (exit 1)",
        description="Call grpc.health.v1.Health/Check on a running server and exit 0 if it "
                    "answers SERVING, 1 otherwise: for container health checks.")
    health.add_argument("--service", default="", metavar="NAME",
                        help="the service to ask about, e.g. file.FileService (default: the "
                             "whole server)")
    health.add_argument("--host", dest="host", metavar="ADDR",
                        help="address of the server (default HOST unless that is a wildcard "
                             "address, else 127.0.0.1) [HOST]")
    health.add_argument("--port", dest="port", type=parse_port, metavar="N",
                        help="port to ask (default PORT, else AUTH_PORT, else 50051) [PORT]")
    health.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                        help="give up after this long (default 5)")
    health.add_argument("--tls", dest="tls_probe", action="store_true",
                        help="talk TLS (default: when the server's own settings, TLS or "
                             "TLS_CERT in the environment, turn it on), trusting the "
                             "server's certificate (TLS_CERT, or the self-signed one in "
                             "DATA_DIR/tls) or, with neither at hand, the system's roots")
    health.add_argument("--tls-root", type=Path, metavar="FILE",
                        help="talk TLS, trusting this PEM certificate (the server's own or "
                             "its authority's)")
    health.add_argument("--tls-name", metavar="NAME",
                        help="under TLS, check the certificate for this name (default: the "
                             "first the trusted certificate holds, else the address)")
    _add_options(health, {"data_dir"})
    health.set_defaults(func=_health)

    add_client_commands(commands)  # login, ls, push, pull, sync, ...: see client/commands.py
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "client_func", None) is not None:
        return run_client_command(args)  # the client needs none of the server's settings
    flags = {option.field: getattr(args, option.field, None) for option in OPTIONS}
    try:
        settings = Settings.load(os.environ, flags)
    except ConfigError as exc:
        print(f"musicsync: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        with _private_files(args.command):
            return args.func(args, settings)
    except ConfigError as exc:
        print(f"musicsync: {exc}", file=sys.stderr)
        return 2
    except MusicsyncError as exc:
        print(f"musicsync: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from .db.migrations import SchemaTooNew
        if isinstance(exc, SchemaTooNew):
            print(f"musicsync: {exc}", file=sys.stderr)
            return 2
        raise


# Commands that create files (the database, its -wal and -shm, blobs, generated
# keys, backups): these are made readable by their owner only, whatever the
# umask of the shell or container that started us.
WRITING_COMMANDS = frozenset({"serve", "user", "backup", "db", "fsck", "gc"})


@contextlib.contextmanager
def _private_files(command: str) -> Iterator[None]:
    """umask 077 while ``command`` runs (the previous one is restored for in-process callers)."""
    if command not in WRITING_COMMANDS:
        yield
        return
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


# -- serve ------------------------------------------------------------------------

def _serve(args, settings: Settings) -> int:
    from .memory import tune_allocator
    tune_allocator()  # before the server's modules allocate (see memory.py)
    services = (args.service,) if args.service else SERVICES
    asyncio.run(_run_server(settings, services))
    return 0


async def _run_server(settings: Settings, services) -> None:
    from .server import App  # keeps `musicsync user ...` from importing grpc servers

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = 0

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            log.info("%s: finishing running calls (up to %ds), then stopping; send it again "
                     "to stop at once", signal.Signals(signum).name, settings.shutdown_grace)
            stop.set()
        else:
            log.warning("second signal: stopping now")
            os._exit(1)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    async with App(settings, services):
        await stop.wait()
    log.info("stopped")


# -- backup, health ---------------------------------------------------------------

def _backup(args, settings: Settings) -> int:
    from .ops.admin import require_database
    from .ops.backup import backup_database

    source = require_database(settings)
    if source is None:
        raise ConfigError("`musicsync backup` copies an SQLite database; back PostgreSQL up "
                          "with its own tools (pg_dump), or copy it to an SQLite file with "
                          "`musicsync db copy`")
    result = backup_database(source, args.file.expanduser(), force=args.force)
    print(f"backed up {source} to {result.path}: {result.size} bytes, "
          f"schema version {result.schema_version}, {result.users} users")
    return 0


# -- db ---------------------------------------------------------------------------

def _db_copy(args, settings: Settings) -> int:
    from .ops.db_copy import copy_database

    def show(progress) -> None:
        state = "copied" if progress.done else "copying"
        print(f"{state} {progress.table}: {progress.rows} rows in {progress.seconds:.1f} s "
              f"({progress.rate:.0f} rows/s)", flush=True)

    report = asyncio.run(copy_database(args.source, args.target, progress=show))
    print(f"{'TABLE':<16} {'ROWS':>9}  {'SOURCE':<12}  {'TARGET':<12}  CHECK")
    for table in report.tables:
        verdict = "ok" if table.ok else "DIFFERS"
        print(f"{table.name:<16} {table.rows:>9}  {table.checksum[:12]:<12}  "
              f"{table.target_checksum[:12]:<12}  {verdict}"
              + ("" if table.ok else f" (target: {table.target_rows} rows)"))
    if not report.committed:
        print(f"musicsync: the copy in {report.target} differs from {report.source} in "
              f"{', '.join(report.differing)}; it was rolled back, nothing was written",
              file=sys.stderr)
        return 1
    print(f"copied {report.rows} rows of {len(report.tables)} tables from {report.source} to "
          f"{report.target} in {report.seconds:.1f} s, schema "
          f"{report.schema_version}; every table verified. Point DATABASE_URL at "
          f"{report.target} and start the server.")
    return 0


def _add_grace(parser: argparse.ArgumentParser) -> None:
    """fsck and gc leave young blobs alone: an upload may be publishing them right now."""
    parser.add_argument("--grace", type=parse_duration, default="1h", metavar="DURATION",
                        help="leave blobs stored more recently than this alone (default 1h)")

def _fsck(args, settings: Settings) -> int:
    from .ops.maintenance import Maintenance, open_stores

    async def run():
        async with open_stores(settings) as (db, store):
            return await Maintenance(db, store, grace=args.grace).fsck(
                repair=args.repair, rehash=args.rehash), store.description
    report, where = asyncio.run(run())
    for finding in report.findings:
        print(finding.line())
    rehashed = f", {report.rehashed_bytes / 1e6:.1f} MB re-hashed" if args.rehash else ""
    verdict = "all is well" if report.clean else f"{len(report.findings)} problems"
    print(f"checked {report.entries} library entries and {report.blobs} blobs in {where}"
          f"{rehashed}: {verdict}")
    return 0 if report.clean else 1


def _gc(args, settings: Settings) -> int:
    from .ops.maintenance import Maintenance, files_for_gc, open_stores

    async def run():
        async with open_stores(settings) as (db, store):
            uploads = files_for_gc(settings, db, store)
            return await Maintenance(db, store, grace=args.grace).gc(
                uploads, dry_run=args.dry_run)
    report = asyncio.run(run())
    verb = "would remove" if args.dry_run else "removed"
    for sha256, size in report.blobs:
        print(f"{verb} blob {sha256} ({size} bytes)")
    sessions = "" if args.dry_run else (f", {report.sessions} expired upload sessions and "
                                        f"{report.partials} partial files")
    print(f"{verb} {len(report.blobs)} unreferenced blobs ({report.freed / 1e6:.1f} MB), "
          f"{report.rows} stale blob records{sessions}")
    return 0


def _health(args, settings: Settings) -> int:
    from .probe import check, probe_address

    address = probe_address(settings)
    credentials = server_name = None
    if args.tls_probe or args.tls_root or settings.tls_mode != "off":
        from .tls import channel_credentials
        credentials, server_name = channel_credentials(settings, args.tls_root)
        server_name = args.tls_name or server_name
    serving, status = check(address, args.service, args.timeout, credentials=credentials,
                            server_name=server_name)
    if credentials is None and status.startswith("UNAVAILABLE"):
        status += " (if the server serves TLS, add --tls or its TLS settings)"
    print(f"{address} {args.service or '(server)'}: {status}")
    return 0 if serving else 1


# -- user -------------------------------------------------------------------------

def _open_accounts(settings: Settings, *, create: bool = False):
    from .ops.admin import open_accounts
    return open_accounts(settings, create=create)


def _read_password(args, prompt: str) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise ConfigError("no terminal to ask for a password on; use --password-stdin")
    first = getpass.getpass(prompt)
    if getpass.getpass("again: ") != first:
        raise ConfigError("the passwords did not match")
    return first


def _user_add(args, settings: Settings) -> int:
    from .ops.admin import require_database
    if not args.create:  # before asking for a password that would then go nowhere
        require_database(settings, can_create=True)
    password = _read_password(args, f"password for {args.username}: ")

    async def run() -> None:
        async with _open_accounts(settings, create=args.create) as accounts:
            user = await accounts.create_user(args.username, password)
        print(f"created user {user.username} (id {user.id})")
    asyncio.run(run())
    return 0


def _user_list(args, settings: Settings) -> int:
    async def run() -> None:
        async with _open_accounts(settings) as accounts:
            users = await accounts.list_users()
        print(f"{'ID':>5}  {'USERNAME':<32} {'STATE':<9} CREATED")
        for user in users:
            created = datetime.fromtimestamp(user.created_at, timezone.utc).strftime("%Y-%m-%d")
            state = "disabled" if user.disabled else "active"
            print(f"{user.id:>5}  {user.username:<32} {state:<9} {created}")
    asyncio.run(run())
    return 0


def _user_passwd(args, settings: Settings) -> int:
    password = _read_password(args, f"new password for {args.username}: ")

    async def run() -> None:
        async with _open_accounts(settings) as accounts:
            await accounts.reset_password(args.username, password)
        print(f"password of {args.username} changed; the user is signed out everywhere")
    asyncio.run(run())
    return 0


def _set_disabled(args, settings: Settings, disabled: bool) -> int:
    async def run() -> None:
        async with _open_accounts(settings) as accounts:
            await accounts.set_disabled(args.username, disabled)
    asyncio.run(run())
    print(f"{args.username} {'disabled' if disabled else 'enabled'}")
    return 0


def _user_disable(args, settings: Settings) -> int:
    return _set_disabled(args, settings, True)


def _user_enable(args, settings: Settings) -> int:
    return _set_disabled(args, settings, False)


def _user_unlock(args, settings: Settings) -> int:
    async def run() -> int:
        async with _open_accounts(settings) as accounts:
            return await accounts.unlock(args.username)
    cleared = asyncio.run(run())
    print(f"cleared {cleared} failed sign-ins of {args.username}; it can sign in from any "
          "address at once")
    return 0


def _user_delete(args, settings: Settings) -> int:
    if not args.yes:
        if not sys.stdin.isatty():
            raise ConfigError("refusing to delete without a terminal to confirm on; add --yes")
        answer = input(f"delete {args.username} and their whole library? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1

    from .ops.admin import accounts_over, open_database
    from .ops.maintenance import remove_left_behind

    async def run():
        async with open_database(settings) as db:
            left = await accounts_over(db, settings).delete_user(args.username)
            # About 1.5 ms a song on a local disk: say what is going on meanwhile.
            print(f"deleted {args.username}; removing the files of their {len(left.blobs)} "
                  "songs that no other library holds", flush=True)
            return await remove_left_behind(settings, db, left)
    removal = asyncio.run(run())
    where = removal.where
    print(f"removed {removal.removed} files no other library holds (kept {removal.shared} "
          f"that others hold) and {removal.partials} unfinished uploads from {where}")
    if removal.failure:
        print(f"musicsync: {removal.left} files of {args.username} are still in the storage: "
              f"{removal.failure}; no library lists them, so `musicsync gc` removes them once "
              "the storage answers", file=sys.stderr)
    if removal.absent:
        print(f"musicsync: {removal.absent} files of {args.username} were not in {where}: if "
              "the server keeps songs elsewhere (S3_ENDPOINT), run `musicsync gc` with its "
              "storage options to remove them", file=sys.stderr)
    return 1 if removal.failure or removal.absent else 0


if __name__ == "__main__":
    sys.exit(main())
