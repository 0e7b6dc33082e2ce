"""What the server refuses or repairs at start-up: weak keys, an anonymous user nobody
created, files others could read, a metrics endpoint open to the network, secrets in
the log or on the command line."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import stat
import subprocess
import sys
import unicodedata
from pathlib import Path

import grpc
import pytest
import yaml

from musicsync.config import Settings
from musicsync.errors import ConfigError
from musicsync.keys import registration_key_weakness, signing_key_weakness
from musicsync.proto import auth_pb2
from musicsync.server import App

from .conftest import PASSWORD, REGISTRATION_KEY, create_user, make_settings
from .helpers import Client, status_of

ROOT = Path(__file__).resolve().parent.parent
GENERATE = "secrets.token_urlsafe(32)"
K8S_SECRET = yaml.safe_load((ROOT / "k8s" / "secret.yaml").read_text())["stringData"]


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- Weak keys ----------------------------------------------------------------------------

WEAK_SIGNING_KEYS = [
    "musicsync",                      # cracked offline from one token in the review
    "changeme", "secret",
    K8S_SECRET["SECRET_KEY"],         # the k8s placeholder, 39 characters
    "x" * 64,                         # long, but one character
    "passwordpasswordpasswordpassword",
    "abcdefghijklmnopqrstuvwxyz0123456789",
    "my-secret-key-my-secret-key-my-secret-key",
]
WEAK_REGISTRATION_KEYS = [
    "k",                              # accepted without a word before
    "1234", "changeme",
    K8S_SECRET["SECURITY_KEY"],
    "aaaaaaaaaaaaaaaa", "123456789012", "abababababababab", "CHANGEME-family-key",
]


@pytest.mark.parametrize("key", WEAK_SIGNING_KEYS)
def test_a_weak_signing_key_is_refused_with_how_to_make_one(key):
    with pytest.raises(ConfigError) as refused:
        Settings.load({"SECRET_KEY": key})
    assert str(refused.value).startswith("SECRET_KEY ") and GENERATE in str(refused.value)


@pytest.mark.parametrize("key", WEAK_REGISTRATION_KEYS)
def test_a_weak_registration_key_is_refused_with_how_to_make_one(key):
    with pytest.raises(ConfigError) as refused:
        Settings.load({"SECURITY_KEY": key})
    assert str(refused.value).startswith("SECURITY_KEY ") and GENERATE in str(refused.value)


def test_every_k8s_placeholder_key_is_refused():
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        Settings(secret_key=K8S_SECRET["SECRET_KEY"])
    with pytest.raises(ConfigError, match="SECURITY_KEY"):
        Settings(security_key=K8S_SECRET["SECURITY_KEY"])


def test_random_keys_of_the_documented_lengths_are_accepted():
    for _ in range(50):
        Settings(secret_key=secrets.token_urlsafe(32), security_key=secrets.token_urlsafe(9))
        Settings(security_key=secrets.token_hex(8))  # k8s/README.md's `openssl rand -hex 8`
    Settings(security_key=REGISTRATION_KEY, secret_key="é" * 16 + secrets.token_urlsafe(16))


async def test_generated_keys_meet_the_rules_for_keys_the_operator_sets(tmp_path):
    settings = make_settings(tmp_path, secret_key=None, security_key=None)
    async with App(settings):
        pass
    assert signing_key_weakness((tmp_path / "secret_key").read_text().strip()) is None
    assert registration_key_weakness((tmp_path / "security_key").read_text().strip()) is None


@pytest.mark.parametrize("variable", ["SECRET_KEY", "SECURITY_KEY"])
def test_a_weak_key_makes_serve_exit_2_before_it_creates_anything(tmp_path, variable):
    env = {**os.environ, variable: "musicsync", "DATA_DIR": str(tmp_path / "data"),
           "HOST": "127.0.0.1", "AUTH_PORT": "0", "FILE_PORT": "0", "SYNC_PORT": "0"}
    try:
        result = subprocess.run([sys.executable, "-m", "musicsync.cli", "serve"], env=env,
                                capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:  # it served instead of refusing
        pytest.fail(f"musicsync serve started with {variable}=musicsync")
    assert result.returncode == 2
    assert f"{variable} is 9 " in result.stderr and GENERATE in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "data").exists()


# -- Secrets from files -------------------------------------------------------------------

def test_secrets_are_read_from_the_files_the_file_variables_name(tmp_path):
    values = {"SECRET_KEY": secrets.token_urlsafe(32), "SECURITY_KEY": "family-key-7Hq2",
              "S3_ACCESS_KEY": "musicsync-app", "S3_SECRET_KEY": secrets.token_urlsafe(24)}
    env = {"S3_ENDPOINT": "minio:9000"}
    for name, value in values.items():
        (tmp_path / name).write_text(value + "\n")  # as `echo` and editors leave them
        env[f"{name}_FILE"] = str(tmp_path / name)
    settings = Settings.load(env)
    assert (settings.secret_key, settings.security_key, settings.s3_access_key,
            settings.s3_secret_key) == tuple(values.values())
    assert settings.replace(log_level="DEBUG").secret_key == values["SECRET_KEY"]


def test_a_secret_file_that_is_missing_empty_or_doubled_is_refused_by_name(tmp_path):
    with pytest.raises(ConfigError, match="SECRET_KEY_FILE: cannot read .*nowhere"):
        Settings.load({"SECRET_KEY_FILE": str(tmp_path / "nowhere")})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="SECURITY_KEY_FILE: .* is empty"):
        Settings.load({"SECURITY_KEY_FILE": str(tmp_path / "empty")})
    (tmp_path / "key").write_text(secrets.token_urlsafe(32))
    with pytest.raises(ConfigError, match="SECRET_KEY or SECRET_KEY_FILE, not both"):
        Settings.load({"SECRET_KEY_FILE": str(tmp_path / "key"),
                       "SECRET_KEY": secrets.token_urlsafe(32)})
    (tmp_path / "weak").write_text("musicsync\n")
    with pytest.raises(ConfigError, match="SECRET_KEY is 9 bytes long"):
        Settings.load({"SECRET_KEY_FILE": str(tmp_path / "weak")})


async def test_a_server_registers_phones_with_the_key_from_security_key_file(tmp_path):
    (tmp_path / "key").write_text("family-key-7Hq2\n")
    settings = make_settings(tmp_path / "data", security_key=None,
                             security_key_file=tmp_path / "key")
    async with App(settings) as app, Client(app) as client:
        await client.auth.Register(auth_pb2.RegisterRequest(
            username="alice", password=PASSWORD, security_key="family-key-7Hq2"))


# -- Anonymous mode -----------------------------------------------------------------------

async def test_anonymous_mode_refuses_to_start_until_its_user_exists(tmp_path):
    settings = make_settings(tmp_path, anonymous_user="phone")
    with pytest.raises(ConfigError, match="musicsync user add phone"):
        async with App(settings):
            pass
    await create_user(settings, "phone")
    async with App(settings):
        pass


async def register_status(client: Client, username: str) -> grpc.StatusCode:
    code, _ = await status_of(client.auth.Register(auth_pb2.RegisterRequest(
        username=username, password=PASSWORD, security_key=REGISTRATION_KEY)))
    return code


async def test_register_cannot_take_the_anonymous_users_name_in_any_case_or_form(tmp_path):
    settings = make_settings(tmp_path, anonymous_user="zoë")
    await create_user(settings, "zoë")
    names = ("zoë", "ZOË", unicodedata.normalize("NFD", "Zoë"))
    async with App(settings) as app, Client(app) as client:
        for name in names:
            assert await register_status(client, name) == grpc.StatusCode.PERMISSION_DENIED
        # Deleted while the server runs: the name stays reserved all the same.
        await app.accounts.delete_user("zoë")
        for name in names:
            assert await register_status(client, name) == grpc.StatusCode.PERMISSION_DENIED
        assert await register_status(client, "zoe") == grpc.StatusCode.OK


# -- File modes ----------------------------------------------------------------------------

async def test_database_files_are_private_in_a_data_dir_open_to_others(tmp_path, caplog):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    old = os.umask(0o022)  # a server embedded without the CLI's umask
    try:
        with caplog.at_level(logging.WARNING, logger="musicsync"):
            async with App(make_settings(data)) as app, Client(app) as client:
                await register_status(client, "alice")  # writes: the WAL is in use
                for name in ("musicsync.db", "musicsync.db-wal", "musicsync.db-shm"):
                    assert mode_of(data / name) == 0o600, name
    finally:
        os.umask(old)
    assert f"DATA_DIR {data} is open to other users" in caplog.text


async def test_database_files_left_readable_by_others_are_made_private_at_start(tmp_path):
    data = tmp_path / "data"
    async with App(make_settings(data)):
        pass
    (data / "musicsync.db").chmod(0o644)
    async with App(make_settings(data)):
        assert mode_of(data / "musicsync.db") == 0o600


def test_commands_create_files_for_their_owner_only_whatever_the_umask(tmp_path):
    data = tmp_path / "data"
    result = subprocess.run(
        [sys.executable, "-m", "musicsync.cli", "user", "add", "alice", "--create",
         "--password-stdin", "--data-dir", str(data), "--argon2-memory-kib", "1024",
         "--argon2-time-cost", "1", "--argon2-parallelism", "1"],
        input=PASSWORD + "\n", capture_output=True, text=True, timeout=60,
        preexec_fn=lambda: os.umask(0o022))
    assert result.returncode == 0, result.stderr
    assert mode_of(data) == 0o700
    assert mode_of(data / "musicsync.db") == 0o600


# -- Metrics endpoint ---------------------------------------------------------------------

def reachable(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=2).close()
        return True
    except OSError:
        return False


async def test_metrics_listen_on_loopback_only_unless_told_otherwise(tmp_path):
    # 127.0.0.2 is this machine too, but not the address 127.0.0.1: a socket bound to
    # 127.0.0.1 does not answer there, one bound to every interface does.
    settings = make_settings(tmp_path / "a", host="0.0.0.0", metrics_port=0)
    async with App(settings) as app:
        assert reachable("127.0.0.1", app.metrics_port)
        assert not reachable("127.0.0.2", app.metrics_port)
    settings = make_settings(tmp_path / "b", metrics_port=0, metrics_host="0.0.0.0")
    async with App(settings) as app:
        assert reachable("127.0.0.2", app.metrics_port)


# -- The generated registration key in the log --------------------------------------------

async def test_generated_registration_key_is_logged_only_by_the_start_that_creates_it(
        tmp_path, caplog):
    settings = make_settings(tmp_path, security_key=None)
    with caplog.at_level(logging.INFO, logger="musicsync"):
        async with App(settings):
            pass
        key = (tmp_path / "security_key").read_text().strip()
        assert f"registration key: {key}" in caplog.text
        caplog.clear()
        async with App(settings):
            pass
    assert key not in caplog.text
    assert f"registration key: kept in {tmp_path / 'security_key'}" in caplog.text
