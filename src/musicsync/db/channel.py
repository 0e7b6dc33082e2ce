"""News of committed changes between the replicas sharing a PostgreSQL database.

A transaction recording a change also queues a NOTIFY on one channel
(``announce_change``); PostgreSQL delivers it when, and only if, the transaction
commits, to every replica LISTENing. ``ChangeListener`` keeps one connection
LISTENing per replica and hands each "user:seq" to a callback, which wakes that
user's Watch streams. Idle, it costs nothing: no polling, one sleeping
connection. When that connection is lost it reconnects (backing off) and then
calls ``on_reconnect``, since changes committed meanwhile were not heard.

On SQLite there is nothing to announce: one process's changes reach its own
Watch streams directly, and separate processes poll (sync/feed.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import bindparam, text

from .dialect import dialect_name
from .engine import asyncpg_dsn

log = logging.getLogger(__name__)

CHANNEL = "musicsync_changes"
RECONNECT_DELAYS = (0.5, 1, 2, 5, 10, 30)
_NOTIFY = text(f"SELECT pg_notify('{CHANNEL}', :payload)").bindparams(bindparam("payload"))


def announce_change(connection, user_id: int, seq: int) -> None:
    """Within the transaction recording change ``seq``: tell every replica once it commits."""
    if dialect_name(connection) == "postgresql":
        connection.execute(_NOTIFY, {"payload": f"{user_id}:{seq}"})


class ChangeListener:
    """LISTENs for announced changes on a connection of its own, reconnecting when lost."""

    def __init__(self, url: str, on_change: Callable[[int, int], Awaitable[None]],
                 on_reconnect: Callable[[], Awaitable[None]]) -> None:
        self._dsn = asyncpg_dsn(url)
        self._on_change = on_change
        self._on_reconnect = on_reconnect
        self._task: asyncio.Task | None = None
        self._lost: asyncio.Event = asyncio.Event()
        self.listening = asyncio.Event()  # set while LISTENing (tests wait on it)
        self._waking: set[asyncio.Task] = set()  # the loop keeps only weak references

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="change-listener")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _listen_forever(self) -> None:
        import asyncpg

        failures = 0
        while True:
            connection = None
            try:
                connection = await asyncpg.connect(self._dsn, timeout=5)
                self._lost.clear()
                connection.add_termination_listener(lambda _connection: self._lost.set())
                await connection.add_listener(CHANNEL, self._heard)
                self.listening.set()
                if failures:
                    log.info("listening for changes again")
                    await self._on_reconnect()
                failures = 0
                await self._lost.wait()
                log.warning("lost the connection that listens for changes; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep trying; Watch falls back on heartbeats
                if failures == 0:
                    log.warning("cannot listen for changes (%s); retrying", exc)
            finally:
                self.listening.clear()
                if connection is not None and not connection.is_closed():
                    connection.terminate()
            delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
            failures += 1
            await asyncio.sleep(delay)

    def _heard(self, _connection, _pid: int, _channel: str, payload: str) -> None:
        try:
            user, seq = (int(part) for part in payload.split(":", 1))
        except ValueError:
            log.warning("ignoring a malformed change announcement %r", payload[:64])
            return
        task = asyncio.get_running_loop().create_task(self._on_change(user, seq))
        self._waking.add(task)
        task.add_done_callback(self._waking.discard)
