"""The sign-in the desktop commands share: server, TLS choice, user and tokens, kept in
config_dir()/credentials.json (mode 0600, folder 0700), replaced atomically."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from . import filelock
from .dirs import config_dir
from .errors import NotSignedIn
from .tokens import Tokens

FILE_NAME = "credentials.json"
LOCK_NAME = "credentials.lock"


@dataclass(frozen=True)
class Credentials:
    """Where and as whom this computer is signed in."""

    server: str
    username: str
    tokens: Tokens
    device_id: str
    device_name: str
    tls: bool = False
    tls_root: str | None = None  # PEM file of the certificate to trust
    tls_name: str | None = None  # name the certificate holds, if not the server's host

    def where(self) -> str:
        return f"{self.server}{' (TLS)' if self.tls or self.tls_root else ''}"


def server_address(text: str) -> str:
    """"host" or "host:port" (an IPv6 address in brackets), as given.

    Without a port each service is reached on its usual one (connection.SERVICE_PORTS:
    auth 50051, file 50052, sync 50053), which works with a one-process server and with
    one split into a process per service; with a port, every service is reached there.
    """
    return text.strip()


def new_device() -> tuple[str, str]:
    """A stable id for this installation and a name a person recognises."""
    return uuid.uuid4().hex, socket.gethostname() or "desktop"


class CredentialsStore:
    """The credentials file; also the SharedTokens of every client the commands open."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or config_dir()
        self.path = self.folder / FILE_NAME

    def load_credentials(self) -> Credentials | None:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            raw["tokens"] = Tokens(**raw["tokens"])
            return Credentials(**raw)
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, KeyError) as exc:
            raise NotSignedIn(f"{self.path} is damaged ({exc}); run `musicsync login SERVER` "
                              "again") from None

    def require(self) -> Credentials:
        credentials = self.load_credentials()
        if credentials is None:
            raise NotSignedIn("not signed in: run `musicsync login SERVER` first")
        return credentials

    def save(self, credentials: Credentials) -> None:
        """Writes the file atomically, readable by its owner only."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        data = json.dumps(asdict(credentials), indent=2).encode("utf-8")
        # mkstemp makes the file 0600 whatever the umask: the tokens are never readable by others.
        fd, temp = tempfile.mkstemp(dir=self.folder, prefix=".credentials.", suffix=".tmp")
        try:
            os.write(fd, data)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(temp)
            raise
        os.close(fd)
        os.replace(temp, self.path)

    def forget(self) -> bool:
        """Removes the file; True if there was one."""
        try:
            self.path.unlink()
            return True
        except FileNotFoundError:
            return False

    # -- SharedTokens: another musicsync process may refresh at the same time -------------

    def exclusive(self) -> contextlib.AbstractContextManager[None]:
        return filelock.exclusive(self.folder / LOCK_NAME)

    def load(self) -> Tokens | None:
        credentials = self.load_credentials()
        return credentials.tokens if credentials else None

    def save_tokens(self, tokens: Tokens) -> None:
        """on_tokens of the commands' clients: keeps a refreshed pair."""
        credentials = self.load_credentials()
        if credentials is not None:
            self.save(replace(credentials, tokens=tokens))


def open_client(store: CredentialsStore | None = None):
    """A Client signed in as the credentials file says (NotSignedIn if there are none).

    For the desktop commands (and `sync`): refreshed tokens are written back to the
    file, and processes running side by side refresh one at a time.
    """
    from .api import Client
    from .models import Device

    store = store or CredentialsStore()
    credentials = store.require()
    root = None
    if credentials.tls_root:
        try:
            root = Path(credentials.tls_root).read_bytes()
        except OSError as exc:
            raise NotSignedIn(f"cannot read the TLS certificate {credentials.tls_root} "
                              f"({exc.strerror}); run `musicsync login SERVER` again") from None
    return Client(credentials.server, tls=credentials.tls, root_certificates=root,
                  server_name=credentials.tls_name, tokens=credentials.tokens,
                  on_tokens=store.save_tokens,
                  device=Device(credentials.device_id, credentials.device_name),
                  shared_tokens=store)
