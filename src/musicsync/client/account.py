"""`musicsync login`, `logout` and `whoami`."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

from .commands import FAILED, OK, UsageError
from .credentials import Credentials, CredentialsStore, new_device, server_address
from .errors import NotSignedIn, ServerUnavailable


def _ask(args) -> tuple[str, str]:
    username = args.user
    if args.password_stdin:
        if not username:
            raise UsageError("--password-stdin needs --user NAME")
        return username, sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask for the password on; use --password-stdin")
    if not username:
        username = input("user: ").strip()
    return username, getpass.getpass(f"password for {username}: ")


async def login(args) -> int:
    from .api import Client

    server = server_address(args.server)
    root = None
    if args.tls_root:
        try:
            root = Path(args.tls_root).read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {args.tls_root}: {exc.strerror}") from None
    username, password = _ask(args)
    if not username or not password:
        raise UsageError("a user name and a password are needed")
    tls = args.tls or root is not None
    async with Client(server, tls=tls, root_certificates=root, server_name=args.tls_name) as client:
        try:
            tokens = await client.login(username, password)
        except NotSignedIn as exc:
            print(f"musicsync: {exc.message}", file=sys.stderr)
            return FAILED
    store = CredentialsStore()
    try:
        previous = store.load_credentials()
    except NotSignedIn:  # a damaged file: this sign-in replaces it
        previous = None
    device_id, device_name = new_device()
    if previous is not None and previous.server == server and previous.username == username:
        device_id, device_name = previous.device_id, previous.device_name  # same device
    store.save(Credentials(
        server=server, username=username, tokens=tokens, device_id=device_id,
        device_name=device_name, tls=tls,
        tls_root=str(Path(args.tls_root).resolve()) if args.tls_root else None,
        tls_name=args.tls_name))
    print(f"signed in as {username} at {server}{' (TLS)' if tls else ''}; "
          f"the sign-in is kept in {store.path}")
    return OK


async def logout(args) -> int:
    from .credentials import open_client

    store = CredentialsStore()
    credentials = store.load_credentials()
    if credentials is None:
        print("not signed in")
        return OK
    try:
        async with open_client(store) as client:
            await client.logout()
        ended = "ended on the server and "
    except (ServerUnavailable, NotSignedIn) as exc:
        print(f"musicsync: could not end the sign-in on the server ({exc.message})",
              file=sys.stderr)
        ended = ""
    store.forget()
    print(f"signed out of {credentials.where()}: {ended}forgotten here")
    return OK


def whoami(args) -> int:
    credentials = CredentialsStore().load_credentials()
    if credentials is None:
        print("not signed in: run `musicsync login SERVER`", file=sys.stderr)
        return FAILED
    print(f"{credentials.username} at {credentials.where()}")
    return OK
