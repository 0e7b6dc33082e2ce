"""Access tokens (JWT, HS256) and refresh tokens (opaque, stored as hashes)."""

from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass

import jwt

from ..errors import Unauthenticated

ACCESS = "access"
# The claims are SQLite integers (user id) and Unix times: anything beyond int64 is forged.
_MAX_CLAIM = 2**63 - 1
# Checking a JWT's signature and claims costs more than the rest of a small call;
# a device sends the same token for many calls, so recent verdicts are kept.
VERIFIED_TOKENS_KEPT = 1024


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    issued_at: int
    token_id: str
    # The sign-in (refresh-token family) the token belongs to; None in tokens issued
    # before access tokens carried it (they expire within ACCESS_TOKEN_TTL).
    family_id: str | None = None


@dataclass(frozen=True)
class TokenPair:
    """What Register, Login, Refresh and ChangePassword hand back."""

    access_token: str
    access_expires_at: int
    refresh_token: str
    refresh_expires_at: int


class AccessTokens:
    """Signs and checks access tokens with the server's secret key."""

    def __init__(self, secret_key: str, ttl_seconds: int) -> None:
        self._key = secret_key
        self.ttl = ttl_seconds
        self._signed_claims = functools.lru_cache(maxsize=VERIFIED_TOKENS_KEPT)(self._check_signed)

    def issue(self, user_id: int, now: int, family_id: str) -> tuple[str, int]:
        expires = now + self.ttl
        claims = {"sub": str(user_id), "iat": now, "exp": expires,
                  "jti": secrets.token_hex(16), "typ": ACCESS, "fam": family_id}
        return jwt.encode(claims, self._key, algorithm="HS256"), expires

    def verify(self, token: str, now: int) -> AccessClaims:
        """The claims of a valid token; Unauthenticated saying why otherwise."""
        claims, expires = self._signed_claims(token)
        if expires <= now:
            raise Unauthenticated("access token expired; use Refresh or sign in again")
        return claims

    def _check_signed(self, token: str) -> tuple[AccessClaims, int]:
        """The claims of a token signed with our key, and its expiry (checked by the caller)."""
        try:
            claims = jwt.decode(
                token, self._key, algorithms=["HS256"],
                options={"require": ["sub", "iat", "exp", "jti"], "verify_iat": False,
                         "verify_exp": False})
        except jwt.InvalidTokenError:
            raise Unauthenticated("access token is invalid; sign in again") from None
        if claims.get("typ") != ACCESS:
            raise Unauthenticated("this is not an access token")
        try:
            user_id, issued_at, expires = int(claims["sub"]), int(claims["iat"]), int(claims["exp"])
        except (TypeError, ValueError, OverflowError):  # OverflowError: exp = Infinity
            raise Unauthenticated("access token is invalid; sign in again") from None
        family_id = claims.get("fam")
        if not (0 < user_id <= _MAX_CLAIM and 0 <= issued_at <= _MAX_CLAIM
                and 0 <= expires <= _MAX_CLAIM) or not isinstance(family_id, (str, type(None))):
            raise Unauthenticated("access token is invalid; sign in again")
        return AccessClaims(user_id=user_id, issued_at=issued_at, token_id=str(claims["jti"]),
                            family_id=family_id), expires


def new_refresh_token() -> tuple[str, bytes]:
    """A fresh refresh token and the hash to store for it."""
    token = secrets.token_urlsafe(32)
    return token, hash_refresh_token(token)


def hash_refresh_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()
