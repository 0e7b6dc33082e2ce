"""Prometheus metrics: scraped over HTTP from a running server after real RPCs."""

from __future__ import annotations

import asyncio
import socket

import grpc
import pytest
from google.protobuf import empty_pb2
from prometheus_client.parser import text_string_to_metric_families

from musicsync.errors import ConfigError
from musicsync.metrics import NullMetrics
from musicsync.proto import auth_pb2
from musicsync.server import App

from .conftest import PASSWORD, REGISTRATION_KEY, make_settings
from .helpers import Client, status_of, wait_until


async def http(port: int, request_line: str = "GET /metrics HTTP/1.1",
               *headers: str) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request to the metrics port: status, headers (lower-case names), body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [request_line, "Host: 127.0.0.1", *headers]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    response = await reader.read()  # the endpoint closes after one response
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {name.strip().lower(): value.strip()
              for name, value in (line.split(":", 1) for line in header_lines)}
    return int(status_line.split(" ")[1]), parsed, body


async def samples(port: int) -> dict[tuple[str, frozenset], float]:
    """Every sample of a scrape, by name and label set."""
    status, _, body = await http(port)
    assert status == 200
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples}


def rpc(name: str, service: str, method: str, code: str, **extra: str):
    labels = {"service": service, "method": method, "code": code, **extra}
    return (name, frozenset(labels.items()))


@pytest.fixture
async def metered(tmp_path):
    async with App(make_settings(tmp_path / "data", metrics_port=0)) as app:
        yield app


async def test_scrape_counts_rpcs_by_method_and_status(metered):
    async with Client(metered) as client:
        registered = await client.auth.Register(auth_pb2.RegisterRequest(
            username="alice", password=PASSWORD, security_key=REGISTRATION_KEY))
        await status_of(client.auth.Register(auth_pb2.RegisterRequest(
            username="bob", password=PASSWORD, security_key="wrong key")))
        for _ in range(2):
            await client.sync.GetSync(empty_pb2.Empty(), metadata=client.meta(registered.token))
        code, _ = await status_of(client.sync.GetSync(empty_pb2.Empty()))
        assert code == grpc.StatusCode.UNAUTHENTICATED

    auth, sync = "auth.AuthService", "sync.SyncService"
    # A call is counted as it ends on the server, which may be just after its client
    # has the answer: wait for the last one's count before reading the rest.
    last = rpc("musicsync_rpc_total", sync, "GetSync", "UNAUTHENTICATED")
    scraped = {}

    async def counted() -> bool:
        scraped.update(await samples(metered.metrics_port))
        return last in scraped
    await wait_until(counted, "the refused GetSync to be counted")
    assert scraped[rpc("musicsync_rpc_total", auth, "Register", "OK")] == 1
    assert scraped[rpc("musicsync_rpc_total", auth, "Register", "PERMISSION_DENIED")] == 1
    assert scraped[rpc("musicsync_rpc_total", sync, "GetSync", "OK")] == 2
    assert scraped[rpc("musicsync_rpc_total", sync, "GetSync", "UNAUTHENTICATED")] == 1
    assert scraped[rpc("musicsync_rpc_duration_seconds_count", sync, "GetSync", "OK")] == 2
    assert scraped[rpc("musicsync_rpc_duration_seconds_sum", sync, "GetSync", "OK")] > 0
    assert scraped[rpc("musicsync_rpc_duration_seconds_bucket", sync, "GetSync", "OK",
                       le="+Inf")] == 2


async def test_scrape_shows_bytes_and_storage_errors_reported_to_app_metrics(metered):
    metered.metrics.bytes_received(5_000_000)
    metered.metrics.bytes_received(1)
    metered.metrics.bytes_sent(42)
    metered.metrics.storage_error("put")
    metered.metrics.storage_error("put")
    metered.metrics.storage_error("get")

    scraped = await samples(metered.metrics_port)

    assert scraped[("musicsync_received_bytes_total", frozenset())] == 5_000_001
    assert scraped[("musicsync_sent_bytes_total", frozenset())] == 42
    assert scraped[("musicsync_storage_errors_total", frozenset({("operation", "put")}))] == 2
    assert scraped[("musicsync_storage_errors_total", frozenset({("operation", "get")}))] == 1


async def test_scrape_includes_process_memory(metered):
    scraped = await samples(metered.metrics_port)
    assert scraped[("process_resident_memory_bytes", frozenset())] > 10 * 1024 * 1024


async def test_two_servers_in_one_process_keep_separate_counts(metered, tmp_path):
    key = rpc("musicsync_rpc_total", "sync.SyncService", "GetSync", "UNAUTHENTICATED")
    theirs = {}

    async def counted() -> bool:  # as the call ends on the server (see above)
        theirs.update(await samples(other.metrics_port))
        return key in theirs
    async with App(make_settings(tmp_path / "other", metrics_port=0)) as other:
        async with Client(other) as client:
            await status_of(client.sync.GetSync(empty_pb2.Empty()))
        await wait_until(counted, "the other server's refused GetSync to be counted")
    ours = await samples(metered.metrics_port)
    assert theirs[key] == 1
    assert key not in ours


async def test_endpoint_speaks_openmetrics_when_asked(metered):
    status, headers, body = await http(
        metered.metrics_port, "GET /metrics HTTP/1.1",
        "Accept: application/openmetrics-text; version=1.0.0; charset=utf-8")
    assert status == 200
    assert headers["content-type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


async def test_endpoint_answers_head_without_a_body(metered):
    status, headers, body = await http(metered.metrics_port, "HEAD /metrics HTTP/1.1")
    assert status == 200 and body == b""
    assert int(headers["content-length"]) > 0


@pytest.mark.parametrize("request_line, expected", [
    ("GET / HTTP/1.1", 404),
    ("GET /metricsx HTTP/1.1", 404),
    ("POST /metrics HTTP/1.1", 405),
    ("nonsense", 400),
])
async def test_endpoint_refuses_other_requests(metered, request_line, expected):
    status, _, _ = await http(metered.metrics_port, request_line)
    assert status == expected


async def test_a_silent_connection_does_not_block_scrapes(metered):
    _, writer = await asyncio.open_connection("127.0.0.1", metered.metrics_port)
    try:
        status, _, _ = await http(metered.metrics_port)
        assert status == 200
    finally:
        writer.close()


async def test_metrics_are_off_by_default(app):
    assert app.metrics_port is None
    assert isinstance(app.metrics, NullMetrics)
    app.metrics.bytes_sent(10)  # callers report without checking; nothing happens
    app.metrics.storage_error("put")


async def test_metrics_port_in_use_is_a_config_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=f"metrics on 127.0.0.1:{port}"):
            async with App(make_settings(tmp_path, metrics_port=port)):
                pass
