"""Bounds on each account's open streams, and on Watch heartbeats (issue 12, finding 4)."""

from __future__ import annotations

import grpc
import pytest

from musicsync.config import Settings
from musicsync.errors import ResourceExhausted
from musicsync.proto import file_pb2, sync_pb2
from musicsync.server import App
from musicsync.services.streams import (
    MAX_UPLOADS_PER_USER,
    MAX_WATCHES_PER_USER,
    StreamLimits,
)

from .conftest import make_settings
from .helpers import Client, status_of, wait_until
from .test_file_limits import signed_in
from .transfer import stream_status, upload, wav_bytes


async def user_id_of(app: App, client: Client) -> int:
    return (await app.accounts.authenticate(f"Bearer {client.token}")).user_id


async def test_an_accounts_watches_beyond_the_bound_are_refused_naming_it(tmp_path):
    async with App(make_settings(tmp_path)) as app, await signed_in(app) as client:
        user_id = await user_id_of(app, client)
        watches = [client.sync.Watch(sync_pb2.WatchRequest(), metadata=client.meta())
                   for _ in range(MAX_WATCHES_PER_USER)]
        await wait_until(lambda: app.streams.open_streams(user_id, "Watch")
                         == MAX_WATCHES_PER_USER, "every Watch to be open")
        code, message = await stream_status(
            client.sync.Watch(sync_pb2.WatchRequest(), metadata=client.meta()))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"({MAX_WATCHES_PER_USER})" in message and "Watch" in message
        watches.pop().cancel()
        await wait_until(lambda: app.streams.open_streams(user_id, "Watch")
                         < MAX_WATCHES_PER_USER, "a Watch to end")
        again = client.sync.Watch(sync_pb2.WatchRequest(heartbeat_seconds=1),
                                  metadata=client.meta())
        assert (await again.read()).HasField("heartbeat")
        for watch in [*watches, again]:
            watch.cancel()


async def test_idle_upload_streams_beyond_the_bound_are_refused_and_others_calls_work(tmp_path):
    """1,100 idle Upload streams of one user once made every other call UNAVAILABLE."""
    async with App(make_settings(tmp_path)) as app, await signed_in(app) as client:
        user_id = await user_id_of(app, client)
        idle = []
        for _ in range(MAX_UPLOADS_PER_USER):
            call = client.file.Upload(metadata=client.meta())
            await call.write(file_pb2.UploadRequest(metadata=file_pb2.FileMetadata(filename="x")))
            idle.append(call)
        await wait_until(lambda: app.streams.open_streams(user_id, "Upload")
                         == MAX_UPLOADS_PER_USER, "every Upload to be open")
        code, message = await status_of(upload(client, wav_bytes(0.1)))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"({MAX_UPLOADS_PER_USER})" in message and "Upload" in message
        listed = await client.sync.ListFiles(sync_pb2.ListFilesRequest(), metadata=client.meta())
        assert list(listed.files) == []
        for call in idle:
            call.cancel()
        await wait_until(lambda: app.streams.open_streams(user_id, "Upload") == 0,
                         "the idle Uploads to end")
        assert (await upload(client, wav_bytes(0.1))).hash


def test_stream_limits_count_each_account_and_kind_apart_and_free_a_place_at_the_end():
    limits = StreamLimits({"Download": 2, "Watch": 1})
    with limits.hold(1, "Download"), limits.hold(1, "Download"), limits.hold(1, "Watch"), \
            limits.hold(2, "Download"):
        with pytest.raises(ResourceExhausted, match=r"2 Download streams open.*\(2\)"):
            with limits.hold(1, "Download"):
                pass
        assert limits.open_streams(1, "Download") == 2
    with limits.hold(1, "Download"):
        assert limits.open_streams(1, "Download") == 1
    assert limits.open_streams(1, "Download") == 0


@pytest.mark.parametrize("heartbeat", [1, 9])
async def test_watch_heartbeats_under_10_seconds_are_refused(tmp_path, heartbeat):
    """3,000 Watches at a 1 s heartbeat once kept the server's CPU busy."""
    async with App(make_settings(tmp_path, watch_min_heartbeat=10)) as app, \
            await signed_in(app) as client:
        code, message = await stream_status(client.sync.Watch(
            sync_pb2.WatchRequest(heartbeat_seconds=heartbeat), metadata=client.meta()))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert "between 10 and 3600" in message
        watch = client.sync.Watch(sync_pb2.WatchRequest(heartbeat_seconds=10),
                                  metadata=client.meta())
        user_id = await user_id_of(app, client)
        await wait_until(lambda: app.streams.open_streams(user_id, "Watch") == 1,
                         "the Watch at 10 s to be open")
        watch.cancel()


def test_the_server_refuses_watch_heartbeats_under_10_seconds_by_default():
    assert Settings().watch_min_heartbeat == 10
