"""The access log: one line per call with the status the client saw, no stray tracebacks."""

from __future__ import annotations

import logging

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from musicsync.proto import file_pb2
from musicsync.server import App

from .conftest import make_settings
from .helpers import Client, wait_until
from .test_metrics import rpc, samples
from .transfer import upload, wav_bytes


def rpc_lines(caplog, method: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name == "musicsync.rpc" and f"rpc {method} " in r.getMessage()]


def errors(caplog) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]


async def test_download_past_its_deadline_logs_deadline_exceeded_and_no_traceback(
        app, client, alice, caplog):
    caplog.set_level(logging.DEBUG)
    sha = (await upload(client, wav_bytes(400, salt=b"long"))).hash  # 6.4 MB
    # A client that reads nothing, with flow-control windows that do not grow: the
    # server's writes wait until the deadline passes under them.
    options = [("grpc.http2.bdp_probe", 0)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{client.port}", options=options) as channel:
        call = channel.unary_stream(
            "/file.FileService/Download",
            request_serializer=file_pb2.DownloadRequest.SerializeToString)(
            file_pb2.DownloadRequest(hash=sha), metadata=client.meta(), timeout=0.5)
        assert await call.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    method = "/file.FileService/Download"
    await wait_until(lambda: rpc_lines(caplog, method), "the access line")
    assert "code=DEADLINE_EXCEEDED" in rpc_lines(caplog, method)[0].getMessage()
    assert errors(caplog) == []


async def test_download_cancelled_by_its_client_logs_cancelled_and_no_traceback(
        client, alice, caplog):
    caplog.set_level(logging.DEBUG)
    sha = (await upload(client, wav_bytes(400, salt=b"long"))).hash
    # Windows that do not grow: the server's next write waits while the client cancels.
    options = [("grpc.http2.bdp_probe", 0)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{client.port}", options=options) as channel:
        download = channel.unary_stream(
            "/file.FileService/Download",
            request_serializer=file_pb2.DownloadRequest.SerializeToString)
        for _ in range(3):
            call = download(file_pb2.DownloadRequest(hash=sha), metadata=client.meta())
            async for _ in call:
                break
            call.cancel()
    method = "/file.FileService/Download"
    await wait_until(lambda: len(rpc_lines(caplog, method)) == 3, "three access lines")
    assert all("code=CANCELLED" in r.getMessage() for r in rpc_lines(caplog, method))
    assert errors(caplog) == []


async def test_reflection_and_health_watch_are_logged_at_info_and_check_at_debug(
        client, caplog):
    caplog.set_level(logging.DEBUG, logger="musicsync.rpc")
    health = health_pb2_grpc.HealthStub(client.channel)
    await health.Check(health_pb2.HealthCheckRequest())
    watch = health.Watch(health_pb2.HealthCheckRequest())
    async for _ in watch:
        break
    watch.cancel()
    reflection = reflection_pb2_grpc.ServerReflectionStub(client.channel)
    async for _ in reflection.ServerReflectionInfo(iter([
            reflection_pb2.ServerReflectionRequest(list_services="")])):
        pass
    check, watching = "/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"
    reflecting = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
    await wait_until(lambda: all(rpc_lines(caplog, m) for m in (check, watching, reflecting)),
                     "an access line for each call")
    assert rpc_lines(caplog, check)[0].levelno == logging.DEBUG
    assert rpc_lines(caplog, watching)[0].levelno == logging.INFO
    assert "code=CANCELLED" in rpc_lines(caplog, watching)[0].getMessage()
    assert rpc_lines(caplog, reflecting)[0].levelno == logging.INFO


async def test_health_and_reflection_calls_are_counted_in_metrics(tmp_path):
    async with App(make_settings(tmp_path / "data", metrics_port=0)) as app:
        async with Client(app) as client:
            await health_pb2_grpc.HealthStub(client.channel).Check(
                health_pb2.HealthCheckRequest())
            async for _ in reflection_pb2_grpc.ServerReflectionStub(
                    client.channel).ServerReflectionInfo(iter([
                        reflection_pb2.ServerReflectionRequest(list_services="")])):
                pass
            reflection = "grpc.reflection.v1alpha.ServerReflection"
            # Counted before the call ends: the interceptor observes, then grpc answers.
            scraped = await samples(app.metrics_port)
            assert scraped[rpc("musicsync_rpc_total", "grpc.health.v1.Health", "Check",
                               "OK")] == 1
            assert scraped[rpc("musicsync_rpc_total", reflection, "ServerReflectionInfo",
                               "OK")] == 1
