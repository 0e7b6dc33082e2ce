"""Bounds on the streams one account holds open at once, per kind of stream.

A stream ties up a file descriptor, a task and buffers for as long as the
client keeps it open, and a client may keep it open and idle: without a bound,
one account's idle streams used up the server's open files (issue 12). Beyond
its bound a new stream is refused at once with RESOURCE_EXHAUSTED naming the
bound; the streams already open carry on.

    MAX_UPLOADS_PER_USER    16   Upload streams (plain and resumable)
    MAX_DOWNLOADS_PER_USER  16   Download streams
    MAX_WATCHES_PER_USER    16   Watch streams (one per device in the foreground)

Diffs have their own bound with a queue (diff.DiffSlots: 2 run, 8 more wait).
The bounds are per server process: an account's calls all reach the one
process that runs the service.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from ..errors import ResourceExhausted

MAX_UPLOADS_PER_USER = 16
MAX_DOWNLOADS_PER_USER = 16
MAX_WATCHES_PER_USER = 16
DEFAULT_BOUNDS = {"Upload": MAX_UPLOADS_PER_USER, "Download": MAX_DOWNLOADS_PER_USER,
                  "Watch": MAX_WATCHES_PER_USER}


class StreamLimits:
    """Counts each account's open streams of each kind and refuses those over the bound."""

    def __init__(self, bounds: Mapping[str, int] = DEFAULT_BOUNDS) -> None:
        self._bounds = dict(bounds)
        self._open: dict[tuple[int, str], int] = {}

    def open_streams(self, user_id: int, kind: str) -> int:
        """How many ``kind`` streams of the account are open now."""
        return self._open.get((user_id, kind), 0)

    @contextmanager
    def hold(self, user_id: int, kind: str) -> Iterator[None]:
        """One ``kind`` stream of the account, for the duration of the block."""
        key = (user_id, kind)
        bound = self._bounds[kind]
        held = self._open.get(key, 0)
        if held >= bound:
            raise ResourceExhausted(
                f"this account already has {held} {kind} streams open, the most it may have "
                f"at once ({bound}); close one, or wait for one to end, then try again")
        self._open[key] = held + 1
        try:
            yield
        finally:
            left = self._open[key] - 1
            if left:
                self._open[key] = left
            else:
                del self._open[key]
