"""The `musicsync` command as operators run it: serve, signals, env and flags, user admin."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2

from musicsync.config import OPTIONS
from musicsync.proto import auth_pb2, auth_pb2_grpc, sync_pb2_grpc

from .conftest import PASSWORD, REGISTRATION_KEY
from .helpers import ServerProcess, free_port, status_of

ROOT = Path(__file__).resolve().parent.parent
CHEAP_ARGON2 = {"ARGON2_TIME_COST": "1", "ARGON2_MEMORY_KIB": "1024", "ARGON2_PARALLELISM": "1"}


def musicsync(*args: str, data_dir: Path, stdin: str = "",
              database_url: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **CHEAP_ARGON2, "DATA_DIR": str(data_dir)}
    if database_url:
        env["DATABASE_URL"] = database_url
    return subprocess.run([sys.executable, "-m", "musicsync.cli", *args], input=stdin,
                          capture_output=True, text=True, env=env, timeout=60)


async def login(port: int, username: str, password: str = PASSWORD):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        return await status_of(auth_pb2_grpc.AuthServiceStub(channel).Login(
            auth_pb2.LoginRequest(username=username, password=password)))


@pytest.fixture
def ports() -> dict[str, int]:
    return {"auth": free_port(), "file": free_port(), "sync": free_port()}


def serve_args(data_dir: Path, ports: dict[str, int]) -> list[str]:
    return ["serve", "--data-dir", str(data_dir), "--host", "127.0.0.1",
            "--auth-port", str(ports["auth"]), "--file-port", str(ports["file"]),
            "--sync-port", str(ports["sync"])]


def test_serve_help_documents_every_option_with_its_environment_variable(tmp_path):
    result = musicsync("serve", "--help", data_dir=tmp_path)
    assert result.returncode == 0
    for option in OPTIONS:
        assert f"[{option.env}]" in result.stdout
        assert "--" + option.field.replace("_", "-") in result.stdout
    for legacy in ("SECURITY_KEY", "SECRET_KEY", "DATABASE_URL", "PORT", "ANONYMOUS_USER"):
        assert legacy in result.stdout


async def test_serve_shows_the_registration_key_and_stops_cleanly_on_sigterm(tmp_path, ports):
    server = ServerProcess(serve_args(tmp_path / "data", ports), CHEAP_ARGON2, tmp_path / "log")
    try:
        await server.wait_serving(ports["file"])
        key = (tmp_path / "data" / "security_key").read_text().strip()
        assert f"registration key: {key}" in server.log()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{ports['sync']}") as channel:
            response = await auth_pb2_grpc.AuthServiceStub(channel).Register(
                auth_pb2.RegisterRequest(username="alice", password=PASSWORD, security_key=key))
            await sync_pb2_grpc.SyncServiceStub(channel).GetSync(
                empty_pb2.Empty(), metadata=(("authorization", f"Bearer {response.token}"),))
    finally:
        code = server.stop(signal.SIGTERM)
    assert code == 0
    log = server.log()
    assert "rpc /auth.AuthService/Register user=- code=OK" in log
    assert "rpc /sync.SyncService/GetSync user=1 code=OK" in log
    assert "stopped" in log
    for secret in (PASSWORD, response.token, response.refresh_token,
                   (tmp_path / "data" / "secret_key").read_text().strip()):
        assert secret not in log


async def test_flags_override_environment(tmp_path, ports):
    env = {**CHEAP_ARGON2, "AUTH_PORT": "1", "SECURITY_KEY": REGISTRATION_KEY}
    server = ServerProcess(serve_args(tmp_path / "data", ports), env, tmp_path / "log")
    try:
        await server.wait_serving(ports["auth"])
        # SECURITY_KEY from the environment is used, and not printed.
        async with grpc.aio.insecure_channel(f"127.0.0.1:{ports['auth']}") as channel:
            await auth_pb2_grpc.AuthServiceStub(channel).Register(auth_pb2.RegisterRequest(
                username="alice", password=PASSWORD, security_key=REGISTRATION_KEY))
    finally:
        server.stop()
    assert REGISTRATION_KEY not in server.log()
    assert not (tmp_path / "data" / "security_key").exists()


@pytest.mark.parametrize("command", [
    ["-m", "musicsync.cli", "serve", "auth"],
    [str(ROOT / "cmd" / "auth.py")],
])
async def test_single_auth_service_listens_on_port_from_the_environment(tmp_path, command):
    port = free_port()
    env = {**CHEAP_ARGON2, "PORT": str(port), "DATA_DIR": str(tmp_path / "data"),
           "HOST": "127.0.0.1", "SECURITY_KEY": REGISTRATION_KEY}
    server = ServerProcess([], env, tmp_path / "log", command=[sys.executable, *command])
    try:
        await server.wait_serving(port, "auth.AuthService")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await auth_pb2_grpc.AuthServiceStub(channel).Register(auth_pb2.RegisterRequest(
                username="alice", password=PASSWORD, security_key=REGISTRATION_KEY))
            code, _ = await status_of(sync_pb2_grpc.SyncServiceStub(channel).GetSync(
                empty_pb2.Empty()))
            assert code == grpc.StatusCode.UNIMPLEMENTED  # sync is not served here
    finally:
        assert server.stop() == 0


def test_bad_settings_exit_with_a_message_not_a_traceback(tmp_path):
    result = musicsync("serve", "--auth-port", "70000", data_dir=tmp_path)
    assert result.returncode == 2 and "70000" in result.stderr
    env_result = subprocess.run([sys.executable, "-m", "musicsync.cli", "serve"], text=True,
                                capture_output=True, env={**os.environ, "MAX_FILE_SIZE": "lots"})
    assert env_result.returncode == 2 and "MAX_FILE_SIZE" in env_result.stderr
    assert "Traceback" not in result.stderr + env_result.stderr


async def test_busy_port_is_reported_clearly(tmp_path, ports):
    first = ServerProcess(serve_args(tmp_path / "a", ports), CHEAP_ARGON2, tmp_path / "log-a")
    try:
        await first.wait_serving(ports["auth"])
        second = musicsync("serve", "--host", "127.0.0.1", "--auth-port", str(ports["auth"]),
                           "--file-port", "0", "--sync-port", "0", data_dir=tmp_path / "b")
    finally:
        first.stop()
    assert second.returncode == 2
    assert f"cannot listen on 127.0.0.1:{ports['auth']}" in second.stderr


async def test_user_admin_commands_manage_accounts_while_the_server_runs(tmp_path, ports):
    data = tmp_path / "data"
    added = musicsync("user", "add", "alice", "--password-stdin", "--create", data_dir=data,
                      stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert musicsync("user", "add", "Alice", "--password-stdin", data_dir=data,
                     stdin=PASSWORD + "\n").returncode == 1
    assert musicsync("user", "add", "bob", "--password-stdin", data_dir=data,
                     stdin="short\n").returncode == 1
    server = ServerProcess(serve_args(data, ports), {**CHEAP_ARGON2, "REGISTRATION": "closed"},
                           tmp_path / "log")
    try:
        await server.wait_serving(ports["auth"])
        assert (await login(ports["auth"], "alice"))[0] == grpc.StatusCode.OK

        listing = musicsync("user", "list", data_dir=data)
        assert "alice" in listing.stdout and "active" in listing.stdout

        assert musicsync("user", "disable", "alice", data_dir=data).returncode == 0
        assert "disabled" in musicsync("user", "list", data_dir=data).stdout
        code, message = await login(ports["auth"], "alice")
        assert code == grpc.StatusCode.UNAUTHENTICATED and "disabled" in message

        assert musicsync("user", "enable", "alice", data_dir=data).returncode == 0
        assert (await login(ports["auth"], "alice"))[0] == grpc.StatusCode.OK

        assert musicsync("user", "passwd", "alice", "--password-stdin", data_dir=data,
                         stdin="another password\n").returncode == 0
        assert (await login(ports["auth"], "alice"))[0] == grpc.StatusCode.UNAUTHENTICATED
        assert (await login(ports["auth"], "alice", "another password"))[0] == grpc.StatusCode.OK

        assert musicsync("user", "delete", "alice", data_dir=data).returncode != 0  # no --yes
        assert musicsync("user", "delete", "alice", "--yes", data_dir=data).returncode == 0
        assert (await login(ports["auth"], "alice", "another password"))[0] == \
            grpc.StatusCode.UNAUTHENTICATED
        missing = musicsync("user", "disable", "alice", data_dir=data)
        assert missing.returncode == 1 and "no user named" in missing.stderr
    finally:
        server.stop()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
async def test_idle_server_stays_within_80_mib_rss(tmp_path, ports):
    server = ServerProcess(serve_args(tmp_path / "data", ports), CHEAP_ARGON2, tmp_path / "log")
    try:
        await server.wait_serving(ports["sync"])
        status = Path(f"/proc/{server.process.pid}/status").read_text()
        rss_kib = int(next(line.split()[1] for line in status.splitlines()
                           if line.startswith("VmRSS:")))
    finally:
        server.stop()
    assert rss_kib <= 80 * 1024, f"idle RSS {rss_kib / 1024:.1f} MiB"


@pytest.mark.parametrize("command", [
    ["user", "list"], ["user", "add", "alice", "--password-stdin"], ["user", "disable", "alice"],
    ["user", "delete", "alice", "--yes"], ["backup", "copy.db"], ["fsck"], ["gc"],
])
def test_commands_other_than_serve_refuse_to_create_a_missing_database(tmp_path, command):
    """Run from the wrong folder, they name the file they looked for and create nothing."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("DATA_DIR", "DATABASE_URL")}
    result = subprocess.run([sys.executable, "-m", "musicsync.cli", *command],
                            input=PASSWORD + "\n", capture_output=True, text=True,
                            env={**env, **CHEAP_ARGON2}, cwd=elsewhere, timeout=60)
    assert result.returncode == 2, result.stderr
    assert f"no musicsync database at {elsewhere / 'data' / 'musicsync.db'}" in result.stderr
    assert "--data-dir or DATABASE_URL" in result.stderr
    assert ("--create" in result.stderr) == (command[:2] == ["user", "add"])
    assert "Traceback" not in result.stderr
    assert list(elsewhere.iterdir()) == []


def test_a_database_url_naming_a_missing_file_is_refused_by_name(tmp_path):
    missing = tmp_path / "nowhere" / "music.db"
    result = musicsync("user", "list", "--database-url", f"sqlite:///{missing}",
                       data_dir=tmp_path / "data")
    assert result.returncode == 2 and f"no musicsync database at {missing}" in result.stderr
    assert not missing.parent.exists() and not (tmp_path / "data").exists()


async def test_user_add_with_create_starts_a_database_the_server_then_uses(tmp_path, ports):
    data = tmp_path / "data"
    added = musicsync("user", "add", "alice", "--password-stdin", "--create", data_dir=data,
                      stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert (data / "musicsync.db").is_file() and (data.stat().st_mode & 0o777) == 0o700
    again = musicsync("user", "add", "bob", "--password-stdin", "--create", data_dir=data,
                      stdin=PASSWORD + "\n")  # harmless on an existing database
    assert again.returncode == 0, again.stderr
    server = ServerProcess(serve_args(data, ports), {**CHEAP_ARGON2, "REGISTRATION": "closed"},
                           tmp_path / "log")
    try:
        await server.wait_serving(ports["auth"])
        assert (await login(ports["auth"], "alice"))[0] == grpc.StatusCode.OK
        assert (await login(ports["auth"], "bob"))[0] == grpc.StatusCode.OK
    finally:
        server.stop()
