"""argon2id password hashing, off the event loop and bounded in memory.

Hashing has a thread pool of its own (MAX_CONCURRENT_HASHES threads named
"argon2"): sign-ins never wait behind blob I/O or audio checks in asyncio's
default executor.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ..errors import ResourceExhausted

# Each hash holds memory_cost KiB (64 MiB by default) while it runs: on a Pi,
# a burst of sign-ins must not turn into a burst of RSS.
MAX_CONCURRENT_HASHES = 2
# Hashes that may wait for a slot; beyond them a call is refused at once
# (RESOURCE_EXHAUSTED) rather than held, with its request, in a queue without
# end. 16 waiting behind 2 running is a few seconds of work on a Pi.
MAX_WAITING_HASHES = 16


class PasswordHasher:
    """Hashes and verifies passwords with argon2id in worker threads."""

    def __init__(self, *, time_cost: int, memory_kib: int, parallelism: int,
                 max_waiting: int = MAX_WAITING_HASHES) -> None:
        self._argon2 = argon2.PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism,
            type=argon2.Type.ID)
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_HASHES)
        self._max_waiting = max_waiting
        self.waiting = 0  # hashes waiting for a slot now
        self.most_waiting = 0  # the most that ever waited at once
        self._threads = ThreadPoolExecutor(max_workers=MAX_CONCURRENT_HASHES,
                                           thread_name_prefix="argon2")
        self._decoy: str | None = None

    @asynccontextmanager
    async def _slot(self):
        """A hashing slot, or ResourceExhausted when ``max_waiting`` hashes already wait."""
        if self._slots.locked():
            if self.waiting >= self._max_waiting:
                raise ResourceExhausted(
                    "the server is busy checking other passwords; try again in a few seconds")
            self.waiting += 1
            self.most_waiting = max(self.most_waiting, self.waiting)
            try:
                await self._slots.acquire()
            finally:
                self.waiting -= 1
        else:
            await self._slots.acquire()
        try:
            yield
        finally:
            self._slots.release()

    async def warm_up(self) -> None:
        """Makes the decoy hash now, so the first unknown-user sign-in is not slower."""
        if self._decoy is None:
            self._decoy = await self.hash("decoy password, never matches")

    async def hash(self, password: str) -> str:
        async with self._slot():
            return await self._run(self._argon2.hash, password)

    async def verify(self, stored: str | None, password: str) -> tuple[bool, str | None]:
        """Whether ``password`` matches ``stored``, and a new hash if it should be upgraded.

        With ``stored`` None (no such user) it verifies against a decoy hash
        made with the same parameters, so an unknown user costs the same time
        as a wrong password.
        """
        if stored is None:
            await self.warm_up()
            await self._check(self._decoy, password + "\0")
            return False, None
        if not await self._check(stored, password):
            return False, None
        if self._argon2.check_needs_rehash(stored):
            try:
                return True, await self.hash(password)
            except ResourceExhausted:  # busy: a later sign-in upgrades it
                return True, None
        return True, None

    async def _check(self, stored: str, password: str) -> bool:
        async with self._slot():
            try:
                return await self._run(self._argon2.verify, stored, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

    async def _run(self, func, *args):
        return await asyncio.get_running_loop().run_in_executor(self._threads, func, *args)
