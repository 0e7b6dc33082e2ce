"""auth.AuthService."""

from __future__ import annotations

from ..auth.accounts import Accounts
from ..peers import ClientAddresses
from ..auth.tokens import TokenPair
from ..auth.rules import PASSWORD_MAX_BYTES
from ..errors import InvalidArgument
from ..interceptors import current_principal
from ..limits import MAX_SECRET_CHARS, MAX_USERNAME_INPUT_CHARS, check_chars
from ..proto import auth_pb2, auth_pb2_grpc


def _pair_fields(pair: TokenPair) -> dict:
    return {"token": pair.access_token, "token_expires_at": pair.access_expires_at,
            "refresh_token": pair.refresh_token, "refresh_expires_at": pair.refresh_expires_at}


def _checked_username(username: str) -> str:
    return check_chars(username, "username", MAX_USERNAME_INPUT_CHARS)


def _checked_password(password: str, field: str = "password") -> str:
    if len(password.encode("utf-8")) > PASSWORD_MAX_BYTES:
        raise InvalidArgument(f"{field} may be at most {PASSWORD_MAX_BYTES} bytes of UTF-8")
    return password


def _checked_secret(value: str, field: str) -> str:
    return check_chars(value, field, MAX_SECRET_CHARS)


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self, accounts: Accounts, addresses: ClientAddresses | None = None) -> None:
        self._accounts = accounts
        self._addresses = addresses or ClientAddresses()

    async def Register(self, request, context):
        pair = await self._accounts.register(
            _checked_username(request.username), _checked_password(request.password),
            _checked_secret(request.security_key, "security_key"), self._addresses.of(context))
        return auth_pb2.RegisterResponse(**_pair_fields(pair))

    async def Login(self, request, context):
        pair = await self._accounts.login(_checked_username(request.username),
                                          _checked_password(request.password),
                                          self._addresses.of(context))
        return auth_pb2.LoginResponse(**_pair_fields(pair))

    async def Refresh(self, request, context):
        pair = await self._accounts.refresh(_checked_secret(request.refresh_token,
                                                            "refresh_token"))
        return auth_pb2.RefreshResponse(**_pair_fields(pair))

    async def Logout(self, request, context):
        await self._accounts.logout(_checked_secret(request.refresh_token, "refresh_token"))
        return auth_pb2.LogoutResponse()

    async def ChangePassword(self, request, context):
        pair = await self._accounts.change_password(
            current_principal().user_id,
            _checked_password(request.current_password, "current_password"),
            _checked_password(request.new_password, "new_password"),
            self._addresses.of(context))
        return auth_pb2.ChangePasswordResponse(**_pair_fields(pair))
