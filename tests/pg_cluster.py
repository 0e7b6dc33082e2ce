"""PostgreSQL for the tests: a throwaway cluster in a temporary folder, or a real server.

``PG_URL=postgresql://user:pw@host:5432/postgres make test`` runs the PostgreSQL tests against
that server (its user needs CREATEDB; the URL's database is only used to create and drop the
tests' own). Otherwise the first test that asks for PostgreSQL starts a cluster of its own:
initdb into a temporary folder, trust authentication on 127.0.0.1 only, the unix socket inside
the folder, durability off for speed; it is stopped and removed when the session ends.
PostgreSQL refuses to run as root, so as root the cluster runs as the ``postgres`` user that
Debian's package creates. Each test gets a database of its own (``fresh_database``), dropped
after it, so tests see nothing of each other.
"""

from __future__ import annotations

import asyncio
import glob
import itertools
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from .helpers import free_port

INSTALL_HINT = ("install PostgreSQL's server (`apt-get install postgresql` on Debian/Ubuntu; "
                "`make test` does it when run as root) or set PG_URL to a server you run, "
                "e.g. PG_URL=postgresql://user:password@127.0.0.1:5432/postgres")
FOLDER_PREFIX = "musicsync-pg-"
OWNER_FILE = "owner.pid"  # the test run's pid: a cluster whose run is gone is an orphan
SUPERUSER = "postgres"  # the throwaway cluster's superuser, whoever runs it
SERVER_ACCOUNT = "postgres"  # the system user that runs the cluster when we are root

# A test box, not a database anyone keeps: nothing is flushed to disk.
SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",  # several replicas' pools and many test connections at once
    "shared_buffers": "64MB",  # the machine is shared; the default 128MB is more than needed
    "max_parallel_workers_per_gather": "0",  # 2 CPUs; and keeps off small /dev/shm in containers
}


@dataclass(frozen=True)
class PgServer:
    """Where a PostgreSQL server listens and whom to connect as."""

    host: str
    port: int
    user: str
    password: str = ""
    maintenance_db: str = "postgres"  # where databases are created and dropped from
    query: str = ""  # the rest of PG_URL (sslmode=...), kept on every URL

    def url(self, database: str | None = None) -> str:
        credentials = quote(self.user, safe="")
        if self.password:
            credentials += ":" + quote(self.password, safe="")
        query = f"?{self.query}" if self.query else ""
        return (f"postgresql://{credentials}@{self.host}:{self.port}/"
                f"{database or self.maintenance_db}{query}")


def server_from_url(url: str) -> PgServer:
    """The server a postgresql:// URL (PG_URL) names."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
        raise ValueError(f"PG_URL must look like postgresql://user:password@host:5432/postgres, "
                         f"not {url!r}")
    return PgServer(host=parts.hostname, port=parts.port or 5432,
                    user=unquote(parts.username or "") or SUPERUSER,
                    password=unquote(parts.password or ""),
                    maintenance_db=parts.path.lstrip("/") or "postgres", query=parts.query)


def configured_server() -> PgServer | None:
    """The server PG_URL names, if set."""
    url = os.environ.get("PG_URL", "").strip()
    return server_from_url(url) if url else None


def find_bin_dir(path: str | None = None,
                 roots: str = "/usr/lib/postgresql/*/bin") -> Path:
    """The folder with initdb and pg_ctl: on PATH first, else Debian's newest version."""
    found = shutil.which("initdb", path=path)
    if found:
        # Follow a symlink (/usr/local/bin/initdb -> .../15/bin/initdb): pg_ctl and postgres
        # must come from the same version.
        folder = Path(found).resolve().parent
        if (folder / "pg_ctl").exists():
            return folder
    versions = [Path(initdb).parent for initdb in glob.glob(os.path.join(roots, "initdb"))]
    versions = [folder for folder in versions if (folder / "pg_ctl").exists()]
    if not versions:
        raise RuntimeError(f"PostgreSQL's initdb was found neither on PATH nor in {roots}: "
                           f"{INSTALL_HINT}")
    return max(versions, key=_version_key)


def _version_key(folder: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", folder.parent.name)) or (0,)


class TempCluster:
    """initdb + pg_ctl start in a temporary folder; ``stop`` ends it and removes the folder."""

    def __init__(self, bin_dir: Path | None = None) -> None:
        self.bin_dir = bin_dir or find_bin_dir()
        self.folder: Path | None = None
        self.server: PgServer | None = None
        self.started_in: float = 0.0  # seconds from initdb to accepting connections

    @property
    def data_dir(self) -> Path:
        assert self.folder is not None
        return self.folder / "data"

    @property
    def log_file(self) -> Path:
        assert self.folder is not None
        return self.folder / "server.log"

    def start(self, attempts: int = 3) -> PgServer:
        began = time.monotonic()
        self._stop_orphans()
        self.folder = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX))
        (self.folder / OWNER_FILE).write_text(str(os.getpid()))
        try:
            self._give_folder_to_server_account()
            self._run("initdb", "--pgdata", str(self.data_dir), "--username", SUPERUSER,
                      "--auth", "trust", "--encoding", "UTF8", "--no-locale", "--no-sync")
            self._write_hba()
            for attempt in range(attempts):
                # free_port only proposes a port: another process may take it before the
                # server binds it, so a failed start is tried again on another one.
                port = free_port()
                self._write_settings(port)
                try:
                    self._run("pg_ctl", "start", "--wait", "--timeout", "60",
                              "--pgdata", str(self.data_dir), "--log", str(self.log_file))
                    break
                except RuntimeError:
                    if attempt == attempts - 1:
                        raise
        except BaseException:
            self._remove_folder()
            raise
        self.started_in = time.monotonic() - began
        self.server = PgServer(host="127.0.0.1", port=port, user=SUPERUSER)
        return self.server

    def stop(self) -> None:
        if self.folder is None:
            return
        try:
            if (self.data_dir / "postmaster.pid").exists():
                self._run("pg_ctl", "stop", "--mode", "immediate", "--wait",
                          "--pgdata", str(self.data_dir))
        finally:
            self._remove_folder()

    def pause(self) -> None:
        """Stops the server as an outage would (its clients' connections drop), keeping
        its data and port for ``resume``."""
        self._run("pg_ctl", "stop", "--mode", "fast", "--wait", "--pgdata", str(self.data_dir))

    def resume(self) -> None:
        self._run("pg_ctl", "start", "--wait", "--timeout", "60", "--pgdata",
                  str(self.data_dir), "--log", str(self.log_file))

    def __enter__(self) -> PgServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _write_hba(self) -> None:
        # Only the socket in our folder and 127.0.0.1; listen_addresses keeps every other
        # address from reaching the server at all.
        (self.data_dir / "pg_hba.conf").write_text(
            "local all all trust\n"
            "host  all all 127.0.0.1/32 trust\n")

    def _write_settings(self, port: int) -> None:
        # postgresql.auto.conf (ALTER SYSTEM's file) is read last and rewritten whole here,
        # so a retry on another port leaves no stale line behind.
        settings = dict(SETTINGS, listen_addresses="127.0.0.1", port=str(port),
                        unix_socket_directories=str(self.folder))
        (self.data_dir / "postgresql.auto.conf").write_text(
            "".join(f"{name} = '{value}'\n" for name, value in settings.items()))

    def _give_folder_to_server_account(self) -> None:
        if os.geteuid() != 0:
            return
        try:
            account = pwd.getpwnam(SERVER_ACCOUNT)
        except KeyError:
            raise RuntimeError(
                f"PostgreSQL refuses to run as root and there is no {SERVER_ACCOUNT!r} user "
                f"to run it as: {INSTALL_HINT}") from None
        os.chown(self.folder, account.pw_uid, account.pw_gid)

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        if os.geteuid() == 0:
            command = _as_server_account() + command
        # cwd: the server account may not be allowed into the caller's folder.
        done = subprocess.run(command, cwd=self.folder, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = self.log_file.read_text()[-2000:] if self.log_file.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n"
                               f"{done.stdout}{done.stderr}{log}")

    def _stop_orphans(self) -> None:
        """Stops the clusters of test runs that were killed before their teardown (pg_ctl
        detaches the server, so it outlives them); clusters of live runs are left alone."""
        for folder in Path(tempfile.gettempdir()).glob(FOLDER_PREFIX + "*"):
            try:
                owner = int((folder / OWNER_FILE).read_text())
            except (OSError, ValueError):
                continue  # not one of ours, or still being made
            if _is_running(owner):
                continue
            orphan = TempCluster(self.bin_dir)
            orphan.folder = folder
            try:
                orphan.stop()
            except RuntimeError:
                pass  # a stale postmaster.pid: that server is gone already

    def _remove_folder(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _as_server_account() -> list[str]:
    if shutil.which("runuser"):
        return ["runuser", "-u", SERVER_ACCOUNT, "--"]
    if shutil.which("setpriv"):
        return ["setpriv", f"--reuid={SERVER_ACCOUNT}", f"--regid={SERVER_ACCOUNT}",
                "--init-groups", "--reset-env"]
    raise RuntimeError("running as root, and neither runuser nor setpriv is there to run "
                       f"PostgreSQL as {SERVER_ACCOUNT!r}: run the tests as another user, "
                       "or set PG_URL")


@contextmanager
def postgres_server() -> Iterator[PgServer]:
    """The server for a test session: PG_URL's, else a throwaway cluster."""
    configured = configured_server()
    if configured is not None:
        yield configured
        return
    with TempCluster() as server:
        yield server


# Unique on a shared PG_URL server too: two runs at once have different pids.
_database_numbers = itertools.count(1)


@contextmanager
def fresh_database(server: PgServer) -> Iterator[str]:
    """A new empty database on ``server`` (its URL), dropped afterwards even if in use."""
    name = f"test_{os.getpid()}_{next(_database_numbers)}"
    run_async(_execute(server, f'CREATE DATABASE "{name}"'))
    try:
        yield server.url(name)
    finally:
        run_async(_execute(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _execute(server: PgServer, statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(server.url(), timeout=30)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def run_async(coroutine):
    """Runs ``coroutine`` to its end on a loop of its own in another thread, so sync and
    async fixtures and tests can call it alike (the test's own loop is left alone)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def database_of(url: str) -> str:
    return urlsplit(url).path.lstrip("/")

