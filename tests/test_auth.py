"""Auth over the wire: registration rules, sign-in throttling, token lifecycles."""

from __future__ import annotations

import base64
import json

import grpc
import jwt
import pytest
from google.protobuf import empty_pb2

from musicsync.proto import auth_pb2
from musicsync.server import App

from .conftest import PASSWORD, REGISTRATION_KEY, create_user, make_settings
from .helpers import Client, status_of, wait_until


def register(client: Client, username: str, password: str = PASSWORD,
             key: str = REGISTRATION_KEY):
    return client.auth.Register(auth_pb2.RegisterRequest(
        username=username, password=password, security_key=key))


def login(client: Client, username: str, password: str = PASSWORD):
    return client.auth.Login(auth_pb2.LoginRequest(username=username, password=password))


async def get_sync_status(client: Client, token: str | None):
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    return await status_of(client.sync.GetSync(empty_pb2.Empty(), metadata=metadata))


# -- Registration -----------------------------------------------------------------

async def test_register_returns_working_access_and_refresh_tokens(client, clock):
    response = await register(client, "alice")
    assert response.token and response.refresh_token
    assert response.token_expires_at == int(clock.now) + 3600
    assert response.refresh_expires_at == int(clock.now) + 30 * 86400
    assert (await get_sync_status(client, response.token))[0] == grpc.StatusCode.OK


async def test_register_with_wrong_security_key_is_permission_denied(client):
    code, message = await status_of(register(client, "alice", key="guess"))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "security key" in message


async def test_register_when_registration_closed_is_failed_precondition(tmp_path):
    async with App(make_settings(tmp_path, registration="closed")) as app, Client(app) as client:
        code, message = await status_of(register(client, "alice"))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "musicsync user add" in message and "--registration open" in message


async def test_duplicate_username_is_already_exists_ignoring_case_and_normalisation(client):
    await register(client, "Zoë")
    decomposed = "zoe\u0308"  # e + combining diaeresis: NFC makes it ë
    code, message = await status_of(register(client, decomposed.upper()))
    assert code == grpc.StatusCode.ALREADY_EXISTS
    assert "taken" in message


@pytest.mark.parametrize("username, rule", [
    ("ab", "3 to 64 characters"),
    ("x" * 65, "3 to 64 characters"),
    ("bad\nname", "control characters"),
    ("tab\tname", "control characters"),
    (" padded", "whitespace"),
])
async def test_invalid_username_is_invalid_argument_naming_the_rule(client, username, rule):
    code, message = await status_of(register(client, username))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert rule in message


async def test_username_length_counts_characters_after_nfc(client):
    # 64 composed characters typed as 128 code points (letter + combining mark).
    assert (await status_of(register(client, "e\u0301" * 64)))[0] == grpc.StatusCode.OK


@pytest.mark.parametrize("password, rule", [
    ("short", "at least 8 characters"),
    ("é" * 513, "at most 1024 bytes"),
])
async def test_invalid_password_is_invalid_argument_naming_the_rule(client, password, rule):
    code, message = await status_of(register(client, "alice", password=password))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert rule in message


async def test_password_of_exactly_1024_bytes_is_accepted(client):
    await register(client, "alice", password="é" * 512)
    assert (await login(client, "alice", "é" * 512)).token


# -- Sign-in ------------------------------------------------------------------------

async def test_login_is_case_insensitive_on_the_username(client, alice):
    assert (await login(client, "ALICE")).token


async def test_unknown_user_and_wrong_password_get_the_same_answer(client, alice):
    wrong_password = await status_of(login(client, "alice", "not the password"))
    unknown_user = await status_of(login(client, "mallory", PASSWORD))
    assert wrong_password == unknown_user == (grpc.StatusCode.UNAUTHENTICATED,
                                              "invalid credentials")


async def test_login_rehashes_password_when_argon2_parameters_change(tmp_path):
    settings = make_settings(tmp_path, argon2_memory_kib=1024)
    async with App(settings) as app, Client(app) as client:
        await register(client, "alice")
    stronger = settings.replace(argon2_memory_kib=2048)
    async with App(stronger) as app, Client(app) as client:
        await login(client, "alice")
        async with app.db.read() as session:
            stored = (await session.execute(
                __import__("sqlalchemy").text("SELECT password_hash FROM users"))).scalar_one()
    assert stored.startswith("$argon2id$") and "m=2048" in stored


# -- Refresh, logout, password change ----------------------------------------------

async def test_refresh_rotates_the_refresh_token(client, alice):
    first = await client.auth.Refresh(auth_pb2.RefreshRequest(refresh_token=alice.refresh_token))
    assert first.refresh_token != alice.refresh_token
    assert (await get_sync_status(client, first.token))[0] == grpc.StatusCode.OK
    second = await client.auth.Refresh(auth_pb2.RefreshRequest(refresh_token=first.refresh_token))
    assert second.refresh_token not in (first.refresh_token, alice.refresh_token)


async def test_reusing_a_rotated_refresh_token_revokes_its_whole_family(client, alice):
    rotated = await client.auth.Refresh(auth_pb2.RefreshRequest(refresh_token=alice.refresh_token))
    code, message = await status_of(
        client.auth.Refresh(auth_pb2.RefreshRequest(refresh_token=alice.refresh_token)))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "already used" in message
    # The thief's copy is dead, and so is the legitimate newer token.
    code, _ = await status_of(
        client.auth.Refresh(auth_pb2.RefreshRequest(refresh_token=rotated.refresh_token)))
    assert code == grpc.StatusCode.UNAUTHENTICATED


async def test_reuse_detection_ends_the_access_tokens_of_that_sign_in_at_once(client, alice):
    other_device = await login(client, "alice")
    rotated = await client.auth.Refresh(auth_pb2.RefreshRequest(refresh_token=alice.refresh_token))
    for token in (alice.token, rotated.token):
        assert (await get_sync_status(client, token))[0] == grpc.StatusCode.OK
    await status_of(client.auth.Refresh(auth_pb2.RefreshRequest(refresh_token=alice.refresh_token)))
    # The thief's access tokens die with the sign-in, on their next call, not an hour later.
    for token in (alice.token, rotated.token):
        code, message = await get_sync_status(client, token)
        assert code == grpc.StatusCode.UNAUTHENTICATED and "may have been stolen" in message
    assert (await get_sync_status(client, other_device.token))[0] == grpc.StatusCode.OK


async def test_a_sign_in_revoked_by_another_process_is_refused_within_seconds(
        app, client, alice, settings):
    from musicsync.ops.admin import accounts_over
    from musicsync.errors import Unauthenticated
    assert (await get_sync_status(client, alice.token))[0] == grpc.StatusCode.OK
    elsewhere = accounts_over(app.db, settings)  # as a separate auth service would be
    await elsewhere.refresh(alice.refresh_token)
    with pytest.raises(Unauthenticated):
        await elsewhere.refresh(alice.refresh_token)  # reuse: the sign-in is revoked there

    async def refused() -> bool:
        return (await get_sync_status(client, alice.token))[0] == \
            grpc.StatusCode.UNAUTHENTICATED
    await wait_until(refused, "the revoked sign-in's access token to be refused", timeout=10)


async def test_an_account_deleted_by_another_process_is_refused_within_seconds(
        app, client, alice, settings):
    # A sign-in checked lately is not read again for REVOCATION_CHECK_SECONDS, its
    # account included: a deletion made elsewhere shows within that bound.
    from musicsync.ops.admin import accounts_over
    assert (await get_sync_status(client, alice.token))[0] == grpc.StatusCode.OK
    await accounts_over(app.db, settings).delete_user("alice")

    async def refused() -> bool:
        code, message = await get_sync_status(client, alice.token)
        return code == grpc.StatusCode.UNAUTHENTICATED and "no longer exists" in message
    await wait_until(refused, "the deleted account's access token to be refused", timeout=10)


async def test_logout_ends_the_access_tokens_of_that_sign_in(client, alice):
    other_device = await login(client, "alice")
    await client.auth.Logout(auth_pb2.LogoutRequest(refresh_token=alice.refresh_token))
    assert (await get_sync_status(client, alice.token))[0] == grpc.StatusCode.UNAUTHENTICATED
    assert (await get_sync_status(client, other_device.token))[0] == grpc.StatusCode.OK


async def test_reuse_revokes_only_that_sign_in(client, alice):
    other_device = await login(client, "alice")
    await client.auth.Refresh(auth_pb2.RefreshRequest(refresh_token=alice.refresh_token))
    await status_of(client.auth.Refresh(auth_pb2.RefreshRequest(refresh_token=alice.refresh_token)))
    assert (await client.auth.Refresh(
        auth_pb2.RefreshRequest(refresh_token=other_device.refresh_token))).token


async def test_refresh_token_expires_after_thirty_days(client, alice, clock):
    clock.advance(30 * 86400 + 1)
    code, message = await status_of(
        client.auth.Refresh(auth_pb2.RefreshRequest(refresh_token=alice.refresh_token)))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "expired" in message


async def test_unknown_refresh_token_is_unauthenticated(client):
    code, _ = await status_of(client.auth.Refresh(auth_pb2.RefreshRequest(refresh_token="nope")))
    assert code == grpc.StatusCode.UNAUTHENTICATED


async def test_logout_revokes_the_refresh_token(client, alice):
    await client.auth.Logout(auth_pb2.LogoutRequest(refresh_token=alice.refresh_token))
    code, _ = await status_of(
        client.auth.Refresh(auth_pb2.RefreshRequest(refresh_token=alice.refresh_token)))
    assert code == grpc.StatusCode.UNAUTHENTICATED


async def test_change_password_needs_an_access_token(client, alice):
    code, _ = await status_of(client.auth.ChangePassword(auth_pb2.ChangePasswordRequest(
        current_password=PASSWORD, new_password="a new password")))
    assert code == grpc.StatusCode.UNAUTHENTICATED


async def test_change_password_with_wrong_current_password_is_permission_denied(client, alice):
    code, _ = await status_of(client.auth.ChangePassword(auth_pb2.ChangePasswordRequest(
        current_password="not it at all", new_password="a new password"),
        metadata=client.meta()))
    assert code == grpc.StatusCode.PERMISSION_DENIED


async def test_change_password_ends_other_sign_ins_and_returns_a_new_pair(client, alice, clock):
    other_device = await login(client, "alice")
    clock.advance(5)
    changed = await client.auth.ChangePassword(auth_pb2.ChangePasswordRequest(
        current_password=PASSWORD, new_password="a new password"), metadata=client.meta())
    assert (await status_of(login(client, "alice", PASSWORD)))[0] == grpc.StatusCode.UNAUTHENTICATED
    assert (await login(client, "alice", "a new password")).token
    for refresh_token in (alice.refresh_token, other_device.refresh_token):
        code, _ = await status_of(
            client.auth.Refresh(auth_pb2.RefreshRequest(refresh_token=refresh_token)))
        assert code == grpc.StatusCode.UNAUTHENTICATED
    assert (await get_sync_status(client, other_device.token))[0] == grpc.StatusCode.UNAUTHENTICATED
    assert (await get_sync_status(client, changed.token))[0] == grpc.StatusCode.OK
    assert (await client.auth.Refresh(
        auth_pb2.RefreshRequest(refresh_token=changed.refresh_token))).token


# -- Tokens on File and Sync calls ----------------------------------------------------

def _unsigned_token(claims: dict) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


async def test_token_less_calls_are_unauthenticated(client, alice):
    code, message = await get_sync_status(client, None)
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert "authorization" in message


@pytest.mark.parametrize("header", ["Token abc", "Bearer", "Bearer ", "bearer not.a.jwt", "abc"])
async def test_malformed_authorization_is_unauthenticated(client, alice, header):
    code, _ = await status_of(client.sync.GetSync(
        empty_pb2.Empty(), metadata=(("authorization", header),)))
    assert code == grpc.StatusCode.UNAUTHENTICATED


async def test_access_token_stops_working_when_it_expires(client, alice, clock):
    assert (await get_sync_status(client, alice.token))[0] == grpc.StatusCode.OK
    clock.advance(3601)
    code, message = await get_sync_status(client, alice.token)
    assert code == grpc.StatusCode.UNAUTHENTICATED and "expired" in message


async def test_token_signed_with_another_key_is_unauthenticated(client, alice, clock):
    claims = jwt.decode(alice.token, options={"verify_signature": False})
    forged = jwt.encode(claims, "some other key that is long enough!!", algorithm="HS256")
    assert (await get_sync_status(client, forged))[0] == grpc.StatusCode.UNAUTHENTICATED


async def test_alg_none_token_is_unauthenticated(client, alice):
    claims = jwt.decode(alice.token, options={"verify_signature": False})
    assert (await get_sync_status(client, _unsigned_token(claims)))[0] == \
        grpc.StatusCode.UNAUTHENTICATED


async def test_refresh_token_is_not_an_access_token(client, alice):
    assert (await get_sync_status(client, alice.refresh_token))[0] == \
        grpc.StatusCode.UNAUTHENTICATED


async def test_tokens_of_disabled_and_deleted_users_are_unauthenticated(app, client, alice):
    await app.accounts.set_disabled("alice", True)
    code, message = await get_sync_status(client, alice.token)
    assert code == grpc.StatusCode.UNAUTHENTICATED and "disabled" in message
    await app.accounts.set_disabled("alice", False)
    # Disabling signed alice out everywhere: her old token stays ended, a new sign-in works.
    code, message = await get_sync_status(client, alice.token)
    assert code == grpc.StatusCode.UNAUTHENTICATED and "sign in again" in message
    assert (await get_sync_status(client, (await login(client, "alice")).token))[0] == \
        grpc.StatusCode.OK
    await app.accounts.delete_user("alice")
    code, message = await get_sync_status(client, alice.token)
    assert code == grpc.StatusCode.UNAUTHENTICATED and "no longer exists" in message


async def test_every_file_and_sync_method_requires_a_token(client):
    from musicsync.proto import file_pb2, sync_pb2
    calls = [
        client.sync.GetSync(empty_pb2.Empty()),
        client.sync.ListFiles(sync_pb2.ListFilesRequest()),
        client.sync.Changes(sync_pb2.ChangesRequest()),
        client.sync.Ack(sync_pb2.AckRequest()),
        client.file.Delete(file_pb2.DeleteRequest(hash="0" * 64)),
        client.file.Stat(file_pb2.StatRequest()),
        client.file.StartUpload(file_pb2.StartUploadRequest()),
        client.file.Upload(iter([file_pb2.UploadRequest(chunk=b"x")])),
    ]
    for call in calls:
        assert (await status_of(call))[0] == grpc.StatusCode.UNAUTHENTICATED
    for stream in (client.file.Download(file_pb2.DownloadRequest(hash="0" * 64)),
                   client.sync.Watch(sync_pb2.WatchRequest()),
                   client.sync.Diff(iter([sync_pb2.DiffRequest()]))):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            async for _ in stream:
                pass
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED


# -- Anonymous mode ---------------------------------------------------------------------

async def test_anonymous_mode_lets_token_less_calls_act_as_the_named_user(tmp_path):
    settings = make_settings(tmp_path, anonymous_user="phone")
    await create_user(settings, "phone")
    async with App(settings) as app, Client(app) as client:
        assert (await get_sync_status(client, None))[0] == grpc.StatusCode.OK
        await app.accounts.set_disabled("phone", True)
        code, message = await get_sync_status(client, None)
        assert code == grpc.StatusCode.UNAUTHENTICATED and "musicsync user add" in message


async def test_calls_with_a_token_act_as_the_token_user_in_anonymous_mode(tmp_path):
    settings = make_settings(tmp_path, anonymous_user="phone")
    await create_user(settings, "phone")
    async with App(settings) as app, Client(app) as client:
        bob = await register(client, "bob")
        await app.accounts.set_disabled("bob", True)
        # Bob's token must not fall back to the anonymous user.
        assert (await get_sync_status(client, bob.token))[0] == grpc.StatusCode.UNAUTHENTICATED
