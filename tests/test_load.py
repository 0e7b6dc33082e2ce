"""Many devices at once, against real server processes, in both layouts.

20 devices of 4 users upload, download, delete and Diff at once (bench/load.py
has the workload and its checks) against `musicsync serve` (every service in
one process) and against `musicsync serve auth|file|sync` (three processes on
one DATA_DIR). Nothing acknowledged may be lost, nothing listed twice,
nothing of one user shown to another, and every device must converge.

LOAD_STEPS sets the operations per device (default 6, a few seconds per
layout); LOAD_STEPS=200 makes a longer run.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bench.load import Addresses, Load

from .conftest import REGISTRATION_KEY
from .helpers import ServerProcess, free_port

STEPS = int(os.environ.get("LOAD_STEPS", "6"))
CHEAP_ARGON2 = {"ARGON2_TIME_COST": "1", "ARGON2_MEMORY_KIB": "1024", "ARGON2_PARALLELISM": "1"}


@asynccontextmanager
async def serving(layout: str, tmp_path: Path) -> AsyncIterator[Addresses]:
    """The server in the given layout, on loopback ports; stopped at the end."""
    data = tmp_path / "data"
    env = {**CHEAP_ARGON2, "SECURITY_KEY": REGISTRATION_KEY,
           "SECRET_KEY": secrets.token_urlsafe(32), "LOG_LEVEL": "WARNING"}
    ports = {service: free_port() for service in ("auth", "file", "sync")}
    flags = [f"--{service}-port={port}" for service, port in ports.items()]
    common = ["--data-dir", str(data), "--host", "127.0.0.1"]
    servers: list[ServerProcess] = []
    try:
        if layout == "one":
            servers.append(ServerProcess(["serve", *common, *flags], env, tmp_path / "log"))
            await servers[0].wait_serving(ports["auth"])
        else:
            # The auth service first: it creates the database the others then open.
            for service in ("auth", "file", "sync"):
                servers.append(ServerProcess(["serve", service, *common, *flags], env,
                                             tmp_path / f"log-{service}"))
                await servers[-1].wait_serving(ports[service])
        yield Addresses(*(f"127.0.0.1:{ports[s]}" for s in ("auth", "file", "sync")))
    finally:
        codes = [server.stop() for server in servers]
    assert codes == [0] * len(servers), [server.log() for server in servers]


@pytest.mark.parametrize("layout", ["one", "split"])
async def test_twenty_devices_of_four_users_lose_nothing_and_see_only_their_own(
        tmp_path, layout):
    async with serving(layout, tmp_path) as addresses:
        load = Load(addresses, users=4, devices=20)
        try:
            await load.start(REGISTRATION_KEY)
            await load.run(STEPS, seconds=120)
            problems = await load.check()
        finally:
            await load.close()
    assert problems == []
    assert not load.stats.errors
    assert len(load.stats.latencies["Diff"]) >= 20  # each device's last Diff at least
    uploads = sum(len(u.ledger.recipes) for u in load.users)
    assert uploads > 4 * 2  # more than the shared songs went up


async def test_the_load_checks_notice_a_lost_song_and_a_song_of_another_user(tmp_path):
    async with serving("one", tmp_path) as addresses:
        load = Load(addresses, users=2, devices=2, strict=False)
        try:
            await load.start(REGISTRATION_KEY)
            await load.run(3, seconds=60)
            first, second = load.users
            first.ledger.live.add("0" * 64)  # acknowledged, as far as the ledger knows
            first.ledger.recipes["0" * 64] = ("never sent", 1)
            shown = next(iter(second.ledger.live - set(first.ledger.recipes)))
            second.ledger.recipes.pop(shown)  # as if the server showed another user's song
            second.ledger.live.discard(shown)
            problems = await load.check()
        finally:
            await load.close()
    assert any("acknowledged songs are not listed" in p for p in problems), problems
    assert any("songs listed that are deleted or were never this user's" in p
               for p in problems), problems
    assert any(f"Changes shows {shown}" in p for p in problems), problems
