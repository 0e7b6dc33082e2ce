"""Throttling of password guesses: growing delays per client address, a ceiling per account.

The policy (defaults in ``LoginPolicy``; README "Accounts", docs/security.md):

- **Per account and client address** (an IPv4 address; for IPv6 its /64, what one
  household or phone gets): the first 5 failed sign-ins cost nothing; after the
  5th, that address waits 1 s before it may try that account again, after the
  6th 2 s, doubling up to 15 minutes. A successful sign-in from the address
  starts its count over, and so does a day without failures. Other addresses,
  the owner's among them, are not slowed by it.
- **Per account, from all addresses**: when the failures of the addresses that
  failed within the last hour add up to 100, addresses that have not signed in
  to the account successfully within 30 days wait until the sum falls under 100
  again; the owner's known addresses stay open, and signed-in devices keep
  working through Refresh. This caps distributed guessing at about 100 guesses
  an hour per account.
- An attempt that must wait is refused before its password is checked
  (RESOURCE_EXHAUSTED with the seconds to wait), so it costs no hashing and
  tells nothing: while an address waits, even the right password is refused.
- ``musicsync user unlock NAME`` forgets every failure of an account.
- **Register**: wrong security keys from one address get the same growing
  delay (kept in memory: a restart forgets them).

What is stored is bounded whatever a client sends: the account as the SHA-256
of its normalized username (hex; unknown usernames are throttled alike, so the
answers tell nothing about which exist), the address as at most
``MAX_ADDRESS_CHARS``. Rows with no failure for a day and no successful
sign-in for 30 days are removed at the next failure.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import case, delete, func, or_, select, update
from sqlalchemy.orm import Session

from ..db.dialect import insert_for
from ..db.models import LoginFailure
from ..errors import ResourceExhausted

MAX_ADDRESS_CHARS = 64
# Register: how many client addresses the in-memory throttle remembers (oldest go first).
REGISTER_ADDRESSES_KEPT = 10_000


@dataclass(frozen=True)
class LoginPolicy:
    """How password guesses are slowed down (see the module docstring)."""

    free_failures: int = 5        # failures from one address before it must wait
    first_delay: int = 1          # seconds to wait after the first failure beyond those
    max_delay: int = 15 * 60      # the wait doubles up to this
    forget_after: int = 86400     # an address's count starts over after a day without failure
    account_ceiling: int = 100    # failures of one account from all addresses ...
    ceiling_window: int = 3600    # ... of addresses that failed within this many seconds
    trusted_for: int = 30 * 86400  # a successful sign-in exempts its address from the ceiling

    def delay(self, failures: int) -> int:
        """Seconds an address waits after its ``failures``-th failure in a row."""
        beyond = failures - self.free_failures
        if beyond < 0:
            return 0
        if beyond >= 32:  # 2**32 s is far past any max_delay
            return self.max_delay
        return min(self.first_delay * 2 ** beyond, self.max_delay)


@dataclass(frozen=True)
class Throttled:
    """Why an attempt must wait, and until when (Unix seconds)."""

    reason: str  # "address" or "account": the label of the throttling metric
    retry_at: int

    def error(self, now: int, what: str) -> ResourceExhausted:
        when = datetime.fromtimestamp(self.retry_at, timezone.utc).strftime(
            "%Y-%m-%d %H:%M:%S UTC")
        wait = max(self.retry_at - now, 1)
        if self.reason == "account":
            why = (f"too many failed {what} for this account from many addresses; addresses "
                   "that signed in to it recently are not affected")
        else:
            why = f"too many failed {what} from your address"
        return ResourceExhausted(f"{why}; try again in {wait} seconds (after {when})")


def account_key(username_key: str) -> str:
    """What failures are stored under: the SHA-256 (hex) of the normalized username."""
    return hashlib.sha256(username_key.encode("utf-8", "surrogatepass")).hexdigest()


def address_key(address: str) -> str:
    """The throttling key of a client address: IPv4 as is, IPv6 its /64.

    An IPv4 address written as IPv6 (``::ffff:1.2.3.4``) counts as the IPv4 one;
    anything that is not an IP address (a Unix socket) is kept, clipped.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address[:MAX_ADDRESS_CHARS]
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class SignInThrottle:
    """Failed sign-ins per account and address, in the ``login_failures`` table."""

    def __init__(self, policy: LoginPolicy) -> None:
        self.policy = policy

    def verdict(self, session: Session, account: str, address: str,
                now: int) -> Throttled | None:
        """Whether an attempt on ``account`` from ``address`` must wait (a quick read)."""
        policy = self.policy
        rows = session.execute(
            select(LoginFailure.address, LoginFailure.failures, LoginFailure.failed_at,
                   LoginFailure.last_success)
            .where(LoginFailure.username_key == account,
                   or_(LoginFailure.address == address,
                       LoginFailure.failed_at > now - policy.ceiling_window))).all()
        trusted = False
        for row in rows:
            if row.address != address:
                continue
            trusted = (row.last_success or 0) > now - policy.trusted_for
            if row.failed_at > now - policy.forget_after:
                retry_at = row.failed_at + policy.delay(row.failures)
                if retry_at > now:
                    return Throttled("address", retry_at)
        if trusted:
            return None
        recent = sorted((row.failed_at, row.failures) for row in rows
                        if row.failed_at > now - policy.ceiling_window and row.failures)
        total = sum(failures for _, failures in recent)
        if total < policy.account_ceiling:
            return None
        # Open again once enough of the oldest failures have left the window.
        for failed_at, failures in recent:
            total -= failures
            if total < policy.account_ceiling:
                return Throttled("account", failed_at + policy.ceiling_window)
        raise AssertionError("unreachable")  # pragma: no cover

    async def record_failure(self, session, account: str, address: str, now: int) -> None:
        """Counts a failure (in the caller's write session) and drops rows long idle."""
        policy = self.policy
        forgotten = now - policy.forget_after
        insert = insert_for(session)(LoginFailure).values(
            username_key=account, address=address, failures=1, failed_at=now)
        await session.execute(insert.on_conflict_do_update(
            index_elements=[LoginFailure.username_key, LoginFailure.address],
            set_={"failures": case((LoginFailure.failed_at > forgotten,
                                    LoginFailure.failures + 1), else_=1),
                  "failed_at": now}))
        await session.execute(delete(LoginFailure).where(
            LoginFailure.failed_at <= forgotten,
            or_(LoginFailure.last_success.is_(None),
                LoginFailure.last_success <= now - policy.trusted_for)))

    async def record_success(self, session, account: str, address: str, now: int) -> None:
        """Starts the address's count over and trusts it (in the caller's write session)."""
        insert = insert_for(session)(LoginFailure).values(
            username_key=account, address=address, failures=0, failed_at=0, last_success=now)
        await session.execute(insert.on_conflict_do_update(
            index_elements=[LoginFailure.username_key, LoginFailure.address],
            set_={"failures": 0, "last_success": now}))

    async def unlock(self, session, account: str) -> int:
        """Forgets the account's failures (keeping which addresses it trusts); how many."""
        total = await session.scalar(select(func.coalesce(func.sum(LoginFailure.failures), 0))
                                     .where(LoginFailure.username_key == account))
        await session.execute(update(LoginFailure).where(LoginFailure.username_key == account)
                              .values(failures=0))
        await session.execute(delete(LoginFailure).where(
            LoginFailure.username_key == account, LoginFailure.last_success.is_(None)))
        return int(total)


class AddressBackoff:
    """Growing delays per client address, in memory (Register's wrong security keys)."""

    def __init__(self, policy: LoginPolicy, kept: int = REGISTER_ADDRESSES_KEPT) -> None:
        self.policy = policy
        self._kept = kept
        self._failures: OrderedDict[str, tuple[int, int]] = OrderedDict()

    def verdict(self, address: str, now: int) -> Throttled | None:
        failures, failed_at = self._failures.get(address, (0, 0))
        if failed_at <= now - self.policy.forget_after:
            return None
        retry_at = failed_at + self.policy.delay(failures)
        return Throttled("address", retry_at) if retry_at > now else None

    def failure(self, address: str, now: int) -> None:
        failures, failed_at = self._failures.pop(address, (0, 0))
        if failed_at <= now - self.policy.forget_after:
            failures = 0
        self._failures[address] = (failures + 1, now)
        while len(self._failures) > self._kept:
            self._failures.popitem(last=False)

    def success(self, address: str) -> None:
        self._failures.pop(address, None)
