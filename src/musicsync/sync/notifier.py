"""News of committed changes for the Watch streams of this process.

Changes committed here are published by the code that committed them; on
PostgreSQL, those of other replicas arrive through db/channel.py.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict


class ChangeNotifier:
    """Wakes the Watch streams of a user when a change of theirs commits (in-process)."""

    def __init__(self) -> None:
        self._conditions: defaultdict[int, asyncio.Condition] = defaultdict(asyncio.Condition)
        self._latest: dict[int, int] = {}
        # Bumped by wake_all: waiters then look at the feed whatever they were told.
        self._generation = 0
        self.closed = False

    async def close(self) -> None:
        """Wakes every waiter for good: the server is shutting down."""
        self.closed = True
        for condition in list(self._conditions.values()):
            async with condition:
                condition.notify_all()

    async def wake_all(self) -> None:
        """Sends every waiter back to the feed (news may have been missed meanwhile)."""
        self._generation += 1
        for condition in list(self._conditions.values()):
            async with condition:
                condition.notify_all()

    async def published(self, user_id: int, seq: int) -> None:
        """Call after the transaction holding change ``seq`` has committed."""
        if seq <= self._latest.get(user_id, 0):
            return
        self._latest[user_id] = seq
        condition = self._conditions.get(user_id)
        if condition is not None:
            async with condition:
                condition.notify_all()

    async def wait_beyond(self, user_id: int, seq: int, timeout: float) -> bool:
        """Waits until a change after ``seq`` is published (or the notifier closes);
        False on timeout."""
        condition = self._conditions[user_id]
        generation = self._generation
        async with condition:
            try:
                await asyncio.wait_for(condition.wait_for(
                    lambda: self.closed or self._latest.get(user_id, 0) > seq
                    or self._generation != generation), timeout)
            except TimeoutError:
                return False
        return True
