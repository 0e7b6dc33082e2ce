"""The token pair, and keeping the access token fresh (one refresh at a time)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import grpc

from ..proto import auth_pb2, auth_pb2_grpc
from .errors import SIGN_IN_AGAIN, NotSignedIn, translate

# Refresh this long before the access token expires, so that a call never starts with a
# token that runs out on the way (and clocks a little apart do not matter).
REFRESH_MARGIN = 60


@dataclass(frozen=True)
class Tokens:
    """An access token and the refresh token that renews it, with their expiry (Unix seconds)."""

    access_token: str
    access_expires_at: int
    refresh_token: str
    refresh_expires_at: int

    @classmethod
    def from_response(cls, response) -> Tokens:
        """From a Register, Login, Refresh or ChangePassword response."""
        return cls(response.token, response.token_expires_at, response.refresh_token,
                   response.refresh_expires_at)


class SharedTokens(Protocol):
    """Tokens kept where other processes use them too (the CLI's credentials file).

    A refresh token works once, and presenting a used one ends the whole sign-in, so two
    processes must not both refresh with the same one: ``exclusive()`` is held while one
    refreshes, and ``load()`` says whether another process has refreshed meanwhile.
    """

    def exclusive(self) -> contextlib.AbstractContextManager[None]: ...

    def load(self) -> Tokens | None: ...


class TokenKeeper:
    """Hands out a fresh access token, refreshing it (and reporting the new pair) when due."""

    def __init__(self, auth: auth_pb2_grpc.AuthServiceStub, target: str,
                 tokens: Tokens | None, on_tokens: Callable[[Tokens], None] | None,
                 clock: Callable[[], float] = time.time,
                 shared: SharedTokens | None = None) -> None:
        self._auth = auth
        self._target = target
        self.tokens = tokens
        self._on_tokens = on_tokens
        self._clock = clock
        self._shared = shared
        self._lock = asyncio.Lock()

    def set(self, tokens: Tokens | None) -> None:
        """Takes a new pair (sign-in), and reports it."""
        self.tokens = tokens
        if tokens is not None and self._on_tokens is not None:
            self._on_tokens(tokens)

    def _fresh(self, tokens: Tokens | None) -> bool:
        return bool(tokens and tokens.access_token
                    and tokens.access_expires_at - self._clock() > REFRESH_MARGIN)

    async def access_token(self) -> str | None:
        """The access token to send, refreshed first if it expires within a minute."""
        tokens = self.tokens
        if tokens is None:
            return None
        if self._fresh(tokens) or not tokens.refresh_token:
            return tokens.access_token or None
        return (await self.refresh(tokens)).access_token

    async def refresh(self, stale: Tokens | None = None) -> Tokens:
        """Exchanges the refresh token for a new pair, unless ``stale`` was already replaced.

        Raises NotSignedIn when there is no refresh token or the server refuses it.
        """
        async with self._lock:
            if self.tokens is not stale and self._fresh(self.tokens):
                return self.tokens  # another task refreshed while this one waited
            if self._shared is None:
                return await self._exchange()
            with self._shared.exclusive():
                latest = self._shared.load()
                if (latest is not None and self.tokens is not None
                        and latest.refresh_token != self.tokens.refresh_token):
                    self.tokens = latest  # another process refreshed: its pair is ours now
                    if self._fresh(latest):
                        return latest
                return await self._exchange()

    async def _exchange(self) -> Tokens:
        if self.tokens is None or not self.tokens.refresh_token:
            raise NotSignedIn(f"not signed in at {self._target}; {SIGN_IN_AGAIN}")
        try:
            response = await self._auth.Refresh(
                auth_pb2.RefreshRequest(refresh_token=self.tokens.refresh_token))
        except grpc.aio.AioRpcError as error:
            if error.code() in (grpc.StatusCode.UNAUTHENTICATED,
                                grpc.StatusCode.INVALID_ARGUMENT):
                raise NotSignedIn(f"your sign-in at {self._target} has ended "
                                  f"({error.details()}); {SIGN_IN_AGAIN}") from error
            raise translate(error, self._target) from error
        self.set(Tokens.from_response(response))
        return self.tokens
