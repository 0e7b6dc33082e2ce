"""TLS on every gRPC port: the operator's certificate files, or a self-signed pair.

With ``TLS_CERT`` and ``TLS_KEY`` the server serves those PEM files and reloads
them when they change (a certificate renewal): gRPC asks ``CertificateReloader``
for the current certificate at every TLS handshake, which compares the files'
modification times, sizes and inodes with the pair it serves and reads them
again only when one changed. A new pair takes effect for new connections, open
ones keep theirs; a pair that does not load (a key that does not match the
certificate, say, half-way through a renewal that writes one file and then the
other) is logged once and the old one served until the files change again.

``TLS=self-signed`` makes an ECDSA P-256 key and a certificate valid for
``SELF_SIGNED_DAYS`` in ``DATA_DIR/tls`` on the first start, with the
``openssl`` command-line tool, and serves them from then on (they are not
renewed: a phone pins the certificate's SHA-256 fingerprint, which the server
logs at every start). Services sharing one ``DATA_DIR`` and starting together
all end up with the same pair: each makes one in a folder of its own and
renames that into place, which fails for all but the first.

No X.509 library is imported (``cryptography`` would cost the idle server
12 MiB): gRPC loads the PEM itself, the standard ``ssl`` module checks a pair
before it is served, and a fingerprint is the SHA-256 of the certificate's DER
bytes, the base64 body of its PEM.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import logging
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc

from .config import Settings
from .errors import ConfigError

log = logging.getLogger(__name__)

SELF_SIGNED_FOLDER = "tls"
SELF_SIGNED_DAYS = 3650
# openssl makes a key and certificate in well under a second; a wedged one must not hang start.
OPENSSL_TIMEOUT_SECONDS = 60

_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\s*(.+?)\s*-----END CERTIFICATE-----", re.DOTALL)


@dataclass(frozen=True)
class CertificateFiles:
    """Where a PEM certificate (chain) and its private key are."""

    cert: Path
    key: Path


def fingerprint(cert_pem: bytes) -> str:
    """SHA-256 of the first certificate's DER bytes, as colon-separated upper-case hex."""
    return _colon_hex(hashlib.sha256(first_certificate_der(cert_pem)).digest())


def first_certificate_der(cert_pem: bytes) -> bytes:
    """The DER bytes of the first certificate in PEM text (the server's own, in a chain)."""
    match = _PEM_CERTIFICATE.search(cert_pem)
    if match is None:
        raise ValueError("no PEM certificate (-----BEGIN CERTIFICATE-----) in it")
    try:
        return base64.b64decode(b"".join(match.group(1).split()), validate=True)
    except ValueError:
        raise ValueError("its certificate is not valid base64") from None


def _colon_hex(digest: bytes) -> str:
    return ":".join(f"{byte:02X}" for byte in digest)


def certificate_files(settings: Settings) -> CertificateFiles | None:
    """The pair the server is to serve, making the self-signed one if due; None: plaintext."""
    mode = settings.tls_mode
    if mode == "files":
        return CertificateFiles(settings.tls_cert, settings.tls_key)
    if mode == "self-signed":
        return ensure_self_signed(settings.data_dir, self_signed_names(settings),
                                  settings.tls_hostnames)
    return None


def self_signed_files(data_dir: Path) -> CertificateFiles:
    folder = data_dir / SELF_SIGNED_FOLDER
    return CertificateFiles(folder / "cert.pem", folder / "key.pem")


def self_signed_names(settings: Settings) -> tuple[str, ...]:
    """The names a phone or a probe may use for this machine: loopback, the host name
    (and its .local mDNS name), a specific listening address, and TLS_HOSTNAMES."""
    names = ["localhost", "127.0.0.1", "::1"]
    host = socket.gethostname()
    if host and host != "localhost":
        names.append(host)
        if "." not in host:
            names.append(f"{host}.local")
    if settings.host not in ("", "0.0.0.0", "::", "[::]"):
        names.append(settings.host.strip("[]"))
    names.extend(settings.tls_hostnames)
    return tuple(dict.fromkeys(names))


def _subject_alt_name(names: tuple[str, ...]) -> str:
    entries = []
    for name in names:
        try:
            entries.append(f"IP:{ipaddress.ip_address(name)}")
        except ValueError:
            entries.append(f"DNS:{name}")
    return "subjectAltName=" + ",".join(entries)


def ensure_self_signed(data_dir: Path, names: tuple[str, ...],
                       wanted: tuple[str, ...] = ()) -> CertificateFiles:
    """The self-signed pair in ``DATA_DIR/tls``, made first for ``names`` if there is none.

    An existing pair is kept; a warning names those of ``wanted`` (the operator's
    TLS_HOSTNAMES) that it lacks. The machine's own names are not checked: a
    container's host name changes whenever it is re-created.
    """
    files = self_signed_files(data_dir)
    if files.cert.exists() and files.key.exists():
        _warn_of_missing_names(files.cert, wanted)
        return files
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ConfigError(
            "TLS=self-signed needs the openssl command to make a certificate, and none is "
            "on the PATH: install it (apt-get install openssl), or make the pair elsewhere "
            f"and put it in {files.cert.parent} as cert.pem and key.pem, or use "
            "TLS_CERT and TLS_KEY")
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".tls-", dir=data_dir))
    try:
        command = [openssl, "req", "-x509", "-newkey", "ec",
                   "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                   "-keyout", str(work / "key.pem"), "-out", str(work / "cert.pem"),
                   "-days", str(SELF_SIGNED_DAYS), "-sha256",
                   "-subj", "/CN=musicsync",
                   "-addext", _subject_alt_name(names),
                   "-addext", "basicConstraints=critical,CA:FALSE",
                   "-addext", "keyUsage=critical,digitalSignature",
                   "-addext", "extendedKeyUsage=serverAuth"]
        try:
            done = subprocess.run(command, capture_output=True, text=True,
                                  timeout=OPENSSL_TIMEOUT_SECONDS, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ConfigError(f"openssl could not make a self-signed certificate: {exc}") from None
        if done.returncode != 0:
            raise ConfigError("openssl could not make a self-signed certificate: "
                              + (done.stderr.strip().splitlines() or ["no reason given"])[-1])
        (work / "key.pem").chmod(0o600)
        (work / "cert.pem").chmod(0o644)
        work.chmod(0o700)
        try:
            work.rename(files.cert.parent)
            work = None
            log.info("made a self-signed TLS certificate for %s in %s (valid %d days)",
                     ", ".join(names), files.cert.parent, SELF_SIGNED_DAYS)
        except OSError as exc:
            if not (files.cert.exists() and files.key.exists()):
                raise ConfigError(
                    f"cannot put the self-signed certificate in {files.cert.parent} "
                    f"({exc.strerror}): if that folder is left from an earlier pair without "
                    "cert.pem and key.pem, remove it") from None
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    return files


def _warn_of_missing_names(cert: Path, names: tuple[str, ...]) -> None:
    """An existing certificate is kept (phones pinned it): say which TLS names it lacks."""
    held = {value.lower() for _, value in certificate_names(cert)}
    missing = [name for name in names if name.lower() not in held
               and _normal_ip(name) not in held]
    if held and missing:
        log.warning("the self-signed certificate in %s was made without %s; to add them, "
                    "delete that folder and restart (phones must then pin the new "
                    "fingerprint)", cert.parent, ", ".join(missing))


def _normal_ip(name: str) -> str:
    try:
        return str(ipaddress.ip_address(name)).lower()
    except ValueError:
        return name.lower()


def certificate_names(cert: Path) -> list[tuple[str, str]]:
    """The subjectAltName entries of a PEM certificate file, e.g. [('DNS', 'localhost')].

    Uses ``ssl._ssl._test_decode_cert``, the standard library's own decoder (in
    CPython since 2.7, used by its tests); an empty list if it is unavailable.
    """
    decode = getattr(getattr(ssl, "_ssl", None), "_test_decode_cert", None)
    if decode is None:
        return []
    try:
        decoded = decode(str(cert))
    except (OSError, ssl.SSLError, ValueError):
        return []
    return [(kind, _normal_ip(value) if kind == "IP Address" else value)
            for kind, value in decoded.get("subjectAltName", ())]


def _signature(files: CertificateFiles) -> tuple:
    """What changes when either file is written or replaced (also through a symlink swap)."""
    cert, key = os.stat(files.cert), os.stat(files.key)
    return tuple((s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns) for s in (cert, key))


def load_pair(files: CertificateFiles) -> tuple[bytes, bytes]:
    """The PEM bytes of a certificate and its key, checked to belong together.

    Raises ValueError saying what is wrong (unreadable, not PEM, not matching).
    """
    try:
        cert = files.cert.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the certificate {files.cert}: {exc.strerror}") from None
    try:
        key = files.key.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the key {files.key}: {exc.strerror}") from None
    try:
        first_certificate_der(cert)
    except ValueError as exc:
        raise ValueError(f"{files.cert} is not a PEM certificate: {exc}") from None
    if b"PRIVATE KEY-----" not in key:
        raise ValueError(f"{files.key} is not a PEM private key")
    if b"ENCRYPTED" in key:
        raise ValueError(f"{files.key} is encrypted with a passphrase; the server needs the "
                         "key unencrypted (keep it readable by the server's user only)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # A passphrase callback, so that OpenSSL never asks for one on the terminal.
        context.load_cert_chain(files.cert, files.key, password=_no_passphrase)
    except ssl.SSLError as exc:
        raise ValueError(f"{files.cert} and {files.key} do not load as a pair "
                         f"({exc.reason or exc})") from None
    except OSError as exc:
        raise ValueError(f"cannot read {files.cert} or {files.key}: {exc.strerror}") from None
    return cert, key


def _no_passphrase() -> bytes:
    raise ssl.SSLError("the key is encrypted with a passphrase")


class CertificateReloader:
    """Serves a certificate pair to gRPC and takes up new files without a restart.

    Each port needs credentials of its own (``credentials()``): gRPC hands every
    port's credentials the first configuration once, then calls their fetcher
    from its own threads at each handshake, which answers the current pair when
    that port does not serve it yet, else None (keep the one it has).
    """

    def __init__(self, files: CertificateFiles) -> None:
        self.files = files
        self._lock = threading.Lock()
        try:
            self._pair = load_pair(files)
            self._seen: tuple | None = _signature(files)
        except OSError as exc:
            raise ConfigError(f"TLS: cannot read {exc.filename}: {exc.strerror}") from None
        except ValueError as exc:
            raise ConfigError(f"TLS: {exc}") from None
        self._version = 0
        self.fingerprint = fingerprint(self._pair[0])

    def credentials(self) -> grpc.ServerCredentials:
        """Credentials for one port (gRPC takes over the configuration in them)."""
        with self._lock:
            served = self._version
            first = self._configuration()

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            nonlocal served
            # Runs in a gRPC thread: an exception escaping here would fail the handshake.
            with self._lock:
                try:
                    self._reload_if_changed()
                except Exception:  # noqa: BLE001 - keep serving the old pair, say why
                    log.exception("checking %s for a new TLS certificate failed",
                                  self.files.cert)
                if served == self._version:
                    return None
                served = self._version
                return self._configuration()

        return grpc.dynamic_ssl_server_credentials(first, fetch)

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        cert, key = self._pair
        return grpc.ssl_server_certificate_configuration([(key, cert)])

    def _reload_if_changed(self) -> None:
        try:
            before = _signature(self.files)
        except OSError as exc:
            if self._seen is not None:
                log.error("TLS: cannot read %s (%s); serving the certificate loaded before",
                          exc.filename, exc.strerror)
                self._seen = None
            return
        if before == self._seen:
            return
        try:
            pair = load_pair(self.files)
        except ValueError as exc:
            if _signature_or_none(self.files) == before:  # not still being written
                log.error("TLS: %s; serving the certificate loaded before until the files "
                          "change again", exc)
                self._seen = before
            return
        if _signature_or_none(self.files) != before:
            return  # changed while being read: take it up at the next handshake
        self._seen = before
        self._pair = pair
        self._version += 1
        self.fingerprint = fingerprint(pair[0])
        log.info("TLS: serving the new certificate %s (SHA-256 fingerprint %s) to new "
                 "connections", self.files.cert, self.fingerprint)


def _signature_or_none(files: CertificateFiles) -> tuple | None:
    try:
        return _signature(files)
    except OSError:
        return None


def server_certificates(settings: Settings) -> tuple[CertificateReloader, str] | None:
    """What gives every port its credentials, and a line for the start-up log; None for
    plaintext."""
    files = certificate_files(settings)
    if files is None:
        return None
    reloader = CertificateReloader(files)
    kind = "self-signed certificate" if settings.tls_mode == "self-signed" else "certificate"
    note = (f"TLS on every port with the {kind} {files.cert} (SHA-256 fingerprint "
            f"{reloader.fingerprint})")
    return reloader, note


def channel_credentials(settings: Settings, root: Path | None = None
                        ) -> tuple[grpc.ChannelCredentials, str | None]:
    """What `musicsync health` trusts under TLS: ``root`` if given, else the server's
    configured certificate itself (``TLS_CERT`` or the self-signed one), checked for a name
    it holds; with no file at hand, the system's roots and the address's own name.

    Returns the credentials and the name to check (None: the address's own).
    """
    if root is None:
        root = (settings.tls_cert if settings.tls_mode == "files"
                else self_signed_files(settings.data_dir).cert)
    try:
        cert = root.read_bytes()
    except OSError:
        return grpc.ssl_channel_credentials(), None
    names = [value for _, value in certificate_names(root)]
    # A wildcard holds any one label: *.example.org holds musicsync.example.org.
    name = next((n.replace("*", "musicsync", 1) for n in names), None)
    return grpc.ssl_channel_credentials(root_certificates=cert), name
