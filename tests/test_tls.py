"""TLS on every port: a self-signed pair made at the first start and pinned by its logged
fingerprint, operator certificate files reloaded when renewed, and `musicsync health`
under TLS. Certificates are made in the test with the openssl command."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import shutil
import ssl
import stat
import subprocess
import threading
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from musicsync import cli
from musicsync.config import Settings
from musicsync.errors import ConfigError
from musicsync.proto import auth_pb2, auth_pb2_grpc
from musicsync.server import App
from musicsync.tls import certificate_names, ensure_self_signed, fingerprint, self_signed_files

from .conftest import PASSWORD, REGISTRATION_KEY, make_settings
from .helpers import wait_until

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="the openssl command is not installed")
FINGERPRINT_LOGGED = re.compile(r"SHA-256 fingerprint ((?:[0-9A-F]{2}:){31}[0-9A-F]{2})")


def _openssl(*args: str) -> str:
    return subprocess.run([OPENSSL, *args], check=True, capture_output=True, text=True).stdout


def make_ca(folder: Path) -> tuple[Path, Path]:
    """A certificate authority of the test's own, standing in for a public one."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "ca.pem", folder / "ca.key"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
             "-subj", "/CN=test authority")
    return cert, key


def issue(ca: tuple[Path, Path], folder: Path, name: str) -> tuple[bytes, bytes]:
    """A certificate for ``name`` signed by ``ca``: (PEM chain: leaf then CA, PEM key)."""
    folder.mkdir(parents=True, exist_ok=True)
    key, request, leaf = folder / "leaf.key", folder / "leaf.csr", folder / "leaf.pem"
    extensions = folder / "ext.cnf"
    extensions.write_text(f"subjectAltName=DNS:{name}\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(request), "-subj", f"/CN={name}")
    _openssl("x509", "-req", "-in", str(request), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
             "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "2",
             "-out", str(leaf), "-extfile", str(extensions))
    return leaf.read_bytes() + ca[0].read_bytes(), key.read_bytes()


def install(cert: Path, key: Path, pair: tuple[bytes, bytes]) -> None:
    """Puts a pair in place as a renewal tool does: each file replaced by a rename."""
    for path, content in ((key, pair[1]), (cert, pair[0])):
        temp = path.with_name(path.name + ".new")
        temp.write_bytes(content)
        temp.chmod(0o600)
        temp.replace(path)


def served_fingerprint(port: int) -> str:
    """The fingerprint of the certificate a new TLS connection to ``port`` is shown."""
    pem = ssl.get_server_certificate(("127.0.0.1", port), timeout=5)
    return fingerprint(pem.encode())


async def check_health(port: int, root: bytes, name: str | None = None) -> int:
    options = [("grpc.ssl_target_name_override", name)] if name else []
    credentials = grpc.ssl_channel_credentials(root_certificates=root)
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials,
                                       options=options) as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10)
    return response.status


# -- self-signed: made once, served on every port, pinned by its fingerprint -------------

@needs_openssl
async def test_self_signed_server_speaks_tls_on_every_port_and_refuses_plaintext(tmp_path):
    async with App(make_settings(tmp_path / "data", tls="self-signed")) as app:
        root = self_signed_files(tmp_path / "data").cert.read_bytes()
        for port in set(app.ports.values()):
            assert await check_health(port, root) == health_pb2.HealthCheckResponse.SERVING
        credentials = grpc.ssl_channel_credentials(root_certificates=root)
        async with grpc.aio.secure_channel(f"127.0.0.1:{app.ports['auth']}",
                                           credentials) as channel:
            await auth_pb2_grpc.AuthServiceStub(channel).Register(auth_pb2.RegisterRequest(
                username="alice", password=PASSWORD, security_key=REGISTRATION_KEY))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.ports['auth']}") as plain:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await auth_pb2_grpc.AuthServiceStub(plain).Login(
                    auth_pb2.LoginRequest(username="alice", password=PASSWORD), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


@needs_openssl
async def test_logged_fingerprint_pins_the_served_certificate_and_survives_restarts(
        tmp_path, caplog):
    settings = make_settings(tmp_path / "data", tls="self-signed")
    caplog.set_level(logging.INFO)
    async with App(settings) as app:
        logged = FINGERPRINT_LOGGED.findall(caplog.text)
        served = await asyncio.to_thread(served_fingerprint, app.ports["file"])
    assert logged == [served]
    # The same digest as openssl's own, computed from the file on disk.
    cert = self_signed_files(settings.data_dir).cert
    assert _openssl("x509", "-in", str(cert), "-noout", "-fingerprint",
                    "-sha256").strip().split("=")[1] == served
    caplog.clear()
    async with App(settings) as app:  # the next start serves the same pair
        assert await asyncio.to_thread(served_fingerprint, app.ports["auth"]) == served
    assert FINGERPRINT_LOGGED.findall(caplog.text) == [served]


@needs_openssl
def test_self_signed_pair_is_private_and_names_the_machine_and_tls_hostnames(tmp_path):
    settings = make_settings(tmp_path / "data", tls="self-signed",
                             tls_hostnames=("music.example.org", "192.168.1.20"))
    from musicsync.tls import self_signed_names
    files = ensure_self_signed(settings.data_dir, self_signed_names(settings))
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.key.parent.stat().st_mode) == 0o700
    names = set(certificate_names(files.cert))
    assert {("DNS", "localhost"), ("IP Address", "127.0.0.1"), ("IP Address", "::1"),
            ("DNS", "music.example.org"), ("IP Address", "192.168.1.20")} <= names
    assert "ASN1 OID: prime256v1" in _openssl("pkey", "-in", str(files.key), "-noout",
                                              "-text")


@needs_openssl
async def test_a_kept_self_signed_pair_lacking_new_tls_hostnames_is_reported(tmp_path, caplog):
    async with App(make_settings(tmp_path / "data", tls="self-signed")) as app:
        pinned = await asyncio.to_thread(served_fingerprint, app.ports["auth"])
    settings = make_settings(tmp_path / "data", tls="self-signed",
                             tls_hostnames=("music.example.org",))
    async with App(settings) as app:  # still the pinned pair, with a warning
        assert await asyncio.to_thread(served_fingerprint, app.ports["auth"]) == pinned
    assert "was made without music.example.org; to add them, delete that folder" in caplog.text


@needs_openssl
def test_services_starting_together_share_one_self_signed_pair(tmp_path):
    results, errors = [], []

    def make() -> None:
        try:
            files = ensure_self_signed(tmp_path, ("localhost", "127.0.0.1"))
            results.append((files.cert.read_bytes(), files.key.read_bytes()))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
    threads = [threading.Thread(target=make) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(set(results)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["tls"]  # no work folders left behind


def test_self_signed_without_openssl_is_refused_saying_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="needs the openssl command.*apt-get install openssl"):
        ensure_self_signed(tmp_path / "data", ("localhost",))


# -- certificate files: refused when unusable, reloaded when renewed -------------------

@needs_openssl
@pytest.mark.parametrize("problem, message", [
    ("missing certificate", "cannot read .*cert.pem.*No such file"),
    ("missing key", "cannot read .*key.pem.*No such file"),
    ("certificate is a folder", "cannot read the certificate .*cert.pem: Is a directory"),
    ("not PEM", "cert.pem is not a PEM certificate"),
    ("key of another certificate", "do not load as a pair"),
    ("encrypted key", "key.pem is encrypted with a passphrase"),
])
async def test_unusable_certificate_files_are_refused_at_start_saying_why(
        tmp_path, problem, message):
    ca = make_ca(tmp_path / "ca")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    install(cert, key, issue(ca, tmp_path / "one", "localhost"))
    if problem == "missing certificate":
        cert.unlink()
    elif problem == "missing key":
        key.unlink()
    elif problem == "certificate is a folder":
        cert.unlink()
        cert.mkdir()
    elif problem == "not PEM":
        cert.write_text("not a certificate\n")
    elif problem == "encrypted key":
        _openssl("pkey", "-in", str(key), "-aes256", "-passout", "pass:secret",
                 "-out", str(tmp_path / "encrypted.key"))
        (tmp_path / "encrypted.key").replace(key)
    else:
        key.write_bytes(issue(ca, tmp_path / "two", "localhost")[1])
    with pytest.raises(ConfigError, match=message):
        async with App(make_settings(tmp_path / "data", tls_cert=cert, tls_key=key)):
            pass
    assert not (tmp_path / "data" / "musicsync.db").exists()  # refused before anything opened


@needs_openssl
def test_serve_with_a_missing_certificate_exits_2_saying_which_file(tmp_path):
    from .helpers import ServerProcess

    missing = tmp_path / "nowhere" / "fullchain.pem"
    server = ServerProcess(
        ["serve", "--data-dir", str(tmp_path / "data"), "--host", "127.0.0.1",
         "--auth-port", "0", "--file-port", "0", "--sync-port", "0"],
        {"TLS_CERT": str(missing), "TLS_KEY": str(tmp_path / "privkey.pem"),
         "SECURITY_KEY": REGISTRATION_KEY}, tmp_path / "server.log")
    try:
        assert server.process.wait(30) == 2
    finally:
        server.kill()
    assert f"musicsync: TLS: cannot read the certificate {missing}: No such file" in server.log()
    assert "Traceback" not in server.log()


def test_tls_settings_that_contradict_each_other_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="TLS_CERT and TLS_KEY go together"):
        Settings.load({"TLS_CERT": "/etc/cert.pem"})
    with pytest.raises(ConfigError, match="exclude each other"):
        Settings.load({"TLS": "self-signed", "TLS_CERT": "/c.pem", "TLS_KEY": "/k.pem"})
    with pytest.raises(ConfigError, match="TLS: 'on' is not one of off, self-signed"):
        Settings.load({"TLS": "on"})


@needs_openssl
async def test_renewed_certificate_reaches_new_connections_without_a_restart(
        tmp_path, caplog):
    ca = make_ca(tmp_path / "ca")
    cert, key = tmp_path / "live" / "cert.pem", tmp_path / "live" / "key.pem"
    cert.parent.mkdir()
    first = issue(ca, tmp_path / "first", "music.example.org")
    install(cert, key, first)
    settings = make_settings(tmp_path / "data", tls_cert=cert, tls_key=key)
    async with App(settings) as app:
        port = app.ports["sync"]
        assert await asyncio.to_thread(served_fingerprint, port) == fingerprint(first[0])
        # A broken renewal (a key that is not the certificate's) keeps the old pair.
        broken = issue(ca, tmp_path / "broken", "music.example.org")
        install(cert, key, (broken[0], first[1]))
        await asyncio.to_thread(served_fingerprint, port)  # a handshake looks at the files
        await wait_until(lambda: "do not load as a pair" in caplog.text, "the error log")
        assert await asyncio.to_thread(served_fingerprint, port) == fingerprint(first[0])
        # A good one is taken up, on every port.
        second = issue(ca, tmp_path / "second", "music.example.org")
        install(cert, key, second)

        async def serves_second() -> bool:
            return (await asyncio.to_thread(served_fingerprint, port)) == fingerprint(second[0])
        await wait_until(serves_second, "the renewed certificate on a new connection")
        for other in set(app.ports.values()):
            assert await check_health(other, ca[0].read_bytes(), "music.example.org") == 1
            assert await asyncio.to_thread(served_fingerprint, other) == fingerprint(second[0])


# -- `musicsync health` under TLS ----------------------------------------------------

async def health(*args: str) -> int:
    return await asyncio.to_thread(cli.main, ["health", *args])


@needs_openssl
async def test_health_talks_tls_trusting_the_self_signed_certificate(tmp_path, monkeypatch,
                                                                     capsys):
    data = tmp_path / "data"
    async with App(make_settings(data, tls="self-signed")) as app:
        port = str(app.ports["auth"])
        assert await health("--port", port, "--data-dir", str(data), "--tls") == 0
        monkeypatch.setenv("TLS", "self-signed")  # the server's own settings turn TLS on
        monkeypatch.setenv("DATA_DIR", str(data))
        assert await health("--port", port) == 0
        monkeypatch.delenv("TLS")
        assert await health("--port", port, "--timeout", "3") == 1  # plaintext fails
    out = capsys.readouterr().out
    assert out.count("SERVING") == 2 and "add --tls" in out


@needs_openssl
async def test_health_talks_tls_to_a_server_with_a_certificate_for_another_name(
        tmp_path, monkeypatch):
    ca = make_ca(tmp_path / "ca")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    install(cert, key, issue(ca, tmp_path / "leaf", "music.example.org"))
    async with App(make_settings(tmp_path / "data", tls_cert=cert, tls_key=key)) as app:
        monkeypatch.setenv("TLS_CERT", str(cert))
        monkeypatch.setenv("TLS_KEY", str(key))
        assert await health("--port", str(app.ports["file"])) == 0
        monkeypatch.delenv("TLS_CERT")
        monkeypatch.delenv("TLS_KEY")
        # From elsewhere: trusting the authority, checking the name the certificate holds.
        assert await health("--port", str(app.ports["file"]), "--tls-root", str(ca[0]),
                            "--tls-name", "music.example.org") == 0


# -- compose and Kubernetes under TLS ------------------------------------------------

TLS_ENV = {"TLS", "TLS_CERT", "TLS_KEY", "TLS_HOSTNAMES"}


def test_compose_passes_the_tls_settings_to_every_server_and_its_health_check():
    from .test_deploy_files import compose, image_name

    for name, service in compose()["services"].items():
        if image_name(service["image"]) != "musicsync":  # MinIO, PostgreSQL, Envoy
            continue
        assert TLS_ENV <= set(service["environment"]), name
        # The check runs in the container, so it reads the server's own TLS settings.
        assert service["healthcheck"]["test"][1:3] == ["musicsync", "health"], name


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) is not installed")
def test_k8s_tls_component_serves_the_secret_and_probes_through_musicsync_health(tmp_path):
    import yaml

    from .test_deploy_files import K8S, k8s_documents, k8s_env_problems, k8s_schema_errors

    shutil.copytree(K8S, tmp_path / "k8s")
    kustomization = tmp_path / "k8s" / "kustomization.yaml"
    text = kustomization.read_text()
    assert "# components:\n#   - tls\n" in text  # off unless the operator turns it on
    kustomization.write_text(text.replace("# components:\n#   - tls\n", "components:\n  - tls\n"))
    rendered = subprocess.run(["kubectl", "kustomize", str(tmp_path / "k8s")], check=True,
                              capture_output=True, text=True, timeout=60).stdout
    documents = [("rendered", d) for d in yaml.safe_load_all(rendered) if d]
    assert k8s_schema_errors(documents) == []
    secret = [(f, d) for f, d in k8s_documents() if d["kind"] == "Secret"]  # applied apart
    assert k8s_env_problems(documents + secret) == []
    pod = next(d for _, d in documents if d["kind"] == "Deployment"
               and d["metadata"]["name"] == "musicsync")["spec"]["template"]["spec"]
    assert {"name": "tls", "secret": {"secretName": "musicsync-tls", "defaultMode": 0o440}} \
        in pod["volumes"]
    for container in pod["containers"]:
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["TLS_CERT"] == "/etc/musicsync/tls/tls.crt", container["name"]
        assert env["TLS_KEY"] == "/etc/musicsync/tls/tls.key", container["name"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["exec"]["command"] == ["musicsync", "health"]
            assert "grpc" not in container[probe], (container["name"], probe)
