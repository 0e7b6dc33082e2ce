"""Admission of calls without a token before grpc takes in their request (issue 12).

grpc reads a unary request whole, up to the 4 MiB + 64 KiB the server receives for
upload chunks, before any handler runs; in the one-process layout anyone could make
the server hold 100 such messages at once (peak RSS 68 -> 456 MiB, 412 at rest).
The interceptor therefore serves unary-request methods as request-streaming (the
wire is the same) and reads the message only once the call is admitted: a call that
needs a token is admitted by its token, one that needs none (Auth, health) by this
gate, which lets at most ``total`` such requests be received at once, at most
``per_address`` from one client address. A call beyond waits for a slot (a burst of
small requests frees them within milliseconds) and is answered RESOURCE_EXHAUSTED,
unread, if none frees within ``wait_seconds``: grpc drops what it buffered for it (about the
whole message: its flow-control window grows with the link's bandwidth-delay
product, and shrinking it cost uploads 98% of their speed over a 40 ms link).
What it cannot bound: grpc also takes in the data of calls it has not handed to the
server yet; under a flood of oversized Logins from one address the server saw at most
3 at once while the peak still rose by 200-250 MiB (``memory.trim_soon`` gives that
back afterwards).
"""

from __future__ import annotations

import asyncio
from collections import Counter

from .errors import ResourceExhausted


class AuthGate:
    """Counts the token-less requests being received, in all and per client address."""

    def __init__(self, total: int, per_address: int, wait_seconds: float) -> None:
        self.total = total
        self.per_address = per_address
        self.wait_seconds = wait_seconds
        self._receiving: Counter[str] = Counter()
        self._waiters: set[asyncio.Future] = set()
        self.refused = 0  # calls refused since the start (for tests and the log)

    @property
    def receiving(self) -> int:
        return self._receiving.total()

    async def enter(self, address: str) -> _Admission:
        """Admits one request from ``address`` (release it with ``leave``) once a slot is
        free, or raises ResourceExhausted naming the bound still full after the wait."""
        try:
            async with asyncio.timeout(self.wait_seconds):
                while not self._fits(address):
                    waiter = asyncio.get_running_loop().create_future()
                    self._waiters.add(waiter)
                    try:
                        await waiter
                    finally:
                        self._waiters.discard(waiter)
        except TimeoutError:
            pass
        return self.enter_now(address)

    def _fits(self, address: str) -> bool:
        return self._receiving[address] < self.per_address and self.receiving < self.total

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def enter_now(self, address: str) -> _Admission:
        """Admits one request from ``address`` at once, or raises ResourceExhausted."""
        if self._receiving[address] >= self.per_address:
            self.refused += 1
            raise ResourceExhausted(
                f"{self.per_address} requests without a token from your address are being "
                "received, the most the server takes at once; try again in a moment")
        if self.receiving >= self.total:
            self.refused += 1
            raise ResourceExhausted(
                f"{self.total} requests without a token are being received, the most the "
                "server takes at once; try again in a moment")
        self._receiving[address] += 1
        return _Admission(self, address)

    def _leave(self, address: str) -> None:
        self._receiving[address] -= 1
        if self._receiving[address] <= 0:
            del self._receiving[address]
        for waiter in self._waiters:  # each checks again whether it fits
            if not waiter.done():
                waiter.set_result(None)


class _Admission:
    """One admitted request's slot; ``leave`` frees it (again is harmless)."""

    __slots__ = ("_gate", "_address")

    def __init__(self, gate: AuthGate, address: str) -> None:
        self._gate: AuthGate | None = gate
        self._address = address

    def leave(self) -> None:
        if self._gate is not None:
            self._gate._leave(self._address)
            self._gate = None
