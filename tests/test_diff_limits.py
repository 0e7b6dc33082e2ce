"""Diff's bounds: the hash cap and malformed hashes in big requests (the device hears why
while still sending), Diffs at once per user, idle streams; and big answers that span
several comparison runs."""

from __future__ import annotations

import asyncio
import hashlib
import os
from contextlib import AsyncExitStack

import grpc
import pytest

from musicsync.sync.diff import (MAX_DIFF_HASHES, MAX_DIFFS_PER_USER, MAX_DIFFS_WAITING, RUN_HASHES,
                            DiffSlots, PackedHashes)
from musicsync.errors import ResourceExhausted
from musicsync.proto import sync_pb2
from musicsync.server import App

from .conftest import make_settings
from .helpers import Client, status_of
from .sync_device import DIFF_BATCH, run_diff
from .test_sync import add_song, delete_song, fill_library, register


def random_hashes(count: int) -> list[bytes]:
    blob = os.urandom(32 * count)
    return [blob[i:i + 32] for i in range(0, len(blob), 32)]


async def test_a_diff_naming_more_hashes_than_the_cap_is_refused_with_the_cap_named(
        client, alice):
    hashes = random_hashes(MAX_DIFF_HASHES + DIFF_BATCH)

    code, message = await status_of(run_diff(client, hashes))

    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"at most {MAX_DIFF_HASHES} hashes" in message and "ListFiles" in message


async def test_a_malformed_hash_ahead_of_megabytes_still_in_flight_gets_invalid_argument(
        client, alice):
    # The server refuses at the first message while the device is still sending the other
    # nine (15 MB): the device must hear why, not a reset stream (which it saw as INTERNAL).
    for _ in range(3):
        hashes = [b"\x01" * 31] + random_hashes(9 * DIFF_BATCH)
        code, message = await status_of(run_diff(client, hashes))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert "hash #0" in message and "31 bytes" in message


async def test_a_diff_refused_for_its_token_while_the_device_still_sends_hears_why(
        client, alice):
    # Refused before its first message is read, with 15 MB still to come: the device must
    # get UNAUTHENTICATED (and refresh its token), not the INTERNAL of a reset stream.
    for _ in range(5):
        code, _ = await status_of(run_diff(client, random_hashes(10 * DIFF_BATCH),
                                           token="not a token"))
        assert code == grpc.StatusCode.UNAUTHENTICATED


async def test_a_diff_spanning_several_runs_names_each_unknown_hash_once_and_in_order(
        app, client, alice):
    library = await fill_library(app, "alice", 1000)
    gone = [bytes.fromhex(await add_song(client, b"gone %d" % i)) for i in range(3)]
    cursor = (await run_diff(client, []))[3]
    for sha in gone:
        await delete_song(client, sha.hex())
    unknown = random_hashes(2 * RUN_HASHES + 500)
    # Repeats across runs, songs the library has, songs deleted after the cursor.
    held = unknown + unknown[:700] + library[10:] + gone + unknown[-300:]

    to_upload, to_download, to_delete, _, _ = await run_diff(client, held, cursor)

    assert to_upload == sorted(set(unknown))
    assert to_delete == sorted(gone)
    assert sorted(e.hash for e in to_download) == sorted(sha.hex() for sha in library[:10])


async def test_an_account_runs_two_diffs_at_once_queues_eight_and_refuses_more():
    # The slots themselves: over the wire, which Diff arrives last is not something a
    # test can see.
    slots = DiffSlots()
    async with AsyncExitStack() as running:
        for _ in range(MAX_DIFFS_PER_USER):
            await running.enter_async_context(slots.hold(user_id=1))
        third_started = asyncio.Event()

        async def third():
            async with slots.hold(user_id=1):
                third_started.set()

        async with asyncio.TaskGroup() as tasks:
            queued = [tasks.create_task(third()) for _ in range(MAX_DIFFS_WAITING)]
            await asyncio.sleep(0)  # one turn of the loop: each queued one reaches its wait
            assert not third_started.is_set()
            with pytest.raises(ResourceExhausted, match=f"at most {MAX_DIFFS_PER_USER} run"):
                async with slots.hold(user_id=1):
                    pass
            async with slots.hold(user_id=2):  # another account is not held up
                pass
            await running.aclose()  # the running ones end: the queued ones go
        assert third_started.is_set() and all(task.done() for task in queued)
    async with slots.hold(user_id=1):  # nothing is left held
        pass


async def test_a_diff_that_stops_sending_is_ended_after_the_idle_limit(tmp_path):
    async def stalled():
        yield sync_pb2.DiffRequest(hashes=random_hashes(1000))
        await asyncio.Event().wait()  # neither sends more nor half-closes

    async with App(make_settings(tmp_path / "data", upload_idle_timeout=1)) as app, \
            Client(app) as client:
        client.token = await register(client, "alice")
        stream = client.sync.Diff(stalled(), metadata=client.meta())
        code, message = await status_of(_drain(stream))

    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "sent nothing for 1 seconds" in message


async def _drain(stream) -> list:
    return [message async for message in stream]


def test_packed_hash_lists_slice_like_lists():
    hashes = sorted(hashlib.sha256(b"%d" % i).digest() for i in range(10))
    packed = PackedHashes(b"".join(hashes))
    assert len(packed) == 10 and list(packed) == hashes
    assert packed[3:7] == hashes[3:7] and packed[8:50] == hashes[8:] and packed[5:2] == []
    assert packed[-1] == hashes[-1]


async def test_a_full_diff_of_a_large_library_comes_in_messages_a_client_accepts(
        app, client, alice):
    library = await fill_library(app, "alice", 20_000, filename_length=120)
    sizes, names = [], []
    async for response in client.sync.Diff(iter(()), metadata=client.meta()):
        sizes.append(response.ByteSize())
        names += [entry.hash for entry in response.download]
    assert sorted(names) == sorted(sha.hex() for sha in library)
    assert len(sizes) >= 3 and max(sizes) < 2 * 1024 * 1024
