"""Server settings: one frozen dataclass, read from the environment and flags.

Each setting has an environment variable and a command-line flag; a flag wins
over the environment, the environment over the default. ``OPTIONS`` is the one
table of them: the CLI builds its flags and ``--help`` text from it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .keys import GENERATE_HINT, registration_key_weakness, signing_key_weakness
from .peers import parse_networks

SERVICES = ("auth", "file", "sync")
DEFAULT_PORTS = {"auth": 50051, "file": 50052, "sync": 50053}

_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
               "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "t": 1000**4,
               "tb": 1000**4, "tib": 1024**4}
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_size(text: str) -> int:
    """Bytes from '2GiB', '500M', '1048576'."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"{text!r} is not a size (examples: 2GiB, 500MB, 1048576)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def parse_duration(text: str) -> int:
    """Seconds from '90d', '24h', '15m', '60s', '60'."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdSMHD]?)\s*", text)
    if not match:
        raise ValueError(f"{text!r} is not a duration (examples: 60s, 15m, 24h, 90d, 3600)")
    return int(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{text!r} is not true or false")


def parse_port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise ValueError(f"{port} is not a TCP port (0-65535)")
    return port


def parse_names(text: str) -> tuple[str, ...]:
    """Comma-separated host names or addresses: 'music.example.org, 192.168.1.20'."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    for name in names:
        if not re.fullmatch(r"[A-Za-z0-9.:*-]+", name):
            raise ValueError(f"{name!r} is not a host name or IP address")
    return names


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"{text!r} is not one of {', '.join(allowed)}")
        return text
    return parse


@dataclass(frozen=True)
class Option:
    """One setting: its field, environment variable, flag, parser and help."""

    field: str
    env: str
    parse: Callable[[str], Any]
    help: str
    metavar: str = "VALUE"


OPTIONS: tuple[Option, ...] = (
    Option("data_dir", "DATA_DIR", Path, "folder for the database, blobs and generated keys "
           "(default ./data)", "DIR"),
    Option("database_url", "DATABASE_URL", str, "SQLite file path or sqlite:// URL of a file "
           "(default DATA_DIR/musicsync.db), or postgresql://USER:PASSWORD@HOST:5432/DB for "
           "several replicas sharing PostgreSQL (install musicsync[postgresql])", "URL"),
    Option("host", "HOST", str, "address to listen on (default 0.0.0.0)", "ADDR"),
    Option("auth_port", "AUTH_PORT", parse_port, "auth port (default 50051)", "N"),
    Option("file_port", "FILE_PORT", parse_port, "file port (default 50052)", "N"),
    Option("sync_port", "SYNC_PORT", parse_port, "sync port (default 50053)", "N"),
    Option("port", "PORT", parse_port, "port of a single service (`serve auth|file|sync`; "
           "default that service's port)", "N"),
    Option("security_key", "SECURITY_KEY", str, "registration key phones must send to "
           "Register (default: generated once, kept in DATA_DIR/security_key)", "KEY"),
    Option("secret_key", "SECRET_KEY", str, "key that signs access tokens (default: "
           "generated once, kept in DATA_DIR/secret_key)", "KEY"),
    Option("registration", "REGISTRATION", _choice("open", "closed"),
           "`open` lets phones register with the key; `closed` leaves account creation to "
           "`musicsync user add` (default open)", "open|closed"),
    Option("anonymous_user", "ANONYMOUS_USER", str, "let File/Sync calls without a token act "
           "as this existing user, for old app versions (default off)", "NAME"),
    Option("access_token_ttl", "ACCESS_TOKEN_TTL", parse_duration,
           "lifetime of access tokens (default 1h)", "DURATION"),
    Option("refresh_token_ttl", "REFRESH_TOKEN_TTL", parse_duration,
           "lifetime of refresh tokens (default 30d)", "DURATION"),
    Option("argon2_time_cost", "ARGON2_TIME_COST", int, "argon2id iterations (default 3)", "N"),
    Option("argon2_memory_kib", "ARGON2_MEMORY_KIB", int,
           "argon2id memory per hash in KiB (default 65536)", "KIB"),
    Option("argon2_parallelism", "ARGON2_PARALLELISM", int,
           "argon2id lanes (default 4)", "N"),
    Option("max_file_size", "MAX_FILE_SIZE", parse_size,
           "largest file accepted (default 2GiB)", "SIZE"),
    Option("user_quota", "USER_QUOTA", parse_size,
           "storage each user may fill, unfinished uploads included; 0 for no limit "
           "(default 50GiB)", "SIZE"),
    Option("upload_idle_timeout", "UPLOAD_IDLE_TIMEOUT", parse_duration,
           "end an Upload or Diff stream that sends nothing this long (default 60s)", "DURATION"),
    Option("upload_session_ttl", "UPLOAD_SESSION_TTL", parse_duration,
           "drop unfinished resumable uploads after (default 24h)", "DURATION"),
    Option("tombstone_retention", "TOMBSTONE_RETENTION", parse_duration,
           "keep deletions for devices seen within (default 90d)", "DURATION"),
    Option("s3_endpoint", "S3_ENDPOINT", str, "host:port of MinIO/S3; set to store blobs "
           "there instead of DATA_DIR/blobs", "HOST:PORT"),
    Option("s3_access_key", "S3_ACCESS_KEY", str, "S3 access key", "KEY"),
    Option("s3_secret_key", "S3_SECRET_KEY", str, "S3 secret key", "KEY"),
    Option("s3_bucket", "S3_BUCKET", str, "S3 bucket (default music)", "NAME"),
    Option("s3_use_ssl", "S3_USE_SSL", parse_bool, "talk HTTPS to S3 (default false)",
           "BOOL"),
    Option("storage_timeout", "STORAGE_TIMEOUT", parse_duration,
           "time limit of one blob-store operation (default 30s)", "DURATION"),
    Option("metrics_port", "METRICS_PORT", parse_port,
           "serve Prometheus metrics on this port (default off)", "N"),
    Option("shutdown_grace", "SHUTDOWN_GRACE", parse_duration,
           "on SIGTERM, let running calls finish for up to (default 10s)", "DURATION"),
    Option("log_level", "LOG_LEVEL", _choice("DEBUG", "INFO", "WARNING", "ERROR"),
           "log level (default INFO)", "LEVEL"),
    Option("tls", "TLS", _choice("off", "self-signed"),
           "`self-signed`: serve TLS with a key and certificate made in DATA_DIR/tls on the "
           "first start (its SHA-256 fingerprint is logged, for pinning); default off, or "
           "on with TLS_CERT and TLS_KEY", "off|self-signed"),
    Option("tls_cert", "TLS_CERT", Path, "serve TLS on every port with this PEM certificate "
           "(chain); reloaded when the file changes", "FILE"),
    Option("tls_key", "TLS_KEY", Path, "the PEM private key of TLS_CERT; reloaded when the "
           "file changes", "FILE"),
    Option("tls_hostnames", "TLS_HOSTNAMES", parse_names, "more names and addresses for the "
           "self-signed certificate, comma-separated (it always has localhost, 127.0.0.1, "
           "::1 and the machine's host name)", "NAMES"),
    Option("metrics_host", "METRICS_HOST", str, "address the metrics endpoint listens on; "
           "it has no authentication (default 127.0.0.1: this machine only)", "ADDR"),
    Option("trusted_proxies", "TRUSTED_PROXIES", parse_networks, "addresses or networks of "
           "proxies whose x-forwarded-for names the client, for sign-in throttling, "
           "comma-separated (default: none; the scale deployments set their proxy's)",
           "CIDRS"),
    # Secrets from files (Docker/Kubernetes secrets): flags show in `ps`, files do not.
    Option("secret_key_file", "SECRET_KEY_FILE", Path,
           "read SECRET_KEY from this file instead", "FILE"),
    Option("security_key_file", "SECURITY_KEY_FILE", Path,
           "read SECURITY_KEY from this file instead", "FILE"),
    Option("s3_access_key_file", "S3_ACCESS_KEY_FILE", Path,
           "read S3_ACCESS_KEY from this file instead", "FILE"),
    Option("s3_secret_key_file", "S3_SECRET_KEY_FILE", Path,
           "read S3_SECRET_KEY from this file instead", "FILE"),
    Option("database_url_file", "DATABASE_URL_FILE", Path,
           "read DATABASE_URL (it may hold a password) from this file instead", "FILE"),
)

# The secrets that may come from a file: field -> field of the file's path.
SECRET_FILES = {"secret_key": "secret_key_file", "security_key": "security_key_file",
                "s3_access_key": "s3_access_key_file", "s3_secret_key": "s3_secret_key_file",
                "database_url": "database_url_file"}


@dataclass(frozen=True)
class Settings:
    """Everything the server is configured with; validated when built."""

    data_dir: Path = Path("data")
    database_url: str | None = None
    host: str = "0.0.0.0"
    auth_port: int = DEFAULT_PORTS["auth"]
    file_port: int = DEFAULT_PORTS["file"]
    sync_port: int = DEFAULT_PORTS["sync"]
    port: int | None = None
    security_key: str | None = None
    secret_key: str | None = None
    registration: str = "open"
    anonymous_user: str | None = None
    access_token_ttl: int = 3600
    refresh_token_ttl: int = 30 * 86400
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4
    max_file_size: int = 2 * 1024**3
    user_quota: int = 50 * 1024**3  # a home server's disk is shared: raise it, or 0
    upload_idle_timeout: int = 60
    upload_session_ttl: int = 24 * 3600
    tombstone_retention: int = 90 * 86400
    s3_endpoint: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_bucket: str = "music"
    s3_use_ssl: bool = False
    storage_timeout: int = 30
    metrics_port: int | None = None
    shutdown_grace: int = 10
    log_level: str = "INFO"
    login_max_failures: int = 5
    login_window: int = 15 * 60
    tls: str = "off"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_hostnames: tuple[str, ...] = ()
    trusted_proxies: tuple = ()
    metrics_host: str = "127.0.0.1"
    secret_key_file: Path | None = None
    security_key_file: Path | None = None
    s3_access_key_file: Path | None = None
    s3_secret_key_file: Path | None = None
    database_url_file: Path | None = None
    # Not an operator option: Watch heartbeats below it are refused (tests lower it).
    watch_min_heartbeat: int = 10

    def __post_init__(self) -> None:
        self._read_secret_files()
        if self.access_token_ttl < 60:
            raise ConfigError("ACCESS_TOKEN_TTL must be at least 60 seconds")
        if self.refresh_token_ttl < self.access_token_ttl:
            raise ConfigError("REFRESH_TOKEN_TTL must be at least ACCESS_TOKEN_TTL")
        if self.max_file_size <= 0:
            raise ConfigError("MAX_FILE_SIZE must be positive")
        if self.user_quota < 0:
            raise ConfigError("USER_QUOTA must be 0 (no limit) or positive")
        if self.upload_idle_timeout <= 0 or self.storage_timeout <= 0:
            raise ConfigError("UPLOAD_IDLE_TIMEOUT and STORAGE_TIMEOUT must be positive")
        if self.argon2_memory_kib < 8 * self.argon2_parallelism:
            raise ConfigError("ARGON2_MEMORY_KIB must be at least 8 x ARGON2_PARALLELISM")
        if self.s3_endpoint and not (self.s3_access_key and self.s3_secret_key):
            raise ConfigError("S3_ENDPOINT needs S3_ACCESS_KEY and S3_SECRET_KEY")
        for name in ("security_key", "secret_key", "anonymous_user", "s3_endpoint"):
            if getattr(self, name) == "":
                object.__setattr__(self, name, None)
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("TLS_CERT and TLS_KEY go together: set both, or neither")
        if self.tls_cert is not None and self.tls != "off":
            raise ConfigError("TLS=self-signed and TLS_CERT exclude each other: the server "
                              "either makes its own certificate or serves yours")
        self._refuse_weak_keys()

    def _read_secret_files(self) -> None:
        """SECRET_KEY_FILE and the like: the file's content, without the line end."""
        for field, file_field in SECRET_FILES.items():
            path = getattr(self, file_field)
            if path is None:
                continue
            variable = file_field.upper()
            if getattr(self, field):
                raise ConfigError(f"set {field.upper()} or {variable}, not both")
            try:
                value = Path(path).expanduser().read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or "not UTF-8 text"
                raise ConfigError(f"{variable}: cannot read {path}: {reason}") from None
            if not value:
                raise ConfigError(f"{variable}: {path} is empty")
            object.__setattr__(self, field, value)
            object.__setattr__(self, file_field, None)  # read once; replace() keeps the value

    def _refuse_weak_keys(self) -> None:
        """A guessable signing or registration key is a configuration error, not a warning."""
        if self.secret_key is not None:
            reason = signing_key_weakness(self.secret_key)
            if reason:
                raise ConfigError(
                    f"SECRET_KEY {reason}. It signs access tokens: from one token, a guessable "
                    "key is found offline and tokens of any user forged. Generate one with "
                    f"`{GENERATE_HINT}`, or unset it to have one generated in DATA_DIR")
        if self.security_key is not None:
            reason = registration_key_weakness(self.security_key)
            if reason:
                raise ConfigError(
                    f"SECURITY_KEY {reason}. Anyone who guesses it can create accounts while "
                    "registration is open. Generate one with "
                    f"`{GENERATE_HINT}`, or unset it to have one generated in DATA_DIR")

    @classmethod
    def load(cls, env: Mapping[str, str], flags: Mapping[str, Any] | None = None) -> Settings:
        """Settings from environment variables, overridden by flags that are not None."""
        values: dict[str, Any] = {}
        for option in OPTIONS:
            raw = env.get(option.env)
            if not raw:  # unset and empty mean the same: compose passes empty strings
                continue
            try:
                values[option.field] = option.parse(raw)
            except ValueError as exc:
                raise ConfigError(f"{option.env}: {exc}") from None
        for field, value in (flags or {}).items():
            if value is not None:
                values[field] = value
        return cls(**values)

    def database_path_or_url(self) -> str:
        return self.database_url or str(self.data_dir / "musicsync.db")

    @property
    def tls_mode(self) -> str:
        """'off' (plaintext), 'files' (TLS_CERT and TLS_KEY) or 'self-signed'."""
        return "files" if self.tls_cert is not None else self.tls

    def port_of(self, service: str) -> int:
        return {"auth": self.auth_port, "file": self.file_port, "sync": self.sync_port}[service]

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

