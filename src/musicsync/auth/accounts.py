"""Accounts: registration, sign-in with throttling, token refresh and revocation.

This is the one place that decides who a caller is; the interceptor asks
``authenticate`` on every File and Sync call, the Auth servicer and the admin
CLI call the rest.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from ..db import Database
from ..db.models import LibraryEntry, RefreshToken, UploadSession, User
from ..errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from .passwords import PasswordHasher
from .rules import PASSWORD_MAX_BYTES, check_password, username_key, valid_username
from .throttle import AddressBackoff, LoginPolicy, SignInThrottle, account_key, address_key
from .tokens import AccessTokens, TokenPair, hash_refresh_token, new_refresh_token

log = logging.getLogger(__name__)

INVALID_CREDENTIALS = "invalid credentials"
# A sign-in found not revoked, with its account found enabled, existing and without a
# newer password, is not looked up again for this long. Revocations made by this
# process (Logout, reuse of a refresh token, a password change, `user disable`) take
# effect at once; those made by another process (the auth service beside separate
# file and sync services, the `musicsync user` commands) within these seconds.
REVOCATION_CHECK_SECONDS = 2.0
LIVE_SIGN_INS_KEPT = 1024
Clock = Callable[[], float]


@dataclass(frozen=True)
class Principal:
    """Who a call acts as."""

    user_id: int
    username: str


@dataclass(frozen=True)
class UserInfo:
    id: int
    username: str
    disabled: bool
    created_at: int


@dataclass(frozen=True)
class LeftBehind:
    """What a deleted user's library held in the blob store."""

    blobs: tuple[bytes, ...]  # SHA-256 of each song; other libraries may list some
    uploads: tuple[str, ...]  # ids of unfinished resumable uploads' partial data


class ThrottleSink(Protocol):
    """Where throttled attempts are counted (``metrics.Metrics``)."""

    def throttled(self, method: str, reason: str) -> None: ...


class _NoSink:
    def throttled(self, method: str, reason: str) -> None:
        pass


class Accounts:
    """Users, passwords and tokens over the metadata database."""

    def __init__(self, db: Database, hasher: PasswordHasher, access_tokens: AccessTokens, *,
                 registration_key: str | None = None,
                 refresh_ttl: int = 30 * 86400, login_policy: LoginPolicy = LoginPolicy(),
                 anonymous_user: str | None = None, clock: Clock = time.time,
                 metrics: ThrottleSink | None = None,
                 reserved_usernames: Iterable[str] = ()) -> None:
        self._db = db
        self.hasher = hasher  # its queue figures (waiting, most_waiting) are public
        self._access = access_tokens
        # None: registration is closed (accounts come from `musicsync user add`).
        self._registration_key = registration_key.encode("utf-8") if registration_key else None
        self._refresh_ttl = refresh_ttl
        self._throttle = SignInThrottle(login_policy)
        self._register_backoff = AddressBackoff(login_policy)
        self._metrics = metrics or _NoSink()
        # family id -> (time.monotonic() when it was last found not revoked, its caller,
        # the account's tokens_valid_after then)
        self._live_sign_ins: OrderedDict[str, tuple[float, Principal, int]] = OrderedDict()
        self._anonymous_key = username_key(anonymous_user) if anonymous_user else None
        self._clock = clock
        # Names Register refuses (the anonymous user's): only the operator creates them.
        self._reserved = frozenset(username_key(name) for name in reserved_usernames)

    async def warm_up(self) -> None:
        await self.hasher.warm_up()

    def _now(self) -> int:
        return int(self._clock())

    # -- Registration and sign-in -------------------------------------------------

    async def register(self, username: str, password: str, security_key: str,
                       address: str = "") -> TokenPair:
        """A new account for a caller that knows the registration key.

        Wrong keys from one client address get growing delays (``throttle``)."""
        if self._registration_key is None:
            raise FailedPrecondition(
                "registration is closed on this server: ask its operator to create your "
                "account (`musicsync user add`) or to restart it with --registration open")
        address = address_key(address)
        now = self._now()
        throttled = self._register_backoff.verdict(address, now)
        if throttled is not None:
            self._metrics.throttled("Register", throttled.reason)
            raise throttled.error(now, "registrations (wrong security keys)")
        if not hmac.compare_digest(security_key.encode("utf-8", "surrogatepass"),
                                   self._registration_key):
            self._register_backoff.failure(address, now)
            raise PermissionDenied(
                "wrong security key: use the registration key the server's operator gave you")
        self._register_backoff.success(address)
        if username_key(username) in self._reserved:
            raise PermissionDenied(
                "this username is reserved on this server; choose another")
        user = await self.create_user(username, password)
        return await self._issue_pair(user.id, family_id=None)

    async def create_user(self, username: str, password: str) -> UserInfo:
        """A new enabled user; InvalidArgument or AlreadyExists otherwise."""
        name = valid_username(username)
        check_password(password)
        key = username_key(name)
        async with self._db.read() as session:
            if await session.scalar(select(User.id).where(User.username_key == key)):
                raise AlreadyExists(f"username {name!r} is taken")
        password_hash = await self.hasher.hash(password)
        now = self._now()
        try:
            async with self._db.write() as session:
                user = User(username=name, username_key=key, password_hash=password_hash,
                            disabled=False, tokens_valid_after=0, created_at=now)
                session.add(user)
                await session.flush()
        except IntegrityError:
            raise AlreadyExists(f"username {name!r} is taken") from None
        log.info("created user %d", user.id)
        return UserInfo(user.id, user.username, False, now)

    async def login(self, username: str, password: str, address: str = "") -> TokenPair:
        """A new sign-in; ``address`` is the client's IP address, for throttling."""
        key = username_key(valid_username(username))  # a name that cannot exist costs nothing
        if len(password.encode("utf-8", "surrogatepass")) > PASSWORD_MAX_BYTES:
            raise InvalidArgument(f"password must be at most {PASSWORD_MAX_BYTES} bytes of UTF-8")
        account, address = account_key(key), address_key(address)
        now = self._now()

        def look(session):
            throttled = self._throttle.verdict(session, account, address, now)
            if throttled is not None:
                return throttled, None
            return None, session.scalar(select(User).where(User.username_key == key))
        throttled, user = await self._db.quick_read(look)
        if throttled is not None:
            self._metrics.throttled("Login", throttled.reason)
            raise throttled.error(now, "sign-ins")
        ok, upgraded_hash = await self.hasher.verify(
            user.password_hash if user else None, password)
        if not ok:
            await self._record_failure(account, address, now)
            raise Unauthenticated(INVALID_CREDENTIALS)
        if user.disabled:
            raise Unauthenticated("this account is disabled; ask the server's operator")
        async with self._db.write() as session:
            await self._throttle.record_success(session, account, address, now)
            if upgraded_hash:
                await session.execute(
                    update(User).where(User.id == user.id).values(password_hash=upgraded_hash))
            return await self._issue_pair_in(session, user.id, family_id=None)

    async def _refuse_if_throttled(self, key: str, address: str, now: int, method: str) -> None:
        account = account_key(key)
        throttled = await self._db.quick_read(
            lambda session: self._throttle.verdict(session, account, address, now))
        if throttled is not None:
            self._metrics.throttled(method, throttled.reason)
            raise throttled.error(now, "password checks")

    async def _record_failure(self, account: str, address: str, now: int) -> None:
        async with self._db.write() as session:
            await self._throttle.record_failure(session, account, address, now)

    # -- Tokens -------------------------------------------------------------------

    async def _issue_pair(self, user_id: int, family_id: str | None) -> TokenPair:
        async with self._db.write() as session:
            return await self._issue_pair_in(session, user_id, family_id)

    async def _issue_pair_in(self, session, user_id: int, family_id: str | None) -> TokenPair:
        now = self._now()
        refresh, refresh_hash = new_refresh_token()
        refresh_expires = now + self._refresh_ttl
        family_id = family_id or secrets.token_hex(16)
        session.add(RefreshToken(
            user_id=user_id, family_id=family_id,
            token_hash=refresh_hash, issued_at=now, expires_at=refresh_expires))
        access, access_expires = self._access.issue(user_id, now, family_id)
        return TokenPair(access, access_expires, refresh, refresh_expires)

    async def refresh(self, refresh_token: str) -> TokenPair:
        """A new pair for a valid refresh token, which stops working.

        Presenting a token that was already exchanged means two parties hold
        it: the whole family (every token of that sign-in) is revoked.
        """
        now = self._now()
        token_hash = hash_refresh_token(refresh_token)
        # Unknown, revoked and expired tokens are answered from a read: a flood of
        # them must not queue for the write lock in front of honest writers.
        known = await self._db.quick_read(lambda session: session.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == token_hash)))
        if known is None or known.revoked_at is not None:
            raise Unauthenticated("refresh token is not valid; sign in again")
        if known.rotated_at is None and known.expires_at <= now:
            raise Unauthenticated("refresh token expired; sign in again")
        reused = False
        async with self._db.write() as session:
            token = await session.scalar(select(RefreshToken).where(
                RefreshToken.token_hash == token_hash))
            if token is None or token.revoked_at is not None:
                raise Unauthenticated("refresh token is not valid; sign in again")
            if token.rotated_at is not None:
                reused = True
                await session.execute(
                    update(RefreshToken)
                    .where(RefreshToken.family_id == token.family_id,
                           RefreshToken.revoked_at.is_(None))
                    .values(revoked_at=now))
            elif token.expires_at <= now:
                raise Unauthenticated("refresh token expired; sign in again")
            else:
                user = await session.get(User, token.user_id)
                if user is None or user.disabled:
                    raise Unauthenticated("this account is disabled or no longer exists")
                token.rotated_at = now
                return await self._issue_pair_in(session, token.user_id, token.family_id)
        if reused:
            self._revoked_here(token.family_id)
            log.warning("refresh token reuse for user %d: revoked its sign-in", token.user_id)
        raise Unauthenticated(
            "refresh token was already used, so it may have been stolen: this sign-in is "
            "revoked everywhere; sign in again")

    async def logout(self, refresh_token: str) -> None:
        """Ends the sign-in the refresh token belongs to; unknown tokens are ignored."""
        now = self._now()
        token_hash = hash_refresh_token(refresh_token)
        found = await self._db.quick_read(lambda session: session.execute(
            select(RefreshToken.family_id, RefreshToken.revoked_at)
            .where(RefreshToken.token_hash == token_hash)).first())
        if found is None or found.revoked_at is not None:
            return  # answered from a read: such tokens never wait for the write lock
        family = found.family_id
        async with self._db.write() as session:
            await session.execute(
                update(RefreshToken)
                .where(RefreshToken.family_id == family, RefreshToken.revoked_at.is_(None))
                .values(revoked_at=now))
        self._revoked_here(family)

    async def change_password(self, user_id: int, current: str, new: str,
                              address: str = "") -> TokenPair:
        """Sets a new password, ends every other sign-in, and returns a fresh pair."""
        async with self._db.read() as session:
            user = await session.get(User, user_id)
        if user is None:
            raise Unauthenticated("this account no longer exists")
        now = self._now()
        address = address_key(address)
        await self._refuse_if_throttled(user.username_key, address, now, "ChangePassword")
        ok, _ = await self.hasher.verify(user.password_hash, current)
        if not ok:
            await self._record_failure(account_key(user.username_key), address, now)
            raise PermissionDenied("current password is wrong")
        check_password(new)
        await self._set_password(user_id, await self.hasher.hash(new))
        return await self._issue_pair(user_id, family_id=None)

    async def _set_password(self, user_id: int, password_hash: str) -> None:
        now = self._now()
        async with self._db.write() as session:
            await session.execute(update(User).where(User.id == user_id).values(
                password_hash=password_hash, tokens_valid_after=now))
            await session.execute(
                update(RefreshToken)
                .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
                .values(revoked_at=now))
        self._revoked_here()

    # -- Who is calling -----------------------------------------------------------

    async def authenticate(self, authorization: str | None) -> Principal:
        """The caller of a File or Sync call, from its authorization metadata."""
        if authorization is None:
            return await self._anonymous_principal()
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("authorization metadata must be `Bearer <access token>`")
        now = self._now()
        claims = self._access.verify(token, now)
        known = self._known_live(claims.family_id)
        if known is not None and known[0].user_id == claims.user_id:
            # Checked within REVOCATION_CHECK_SECONDS: no database read on this call.
            principal, tokens_valid_after = known
            if claims.issued_at < tokens_valid_after:
                raise Unauthenticated("the password changed since this token was issued; "
                                      "sign in again")
            return principal
        family = claims.family_id
        user, revoked = await self._db.quick_read(lambda session: (
            session.get(User, claims.user_id), _family_revoked(session, family)))
        if user is None:
            raise Unauthenticated("the account of this token no longer exists")
        if user.disabled:
            raise Unauthenticated("this account is disabled; ask the server's operator")
        if revoked:
            raise Unauthenticated("this sign-in was ended (signed out, or its refresh token "
                                  "was used twice and may have been stolen); sign in again")
        if claims.issued_at < user.tokens_valid_after:
            raise Unauthenticated("the password changed since this token was issued; sign in again")
        principal = Principal(user.id, user.username)
        if family is not None:
            self._live_sign_ins[family] = (time.monotonic(), principal, user.tokens_valid_after)
            self._live_sign_ins.move_to_end(family)
            if len(self._live_sign_ins) > LIVE_SIGN_INS_KEPT:
                self._live_sign_ins.popitem(last=False)
        return principal

    def _known_live(self, family_id: str | None) -> tuple[Principal, int] | None:
        """The caller and its account's tokens_valid_after, if the sign-in and its account
        were checked within REVOCATION_CHECK_SECONDS (a token from before access tokens
        named their sign-in is checked on every call)."""
        if family_id is None:
            return None
        found = self._live_sign_ins.get(family_id)
        if found is None or time.monotonic() - found[0] >= REVOCATION_CHECK_SECONDS:
            return None
        return found[1], found[2]

    def _revoked_here(self, family_id: str | None = None) -> None:
        """Forgets that a sign-in (or, without one, every sign-in) was found live."""
        if family_id is None:
            self._live_sign_ins.clear()
        else:
            self._live_sign_ins.pop(family_id, None)

    async def _anonymous_principal(self) -> Principal:
        if self._anonymous_key is None:
            raise Unauthenticated(
                "missing `authorization: Bearer <access token>` metadata; get a token from "
                "auth.AuthService/Login")
        user = await self._db.quick_read(lambda session: session.scalar(
            select(User).where(User.username_key == self._anonymous_key)))
        if user is None or user.disabled:
            raise Unauthenticated(
                "anonymous access is on, but its user does not exist or is disabled; the "
                "operator must create it with `musicsync user add`")
        return Principal(user.id, user.username)

    # -- Administration (the `musicsync user` CLI) ----------------------------------

    async def list_users(self) -> list[UserInfo]:
        async with self._db.read() as session:
            users = (await session.scalars(select(User).order_by(User.id))).all()
        return [UserInfo(u.id, u.username, bool(u.disabled), u.created_at) for u in users]

    async def find_user(self, username: str) -> UserInfo:
        async with self._db.read() as session:
            user = await session.scalar(select(User).where(User.username_key == username_key(username)))
        if user is None:
            raise NotFound(f"no user named {username!r}")
        return UserInfo(user.id, user.username, bool(user.disabled), user.created_at)

    async def reset_password(self, username: str, password: str) -> None:
        user = await self.find_user(username)
        check_password(password)
        await self._set_password(user.id, await self.hasher.hash(password))

    async def unlock(self, username: str) -> int:
        """Forgets the failed sign-ins of ``username`` from every address; how many."""
        user = await self.find_user(username)
        async with self._db.write() as session:
            count = await self._throttle.unlock(session, account_key(username_key(user.username)))
        log.info("cleared %d failed sign-ins of user %d", count, user.id)
        return count

    async def set_disabled(self, username: str, disabled: bool) -> None:
        user = await self.find_user(username)
        now = self._now()
        async with self._db.write() as session:
            await session.execute(update(User).where(User.id == user.id).values(disabled=disabled))
            if disabled:
                await session.execute(
                    update(RefreshToken)
                    .where(RefreshToken.user_id == user.id, RefreshToken.revoked_at.is_(None))
                    .values(revoked_at=now))
        self._revoked_here()

    async def delete_user(self, username: str) -> LeftBehind:
        """Removes the user with their library, tokens, devices and upload sessions.

        Returns what the library and the sessions pointed at in the blob store, for
        the caller to remove what no other library lists (``maintenance``)."""
        user = await self.find_user(username)
        async with self._db.write() as session:
            blobs = (await session.scalars(select(LibraryEntry.sha256).where(
                LibraryEntry.user_id == user.id))).all()
            uploads = (await session.scalars(select(UploadSession.id).where(
                UploadSession.user_id == user.id))).all()
            await session.execute(delete(User).where(User.id == user.id))
        log.info("deleted user %d", user.id)
        return LeftBehind(tuple(blobs), tuple(uploads))

    async def count_users(self) -> int:
        async with self._db.read() as session:
            return await session.scalar(select(func.count()).select_from(User))


def _family_revoked(session, family_id: str | None) -> bool:
    """Whether the sign-in an access token belongs to was revoked (one index lookup)."""
    if family_id is None:  # a token from before access tokens named their sign-in
        return False
    return session.scalar(select(RefreshToken.id).where(
        RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_not(None))
        .limit(1)) is not None
