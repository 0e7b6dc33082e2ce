"""Database.grouped_write: concurrent tasks' short writes share one commit (db/group_commit.py)."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3

import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session

from musicsync.db.models import Blob
from musicsync.errors import InvalidArgument
from musicsync.server import App

from .helpers import wait_until


def digest(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


def committed(app: App, name: str) -> bool:
    """Whether another connection sees the blob record ``name`` (that is, it is committed)."""
    with sqlite3.connect(app.settings.data_dir / "musicsync.db") as db:
        return db.execute("SELECT 1 FROM blobs WHERE sha256 = ?",
                          (digest(name),)).fetchone() is not None


def add(name: str, *, fail: bool = False, seen: dict | None = None, app: App | None = None):
    def work(session: Session) -> str:
        session.execute(insert(Blob).values(sha256=digest(name), size=1, created_at=0))
        if seen is not None:
            # In this transaction, and not yet visible to anyone else.
            seen[name] = {other: committed(app, other) for other in seen["others"]}
        if fail:
            raise InvalidArgument(f"{name} refused")
        return name
    return work


async def test_concurrent_grouped_writes_share_one_commit_and_a_failing_one_is_rolled_back_alone(
        app: App):
    seen = {"others": ["first"]}
    async with app.db.write():  # every grouped write waits for this turn, then runs together
        first = asyncio.ensure_future(app.db.grouped_write(add("first")))
        failing = asyncio.ensure_future(app.db.grouped_write(add("failing", fail=True)))
        last = asyncio.ensure_future(app.db.grouped_write(add("last", seen=seen, app=app)))
        await asyncio.sleep(0)
        assert not first.done()
    assert await first == "first" and await last == "last"
    with pytest.raises(InvalidArgument, match="failing refused"):
        await failing
    # "last" ran after "first" in the same transaction: "first" was not committed yet.
    assert seen["last"] == {"first": False}
    assert committed(app, "first") and committed(app, "last")
    assert not committed(app, "failing")


async def test_a_grouped_write_returns_only_once_committed(app: App):
    assert await app.db.grouped_write(add("song")) == "song"
    assert committed(app, "song")


async def test_a_cancelled_grouped_write_that_had_not_started_writes_nothing(app: App):
    async with app.db.write():
        waiting = asyncio.ensure_future(app.db.grouped_write(add("cancelled")))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    assert await app.db.grouped_write(add("after")) == "after"
    assert not committed(app, "cancelled") and committed(app, "after")


async def test_a_grouped_write_cancelled_once_started_waits_for_its_commit(app: App):
    started = asyncio.Event()
    loop = asyncio.get_running_loop()
    release = loop.create_future()

    def slow(session: Session) -> None:
        session.execute(insert(Blob).values(sha256=digest("slow"), size=1, created_at=0))
        loop.call_soon_threadsafe(started.set)
        asyncio.run_coroutine_threadsafe(asyncio.wait_for(asyncio.shield(release), 10),
                                         loop).result()

    call = asyncio.ensure_future(app.db.grouped_write(slow))
    await wait_until(started.is_set, "the grouped write to start")
    call.cancel()
    await asyncio.sleep(0)
    assert not call.done()  # still waiting for the commit it cannot stop
    release.set_result(None)
    with pytest.raises(asyncio.CancelledError):
        await call
    assert committed(app, "slow")


async def test_a_grouped_write_inside_a_write_transaction_is_refused(app: App):
    async with app.db.write():
        with pytest.raises(RuntimeError, match="wait for itself"):
            await app.db.grouped_write(add("nested"))
