"""What unauthenticated callers of the Auth service can cost the server: bounded request
sizes, a bounded hashing queue, bounded storage per failed sign-in, and no write lock for
tokens the server does not know."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2
from sqlalchemy import select

from musicsync.auth.passwords import MAX_CONCURRENT_HASHES
from musicsync.auth_gate import AuthGate
from musicsync.db.models import LoginFailure
from musicsync.errors import ResourceExhausted
from musicsync.limits import (AUTH_REQUEST_BYTES, TOKENLESS_RECEIVE_SECONDS,
                              TOKENLESS_RECEIVING_PER_ADDRESS)
from musicsync.proto import auth_pb2, sync_pb2
from musicsync.server import App

from .conftest import PASSWORD, make_settings
from .helpers import Client, ServerProcess, free_port, status_of, wait_until
from .test_cli import CHEAP_ARGON2

HUGE = 3800 * 1024  # what the review sent: just under the 4 MiB the server receives
# A client sends messages of any size; the server decides what it takes.
BIG_SENDER = (("grpc.max_send_message_length", 8 * 1024 * 1024),)


def big_client(port: int) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=BIG_SENDER)


async def failures_stored(app: App) -> list[tuple[str, str]]:
    async with app.db.read() as session:
        return (await session.execute(
            select(LoginFailure.username_key, LoginFailure.address))).all()


async def test_oversized_auth_requests_are_refused_unparsed_before_any_hashing(app):
    async with big_client(app.ports["auth"]) as channel:
        from musicsync.proto import auth_pb2_grpc
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        calls = [stub.Login(auth_pb2.LoginRequest(username="alice", password="p" * HUGE))
                 for _ in range(20)]
        calls += [stub.Login(auth_pb2.LoginRequest(username="u" * HUGE, password=PASSWORD))
                  for _ in range(20)]
        calls.append(stub.Register(auth_pb2.RegisterRequest(
            username="alice", password=PASSWORD, security_key="k" * (AUTH_REQUEST_BYTES + 1))))
        answers = await asyncio.gather(*(status_of(call) for call in calls))
    assert {code for code, _ in answers} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert f"at most {AUTH_REQUEST_BYTES} bytes" in answers[0][1]
    assert app.accounts.hasher.most_waiting == 0
    assert await failures_stored(app) == []


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
async def test_concurrent_oversized_logins_leave_an_auth_server_within_its_memory(tmp_path):
    port = free_port()
    server = ServerProcess(["serve", "auth", "--data-dir", str(tmp_path / "data"),
                            "--host", "127.0.0.1", "--port", str(port)],
                           CHEAP_ARGON2, tmp_path / "log")

    def peak_rss_mib() -> float:
        status = Path(f"/proc/{server.process.pid}/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines()
                        if line.startswith("VmHWM:"))) / 1024
    try:
        await server.wait_serving(port)
        before = peak_rss_mib()
        async with big_client(port) as channel:
            from musicsync.proto import auth_pb2_grpc
            stub = auth_pb2_grpc.AuthServiceStub(channel)
            answers = await asyncio.gather(*(status_of(stub.Login(auth_pb2.LoginRequest(
                username="alice", password="p" * HUGE))) for _ in range(100)))
        after = peak_rss_mib()
    finally:
        server.stop()
    assert {code for code, _ in answers} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    # Before: 100 such Logins took the peak from 69 to 483 MiB; now about +30 MiB.
    assert after - before < 64, f"peak RSS {before:.0f} -> {after:.0f} MiB"


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines()
                    if line.startswith(field + ":"))) / 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
async def test_oversized_login_floods_leave_a_one_process_server_at_rest_within_its_memory(
        tmp_path):
    """The default layout receives 4 MiB messages (upload chunks), so grpc takes an oversized
    Login in whole before it is refused; what that left behind is given back."""
    port = free_port()
    server = ServerProcess(["serve", "--data-dir", str(tmp_path / "data"), "--host",
                            "127.0.0.1", "--auth-port", str(port), "--file-port", "0",
                            "--sync-port", "0"], CHEAP_ARGON2, tmp_path / "log")
    try:
        await server.wait_serving(port)
        before = rss_mib(server.process.pid)
        answers = []
        for _ in range(2):
            channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=(
                *BIG_SENDER, ("grpc.use_local_subchannel_pool", 1))) for _ in range(4)]
            from musicsync.proto import auth_pb2_grpc
            stubs = [auth_pb2_grpc.AuthServiceStub(channel) for channel in channels]
            answers += await asyncio.gather(*(status_of(stubs[n % 4].Login(
                auth_pb2.LoginRequest(username="alice", password="p" * HUGE)))
                for n in range(100)))
            for channel in channels:
                await channel.close()
        # Before: 262-412 MiB at rest after such floods (70 before them); now 72-82.
        await wait_until(lambda: rss_mib(server.process.pid) < before + 40,
                         f"the server's RSS back near {before:.0f} MiB")
    finally:
        server.stop()
    assert {code for code, _ in answers} == {grpc.StatusCode.RESOURCE_EXHAUSTED}


async def never_sent():
    await asyncio.Event().wait()
    yield b""  # pragma: no cover - never reached


def stalled_login(channel: grpc.aio.Channel):
    """A Login whose request message never comes (its headers do)."""
    return channel.stream_unary("/auth.AuthService/Login",
                                request_serializer=lambda data: data)(never_sent())


async def test_token_less_requests_never_sent_are_refused_in_time_and_free_their_slots(
        tmp_path):
    async with App(make_settings(tmp_path / "data", host="localhost")) as app, \
            Client(app) as client, Client(app, host="[::1]") as other:
        await client.auth.Register(auth_pb2.RegisterRequest(
            username="alice", password=PASSWORD, security_key=app.settings.security_key))
        gate = app.auth_gate
        stalled = [stalled_login(client.channel) for _ in range(TOKENLESS_RECEIVING_PER_ADDRESS)]
        waiting = [asyncio.ensure_future(status_of(call)) for call in stalled]
        await wait_until(lambda: gate.receiving == TOKENLESS_RECEIVING_PER_ADDRESS,
                         "the stalled Logins admitted")
        # One call more from that address waits, and is refused unread, naming the bound ...
        code, message = await status_of(client.auth.Login(auth_pb2.LoginRequest(
            username="alice", password=PASSWORD)))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"{TOKENLESS_RECEIVING_PER_ADDRESS} requests without a token from your " \
               "address" in message
        # ... while another address signs in.
        await other.auth.Login(auth_pb2.LoginRequest(username="alice", password=PASSWORD))
        answers = await asyncio.gather(*waiting)
        assert {code for code, _ in answers} == {grpc.StatusCode.DEADLINE_EXCEEDED}
        assert f"within {TOKENLESS_RECEIVE_SECONDS:g} seconds" in answers[0][1]
        assert gate.receiving == 0
        await client.auth.Login(auth_pb2.LoginRequest(username="alice", password=PASSWORD))


async def test_the_gate_refuses_beyond_its_total_across_addresses_and_admits_once_one_leaves():
    gate = AuthGate(total=3, per_address=2, wait_seconds=0)
    admitted = [gate.enter_now("10.0.0.1"), gate.enter_now("10.0.0.1"),
                gate.enter_now("10.0.0.2")]
    with pytest.raises(ResourceExhausted, match="3 requests without a token are being"):
        await gate.enter("10.0.0.3")
    gate.wait_seconds = 30
    waiting = asyncio.ensure_future(gate.enter("10.0.0.3"))
    await wait_until(lambda: gate.waiting == 1, "the call waiting for a slot")
    admitted[0].leave()
    admitted[0].leave()  # again: harmless
    admitted.append(await waiting)  # the freed slot goes to the waiting call
    assert gate.receiving == 3 and gate.refused == 1


async def test_hashing_queue_is_bounded_and_sign_ins_beyond_it_are_told_to_retry(tmp_path):
    # Hashes slow enough that 60 sign-ins arrive while the first ones still run.
    settings = make_settings(tmp_path / "data", argon2_time_cost=3, argon2_memory_kib=32768)
    async with App(settings) as app, Client(app) as client:
        hasher = app.accounts.hasher
        answers = await asyncio.gather(*(status_of(client.auth.Login(auth_pb2.LoginRequest(
            username=f"user{n}", password=PASSWORD))) for n in range(60)))
    codes = [code for code, _ in answers]
    busy = [message for code, message in answers if code == grpc.StatusCode.RESOURCE_EXHAUSTED]
    assert busy and all("try again in a few seconds" in message for message in busy)
    assert codes.count(grpc.StatusCode.UNAUTHENTICATED) >= MAX_CONCURRENT_HASHES
    assert 0 < hasher.most_waiting <= 16 and hasher.waiting == 0


async def test_failed_sign_ins_store_a_fixed_size_key_whatever_the_username(app, client):
    name = "ü" * 64  # the longest valid name: 128 bytes of UTF-8
    assert (await status_of(client.auth.Login(auth_pb2.LoginRequest(
        username=name, password=PASSWORD))))[0] == grpc.StatusCode.UNAUTHENTICATED
    code, message = await status_of(client.auth.Login(auth_pb2.LoginRequest(
        username="x" * 256, password=PASSWORD)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "3 to 64 characters" in message
    stored = await failures_stored(app)
    assert stored == [(stored[0][0], "127.0.0.1")] and len(stored[0][0]) == 64
    assert name not in stored[0][0]


# Calls of the flood, each kind: all at once on one connection, within its 100 streams.
FLOOD = 45


async def test_unknown_tokens_are_answered_without_waiting_for_the_write_lock(app, client, alice):
    """A flood of garbage Refresh and Logout calls must not queue in front of honest
    writers: while another writer holds the database's write lock, they still answer."""
    ended = await client.auth.Login(auth_pb2.LoginRequest(username="alice", password=PASSWORD))
    await client.auth.Logout(auth_pb2.LogoutRequest(refresh_token=ended.refresh_token))
    async with app.db.write():  # an honest writer, holding the lock throughout
        answers = await asyncio.gather(
            *(status_of(client.auth.Refresh(auth_pb2.RefreshRequest(
                refresh_token=f"garbage{n}"), timeout=20)) for n in range(FLOOD)),
            *(status_of(client.auth.Logout(auth_pb2.LogoutRequest(
                refresh_token=f"garbage{n}"), timeout=20)) for n in range(FLOOD)),
            status_of(client.auth.Refresh(auth_pb2.RefreshRequest(
                refresh_token=ended.refresh_token), timeout=20)),
            status_of(client.auth.Logout(auth_pb2.LogoutRequest(
                refresh_token=ended.refresh_token), timeout=20)))
    garbage_refreshes, garbage_logouts, (known_refresh, known_logout) = (
        answers[:FLOOD], answers[FLOOD:2 * FLOOD], answers[2 * FLOOD:])
    refreshes, logouts = [*garbage_refreshes, known_refresh], [*garbage_logouts, known_logout]
    assert {code for code, _ in refreshes} == {grpc.StatusCode.UNAUTHENTICATED}
    assert {code for code, _ in logouts} == {grpc.StatusCode.OK}
    # And an honest write goes through as before.
    await client.sync.Ack(sync_pb2.AckRequest(device=sync_pb2.Device(id="phone"), cursor=0),
                          metadata=client.meta())
    assert (await client.sync.GetSync(empty_pb2.Empty(), metadata=client.meta()))
