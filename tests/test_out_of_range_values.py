"""Numbers outside what the database holds: a clean status, never INTERNAL, nothing written."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import sqlite3

import grpc
import jwt
import pytest
from google.protobuf import empty_pb2

from musicsync.proto import sync_pb2

from .helpers import status_of


def token(text: bytes) -> str:
    return base64.urlsafe_b64encode(text).decode()


@pytest.mark.parametrize("raw", [
    b"after:99999999999999999999", b"after:9223372036854775808", b"after:-5", b"after:+5",
    b"after: 5", b"after:0005", b"after:1_000", b"after:\xd9\xa3", b"after:", b"before:5"])
async def test_page_token_naming_an_impossible_id_is_invalid_argument(client, alice, raw):
    code, message = await status_of(client.sync.ListFiles(
        sync_pb2.ListFilesRequest(page_token=token(raw)), metadata=client.meta()))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in message


async def test_page_token_longer_than_the_limit_is_invalid_argument(client, alice):
    code, _ = await status_of(client.sync.ListFiles(
        sync_pb2.ListFilesRequest(page_token="A" * 100_000), metadata=client.meta()))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("since", [2**63 - 1, 2**63, 2**64 - 1])
async def test_watch_from_a_cursor_beyond_the_feed_fails_before_it_is_recorded(
        app, client, alice, since, caplog):
    caplog.set_level(logging.ERROR)
    device = sync_pb2.Device(id="d1", name="phone")
    call = client.sync.Watch(sync_pb2.WatchRequest(since=since, device=device),
                             metadata=client.meta())
    code, message = await status_of(_drain(call))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "cursor" in message
    code, _ = await status_of(client.sync.Changes(
        sync_pb2.ChangesRequest(since=since, device=device), metadata=client.meta()))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    code, _ = await status_of(client.sync.Ack(
        sync_pb2.AckRequest(cursor=since, device=device), metadata=client.meta()))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    # The device was not remembered with that cursor.
    with sqlite3.connect(app.settings.data_dir / "musicsync.db") as db:
        assert db.execute("SELECT cursor FROM devices WHERE device_id = 'd1'").fetchall() == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def _drain(call):
    async for _ in call:
        pass


def _forged(app, alice, **changes) -> str:
    claims = jwt.decode(alice.token, options={"verify_signature": False})
    claims.update(changes)
    header = {"alg": "HS256", "typ": "JWT"}
    signing_input = (_b64(json.dumps(header).encode()) + "." +
                     _b64(json.dumps(claims).encode()))  # json.dumps writes Infinity as is
    signature = hmac.new(app.settings.secret_key.encode(), signing_input.encode(),
                         hashlib.sha256).digest()
    return signing_input + "." + _b64(signature)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize("changes", [
    {"sub": "1" * 30}, {"sub": "-1"}, {"sub": "0"}, {"exp": float("inf")},
    {"exp": float("nan")}, {"iat": float("-inf")}, {"exp": 2**70}, {"iat": -(2**70)}])
async def test_validly_signed_token_with_out_of_range_claims_is_unauthenticated(
        app, client, alice, changes, caplog):
    caplog.set_level(logging.ERROR)
    forged = _forged(app, alice, **changes)
    assert (await status_of(client.sync.GetSync(empty_pb2.Empty(), metadata=client.meta())))[0] \
        == grpc.StatusCode.OK
    code, message = await status_of(client.sync.GetSync(empty_pb2.Empty(),
                                                        metadata=client.meta(forged)))
    assert code == grpc.StatusCode.UNAUTHENTICATED, message
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
