"""Many devices of one user changing the library at once all converge through Diff."""

from __future__ import annotations

import asyncio
import random

import pytest
from google.protobuf import empty_pb2

from musicsync.proto import auth_pb2, sync_pb2

from .conftest import PASSWORD, REGISTRATION_KEY
from .sync_device import Device


async def register(client, username: str) -> str:
    response = await client.auth.Register(auth_pb2.RegisterRequest(
        username=username, password=PASSWORD, security_key=REGISTRATION_KEY))
    return response.token


async def library_of(device: Device) -> set[str]:
    listing = await device.client.sync.GetSync(empty_pb2.Empty(), metadata=device.client.meta())
    return {f.hash for f in listing.files}


async def whole_feed(device: Device) -> list[sync_pb2.ChangeEvent]:
    events, since = [], 0
    while True:
        page = await device.client.sync.Changes(sync_pb2.ChangesRequest(since=since, limit=7),
                                                metadata=device.client.meta())
        events += page.events
        since = page.cursor
        if not page.has_more:
            return events


def replay(events) -> set[str]:
    library: set[str] = set()
    for event in events:
        if event.kind == sync_pb2.CHANGE_KIND_DELETED:
            library.discard(event.hash)
        else:
            library.add(event.hash)
    return library


async def watch_until(device: Device, cursor: int, seen: list) -> None:
    """Collects Watch events until the feed reaches ``cursor``."""
    stream = device.client.sync.Watch(sync_pb2.WatchRequest(heartbeat_seconds=1),
                                      metadata=device.client.meta())
    async for message in stream:
        if message.HasField("event"):
            seen.append(message.event)
        if message.cursor >= cursor:
            stream.cancel()
            return


async def churn(device: Device, peers: list[Device], rng: random.Random, gone: list[str],
                steps: int) -> None:
    """What a user does on one device: add songs, delete some, put deleted ones back, sync."""
    for step in range(steps):
        action = rng.random()
        if action < 0.45 or not device.songs:
            await device.add(f"{device.name}/{step}".encode())
        elif action < 0.7:
            sha = rng.choice(sorted(device.songs))
            gone.append(sha)
            await device.remove(sha)
        elif action < 0.8 and gone:
            sha = rng.choice(gone)
            if sha not in device.songs:
                data = next((d.songs[sha] for d in peers if sha in d.songs), None)
                if data is not None:
                    await device.put(data)
        else:
            await device.sync()
        await asyncio.sleep(0)


async def converge(devices: list[Device]) -> set[str]:
    """Quiet now: every device syncs, twice round, and must then hold the same library."""
    for _ in range(2):
        for device in devices:
            await device.sync()
    libraries = [set(device.songs) for device in devices]
    assert all(library == libraries[0] for library in libraries)
    return libraries[0]


@pytest.mark.parametrize("count", [2, 10])
async def test_devices_changing_the_library_concurrently_converge_with_every_event_once(
        app, client, count):
    token = await register(client, "alice")
    devices = [Device(app, token, f"dev{i}") for i in range(count)]
    gone: list[str] = []
    try:
        for device in devices:  # a shared start: every device holds the same songs
            await device.add(f"seed/{device.name}".encode())
        await converge(devices)

        rng = random.Random(count)
        # A task group, not gather: if one device fails the others are cancelled and
        # awaited here, before their channels close, so no call is left dangling.
        async with asyncio.TaskGroup() as group:
            for device in devices:
                group.create_task(churn(device, devices, random.Random(rng.random()), gone, 12))
        final = await converge(devices)

        server = await library_of(devices[0])
        assert final == server
        assert gone and any(sha not in server for sha in gone)  # deletions took part
        feed = await whole_feed(devices[0])
        assert [event.seq for event in feed] == list(range(1, len(feed) + 1))
        assert replay(feed) == server

        watched: list = []
        await asyncio.wait_for(watch_until(devices[-1], feed[-1].seq, watched), 30)
        assert [e.seq for e in watched] == [e.seq for e in feed]
    finally:
        for device in devices:
            await device.close()


async def test_device_offline_during_a_delete_deletes_locally_instead_of_uploading(app, client):
    token = await register(client, "alice")
    phone, desktop = Device(app, token, "phone"), Device(app, token, "desktop")
    try:
        kept = await phone.add(b"kept")
        doomed = await phone.add(b"doomed")
        await desktop.sync()
        assert set(desktop.songs) == {kept, doomed}

        await phone.remove(doomed)  # the desktop is switched off meanwhile
        uploaded, downloaded, deleted = await desktop.sync()

        assert (uploaded, downloaded, deleted) == (0, 0, 1)
        assert set(desktop.songs) == {kept}
        assert await library_of(phone) == {kept}
    finally:
        await phone.close()
        await desktop.close()


async def test_two_users_devices_converge_on_separate_libraries(app, client):
    alice_token, bob_token = await register(client, "alice"), await register(client, "bob")
    alice = [Device(app, alice_token, f"a{i}") for i in range(2)]
    bob = [Device(app, bob_token, f"b{i}") for i in range(2)]
    try:
        shared = await alice[0].add(b"same song")
        await bob[0].put(alice[0].songs[shared])
        await alice[1].add(b"alice only")
        await bob[1].add(b"bob only")
        await bob[0].remove(shared)
        alice_library = await converge(alice)
        bob_library = await converge(bob)
        assert shared in alice_library and shared not in bob_library
        assert alice_library.isdisjoint(bob_library)
    finally:
        for device in alice + bob:
            await device.close()
