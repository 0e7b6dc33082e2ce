"""auth.AuthService."""

from __future__ import annotations

from ..auth.accounts import Accounts
from ..auth.tokens import TokenPair
from ..interceptors import current_principal
from ..proto import auth_pb2, auth_pb2_grpc


def _pair_fields(pair: TokenPair) -> dict:
    return {"token": pair.access_token, "token_expires_at": pair.access_expires_at,
            "refresh_token": pair.refresh_token, "refresh_expires_at": pair.refresh_expires_at}


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self, accounts: Accounts) -> None:
        self._accounts = accounts

    async def Register(self, request, context):
        pair = await self._accounts.register(request.username, request.password,
                                             request.security_key)
        return auth_pb2.RegisterResponse(**_pair_fields(pair))

    async def Login(self, request, context):
        pair = await self._accounts.login(request.username, request.password)
        return auth_pb2.LoginResponse(**_pair_fields(pair))

    async def Refresh(self, request, context):
        pair = await self._accounts.refresh(request.refresh_token)
        return auth_pb2.RefreshResponse(**_pair_fields(pair))

    async def Logout(self, request, context):
        await self._accounts.logout(request.refresh_token)
        return auth_pb2.LogoutResponse()

    async def ChangePassword(self, request, context):
        pair = await self._accounts.change_password(
            current_principal().user_id, request.current_password, request.new_password)
        return auth_pb2.ChangePasswordResponse(**_pair_fields(pair))
