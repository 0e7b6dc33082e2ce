"""S3 for the tests: moto's standalone server on a loopback port, or a real one.

``S3_ENDPOINT=host:9000 S3_ACCESS_KEY=... S3_SECRET_KEY=... make test`` runs the
S3 tests against that server (a MinIO) instead of moto; each test makes its own
bucket and removes it afterwards. Outage tests always use a moto of their own,
since they stop it.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .helpers import free_port


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # host:port
    access_key: str
    secret_key: str

    def settings(self, bucket: str) -> dict:
        """make_settings overrides for an App storing blobs in ``bucket``."""
        return dict(s3_endpoint=self.endpoint, s3_access_key=self.access_key,
                    s3_secret_key=self.secret_key, s3_bucket=bucket)

    def client(self):
        from minio import Minio
        return Minio(self.endpoint, access_key=self.access_key, secret_key=self.secret_key,
                     secure=False)

    def objects(self, bucket: str, prefix: str = "") -> list[str]:
        return sorted(obj.object_name for obj in
                      self.client().list_objects(bucket, prefix=prefix, recursive=True))

    def remove_bucket(self, bucket: str) -> None:
        """Empties and removes a test's bucket (if it exists)."""
        from minio.deleteobjects import DeleteObject
        client = self.client()
        if not client.bucket_exists(bucket):
            return
        for upload in client._list_multipart_uploads(bucket).uploads:
            client._abort_multipart_upload(bucket, upload.object_name, upload.upload_id)
        names = [DeleteObject(name) for name in self.objects(bucket)]
        for error in client.remove_objects(bucket, names):
            raise AssertionError(f"could not clean up {bucket}: {error}")
        client.remove_bucket(bucket)


def new_bucket() -> str:
    return f"musicsync-test-{secrets.token_hex(6)}"


def configured_server() -> S3Server | None:
    """The server named by S3_ENDPOINT, S3_ACCESS_KEY and S3_SECRET_KEY, if set."""
    endpoint = os.environ.get("S3_ENDPOINT")
    if not endpoint:
        return None
    return S3Server(endpoint, os.environ.get("S3_ACCESS_KEY", ""),
                    os.environ.get("S3_SECRET_KEY", ""))


def moto_python() -> str:
    """The Python that has moto: `make test` installs it in .venv-moto, apart from the server's
    venv (moto's dependencies would change what the server imports)."""
    configured = os.environ.get("MOTO_PYTHON")
    if configured:
        return configured
    default = Path(__file__).resolve().parent.parent / ".venv-moto" / "bin" / "python"
    if default.exists():
        return str(default)
    if importlib.util.find_spec("moto") is not None:
        return sys.executable
    raise RuntimeError("moto is not installed: run `make test` (it installs moto into "
                       ".venv-moto) or set MOTO_PYTHON to a Python that has moto[server]")


class MotoServer:
    """moto's S3 server in a subprocess; ``stop`` and ``start`` again keep the port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.server = S3Server(f"127.0.0.1:{self.port}", "test-access-key", "test-secret-key")
        self._process: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> None:
        self._process = subprocess.Popen(
            [moto_python(), "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"moto server exited with {self._process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto server did not listen on {self.port}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> MotoServer:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


class SilentListener:
    """A loopback port that accepts connections and never answers (a hung server)."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(64)  # the kernel completes handshakes; nobody ever reads
        self.port = self._socket.getsockname()[1]

    def close(self) -> None:
        self._socket.close()
