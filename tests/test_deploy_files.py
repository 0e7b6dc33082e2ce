"""Deployment: the health probe containers run, and the deployment files, checked
without a Docker engine or a cluster."""

from __future__ import annotations

import asyncio

import pytest

from musicsync import cli
from musicsync.server import App

from .conftest import make_settings
from .helpers import free_port

# -- `musicsync health`, the probe of the compose file and the image ---------------


async def health(*args: str) -> int:
    return await asyncio.to_thread(cli.main, ["health", *args])


async def test_health_exits_0_while_the_server_serves(app, capsys):
    port = app.ports["file"]
    assert await health("--port", str(port)) == 0
    assert await health("--port", str(port), "--service", "file.FileService") == 0
    assert capsys.readouterr().out.strip().endswith("file.FileService: SERVING")


async def test_health_exits_1_when_nothing_listens(capsys):
    assert await health("--port", str(free_port()), "--timeout", "2") == 1
    assert "UNAVAILABLE" in capsys.readouterr().out


async def test_health_exits_1_for_a_service_the_server_does_not_run(tmp_path, capsys):
    async with App(make_settings(tmp_path, port=0), services=("file",)) as app:
        port = str(app.ports["file"])
        assert await health("--port", port, "--service", "file.FileService") == 0
        assert await health("--port", port, "--service", "auth.AuthService") == 1
    assert "NOT_FOUND" in capsys.readouterr().out


async def test_health_asks_the_port_in_the_environment(app, monkeypatch):
    monkeypatch.setenv("PORT", str(app.ports["sync"]))
    monkeypatch.setenv("HOST", "0.0.0.0")  # a wildcard: the probe asks 127.0.0.1
    assert await health() == 0
    monkeypatch.setenv("PORT", str(free_port()))
    assert await health("--timeout", "2") == 1


@pytest.mark.parametrize("host, expected", [
    ("0.0.0.0", "127.0.0.1:50051"), ("::", "127.0.0.1:50051"),
    ("10.0.0.7", "10.0.0.7:50051"), ("fd00::7", "[fd00::7]:50051"),
])
def test_health_probe_address_follows_the_listen_address(host, expected):
    from musicsync.probe import probe_address

    assert probe_address(make_settings(".", host=host, auth_port=50051)) == expected
