"""Throttling of password and security-key guesses: per client address with growing delays,
a ceiling per account that spares the owner's addresses, `musicsync user unlock`."""

from __future__ import annotations

import grpc
import pytest

from musicsync.auth.throttle import LoginPolicy, address_key
from musicsync.errors import ResourceExhausted, Unauthenticated
from musicsync.proto import auth_pb2
from musicsync.peers import parse_networks, peer_address
from musicsync.server import App

from .conftest import PASSWORD, REGISTRATION_KEY, make_settings
from .helpers import Client, status_of
from .test_cli import musicsync

WRONG = "wrong password"


def login(client: Client, username: str = "alice", password: str = PASSWORD, *,
          forwarded_for: str | None = None):
    metadata = (("x-forwarded-for", forwarded_for),) if forwarded_for else ()
    return status_of(client.auth.Login(auth_pb2.LoginRequest(username=username,
                                                             password=password),
                                       metadata=metadata))


async def fail(client: Client, times: int, username: str = "alice", *,
               forwarded_for: str | None = None) -> None:
    for _ in range(times):
        code, _ = await login(client, username, WRONG, forwarded_for=forwarded_for)
        assert code == grpc.StatusCode.UNAUTHENTICATED


@pytest.fixture
async def two_address_app(tmp_path, clock):
    """A server on localhost, reachable from 127.0.0.1 and from ::1 (two client addresses)."""
    async with App(make_settings(tmp_path / "data", host="localhost"), clock=clock) as app:
        yield app


async def test_an_address_waits_after_five_failures_one_second_doubling_up_to_fifteen_minutes(
        client, alice, clock):
    await fail(client, 5)
    code, message = await login(client)  # even the right password must wait
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "from your address" in message and "try again in 1 seconds" in message
    waits = [min(2 ** n, 15 * 60) for n in range(12)]  # 1, 2, 4, ... 512, 900, 900
    for waited, next_wait in zip(waits, waits[1:]):
        clock.advance(waited)
        await fail(client, 1)
        code, message = await login(client)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"try again in {next_wait} seconds" in message
    clock.advance(15 * 60)
    assert (await login(client))[0] == grpc.StatusCode.OK
    # The success started the count over: the next failures cost nothing again.
    await fail(client, 4)
    assert (await login(client))[0] == grpc.StatusCode.OK


async def test_failures_from_one_address_do_not_keep_the_owner_out_at_another(
        two_address_app, clock):
    async with Client(two_address_app) as owner, \
            Client(two_address_app, host="[::1]") as guesser:
        await owner.auth.Register(auth_pb2.RegisterRequest(
            username="alice", password=PASSWORD, security_key=REGISTRATION_KEY))
        await fail(guesser, 5)
        assert (await login(guesser))[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert (await login(owner))[0] == grpc.StatusCode.OK
        # Before: five failures from anyone locked the account for 15 minutes.
        await fail(owner, 1)
        assert (await login(owner))[0] == grpc.StatusCode.OK


async def test_unknown_usernames_are_throttled_like_known_ones(client, alice):
    await fail(client, 5, "nobody")
    await fail(client, 5, "alice")
    assert (await login(client, "nobody", WRONG))[:1] == (grpc.StatusCode.RESOURCE_EXHAUSTED,)
    unknown = (await login(client, "nobody", WRONG))[1]
    known = (await login(client, "alice", WRONG))[1]
    assert unknown == known


async def test_a_day_without_failures_starts_an_address_count_over(client, alice, clock):
    await fail(client, 5)
    for wait in (1, 2, 4):
        clock.advance(wait)
        await fail(client, 1)
    clock.advance(86400 + 1)
    await fail(client, 4)
    assert (await login(client))[0] == grpc.StatusCode.OK


async def test_account_ceiling_stops_distributed_guessing_but_spares_the_owners_address(
        app, alice, clock):
    accounts = app.accounts
    await accounts.login("alice", PASSWORD, "192.0.2.1")  # the owner's phone, known
    ceiling = LoginPolicy().account_ceiling
    for n in range(ceiling):  # 4 guesses from each of 25 addresses: none waits
        with pytest.raises(Unauthenticated):
            await accounts.login("alice", WRONG, f"198.51.100.{n // 4}")
    with pytest.raises(ResourceExhausted) as refused:
        await accounts.login("alice", PASSWORD, "203.0.113.9")  # a new address
    assert "from many addresses" in refused.value.message
    assert "try again in 3600 seconds" in refused.value.message
    assert (await accounts.login("alice", PASSWORD, "192.0.2.1")).access_token
    clock.advance(3601)
    assert (await accounts.login("alice", PASSWORD, "203.0.113.9")).access_token


async def test_throttling_is_counted_in_the_metrics(tmp_path, clock):
    from .test_metrics import samples
    settings = make_settings(tmp_path / "data", metrics_port=0)
    async with App(settings, clock=clock) as app, Client(app) as client:
        await client.auth.Register(auth_pb2.RegisterRequest(
            username="alice", password=PASSWORD, security_key=REGISTRATION_KEY))
        await fail(client, 5)
        await login(client)
        await login(client)
        found = await samples(app.metrics_port)
    key = ("musicsync_auth_throttled_total",
           frozenset({("method", "Login"), ("reason", "address")}))
    assert found[key] == 2


async def test_user_unlock_lets_the_owner_in_at_once(app, client, alice, settings):
    await fail(client, 5)
    assert (await login(client))[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
    unlocked = musicsync("user", "unlock", "ALICE", data_dir=settings.data_dir,
                         database_url=settings.database_url)
    assert unlocked.returncode == 0, unlocked.stderr
    assert "cleared 5 failed sign-ins" in unlocked.stdout
    assert (await login(client))[0] == grpc.StatusCode.OK
    missing = musicsync("user", "unlock", "nobody", data_dir=settings.data_dir,
                        database_url=settings.database_url)
    assert missing.returncode == 1 and "no user named" in missing.stderr


async def test_wrong_security_keys_from_an_address_wait_growing_delays(client, clock):
    async def register(key: str, name: str = "alice"):
        return await status_of(client.auth.Register(auth_pb2.RegisterRequest(
            username=name, password=PASSWORD, security_key=key)))
    for _ in range(5):
        assert (await register("guess"))[0] == grpc.StatusCode.PERMISSION_DENIED
    code, message = await register(REGISTRATION_KEY)  # even the right key must wait
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "try again in 1 seconds" in message
    clock.advance(1)
    assert (await register("guess"))[0] == grpc.StatusCode.PERMISSION_DENIED
    code, message = await register(REGISTRATION_KEY)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "try again in 2 seconds" in message
    clock.advance(2)
    assert (await register(REGISTRATION_KEY))[0] == grpc.StatusCode.OK


@pytest.mark.parametrize("peer, address, key", [
    ("ipv4:1.2.3.4:5678", "1.2.3.4", "1.2.3.4"),
    ("ipv6:[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("ipv6:%5B::1%5D:443", "::1", "::/64"),
    ("ipv6:[::ffff:10.0.0.1]:80", "::ffff:10.0.0.1", "10.0.0.1"),
    ("unix:/run/musicsync.sock", "unix:/run/musicsync.sock", "unix:/run/musicsync.sock"),
])
def test_client_address_is_the_peer_without_its_port_and_ipv6_counts_by_64(peer, address, key):
    assert peer_address(peer) == address
    assert address_key(address) == key


async def test_behind_a_trusted_proxy_each_phone_is_throttled_at_its_own_address(
        tmp_path, clock):
    settings = make_settings(tmp_path / "data", trusted_proxies=parse_networks("127.0.0.1"))
    async with App(settings, clock=clock) as app, Client(app) as client:
        await client.auth.Register(auth_pb2.RegisterRequest(
            username="alice", password=PASSWORD, security_key=REGISTRATION_KEY))
        # What a phone writes in the header itself stays on the left, ignored.
        await fail(client, 5, forwarded_for="198.51.100.1, 203.0.113.5")
        code, message = await login(client, forwarded_for="198.51.100.9, 203.0.113.5")
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "from your address" in message
        assert (await login(client, forwarded_for="203.0.113.6"))[0] == grpc.StatusCode.OK


async def test_x_forwarded_for_from_an_untrusted_peer_changes_nothing(client, alice):
    for n in range(5):  # a guesser cannot spread its failures over made-up addresses
        await fail(client, 1, forwarded_for=f"203.0.113.{n}")
    code, _ = await login(client, forwarded_for="203.0.113.99")
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED

