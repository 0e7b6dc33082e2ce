"""`LiveFeed`: the library's changes as they happen, carried across dropped Watch streams.

A Watch stream ends when the server restarts or the network drops. LiveFeed opens
it again from the last cursor it received (so nothing is missed or shown twice),
after a pause that doubles from FIRST_PAUSE up to MAX_PAUSE and starts over once a
stream is up again. `musicsync watch` and `musicsync sync --watch` both follow the
library through it.

Only what a retry cannot mend is raised: NotSignedIn (the sign-in ended) and a
refusal such as FAILED_PRECONDITION (the cursor is unknown to this server, e.g.
its feed was pruned: the caller decides how to start again).

``newest_cursor`` finds where the feed stands now without reading it all.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import grpc

from .errors import ClientError, Refused, ServerUnavailable
from .models import ChangeEvent, Heartbeat

FIRST_PAUSE = 0.5  # seconds before the first reconnection; doubled up to MAX_PAUSE
MAX_PAUSE = 30.0
# Refusals a stream can end with while the server restarts or a proxy drops it.
TRANSIENT = frozenset({grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN,
                       grpc.StatusCode.INTERNAL, grpc.StatusCode.ABORTED,
                       grpc.StatusCode.RESOURCE_EXHAUSTED})


def drop_reason(error: ClientError | None) -> str:
    """Why a stream dropped, for a person (see LiveFeed's on_drop)."""
    if error is None:
        return "the server closed the connection"
    if isinstance(error, ServerUnavailable):
        return error.message
    return f"the connection to the server was lost ({error.message})"


def is_transient(exc: ClientError) -> bool:
    """Whether a failed call may succeed later as it is (the server or network was away)."""
    return isinstance(exc, ServerUnavailable) or (
        isinstance(exc, Refused) and exc.code in TRANSIENT)


class LiveFeed:
    """Every change after ``since``, then each new one as it commits, until the caller
    stops iterating; heartbeats while nothing happens. ``cursor`` is the position after
    the last item received.

    ``on_drop(error, pause)`` is told of each dropped stream (``error`` None when the
    server ended it, e.g. shutting down) before the pause; ``on_back()`` once a stream
    is up again after a drop.
    """

    def __init__(self, client, since: int, *,
                 on_drop: Callable[[ClientError | None, float], None] | None = None,
                 on_back: Callable[[], None] | None = None, heartbeat_seconds: int = 30,
                 first_pause: float = FIRST_PAUSE, max_pause: float = MAX_PAUSE,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 subjects: Sequence[int] = ()) -> None:
        self.client = client
        self.cursor = since
        self.on_drop = on_drop or (lambda error, pause: None)
        self.on_back = on_back or (lambda: None)
        self.heartbeat_seconds = heartbeat_seconds
        self.first_pause = first_pause
        self.max_pause = max_pause
        self.sleep = sleep
        self.subjects = subjects  # sync.Subject values; none: songs
        self.drops = 0  # streams lost so far

    async def __aiter__(self) -> AsyncIterator[ChangeEvent | Heartbeat]:
        pause = self.first_pause
        dropped = False
        while True:
            error: ClientError | None = None
            try:
                if dropped:
                    # A Watch stream says nothing until an event or a heartbeat: one small
                    # page of Changes shows the server is back (and still knows the cursor).
                    await self.client.changes_page(self.cursor, limit=1)
                    dropped, pause = False, self.first_pause
                    self.on_back()
                async for item in self.client.watch(
                        self.cursor, heartbeat_seconds=self.heartbeat_seconds,
                        subjects=self.subjects):
                    self.cursor = max(self.cursor, item.cursor)
                    yield item
            except ClientError as exc:
                if not is_transient(exc):
                    raise
                error = exc
            dropped = True
            self.drops += 1
            self.on_drop(error, pause)
            await self.sleep(pause)
            pause = min(pause * 2, self.max_pause)


async def newest_cursor(client) -> int:
    """The cursor of the library's newest change, found with a few one-event Changes
    pages (a galloping search: a cursor beyond the newest is refused with
    FAILED_PRECONDITION) rather than by reading the whole kept feed.

    A feed whose start was pruned refuses cursor 0 as well; then the cursor comes
    from a Diff holding nothing, which lists the library once.
    """
    try:
        events, low, more = await client.changes_page(0, limit=1)
    except Refused as exc:
        if exc.code != grpc.StatusCode.FAILED_PRECONDITION:
            raise
        return (await client.diff([], cursor=0)).cursor
    if not more:
        return events[-1].seq if events else 0
    low = events[-1].seq  # a known cursor with more after it
    step, high = 1, None  # high: the lowest cursor refused (beyond the newest)
    while high is None or high - low > 1:
        probe = low + step if high is None else (low + high) // 2
        try:
            events, _, more = await client.changes_page(probe, limit=1)
        except Refused as exc:
            if exc.code != grpc.StatusCode.FAILED_PRECONDITION:
                raise
            high = probe
            continue
        if not more:  # at most one event after probe: it is the newest
            return events[-1].seq if events else probe
        low = events[-1].seq
        step *= 2
    return low
