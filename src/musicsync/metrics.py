"""Prometheus metrics of one server process, and the HTTP endpoint that serves them.

Off by default; ``METRICS_PORT`` (``--metrics-port``) turns them on, listening on
``METRICS_HOST`` (default 127.0.0.1): the endpoint has no authentication, so it
binds to loopback unless the operator names another address (a container's
0.0.0.0 on a private network, for a Prometheus beside it). ``App.metrics``
is then a ``Metrics``, otherwise a ``NullMetrics`` with the same methods that
does nothing (and imports nothing), so callers never check whether metrics are on.

What the rest of the server calls (cheap, safe from any thread, never raises):

    metrics.observe_rpc(method, code, seconds)  # the interceptor's `observe` callback
    metrics.bytes_received(n)                   # song bytes taken in (Upload)
    metrics.bytes_sent(n)                       # song bytes sent out (Download)
    metrics.storage_error(operation)            # a blob-store operation failed:
                                                # "put", "get", "delete", "stat", ...
    metrics.throttled(method, reason)           # a password or security-key attempt
                                                # refused to wait: method "Login",
                                                # "ChangePassword" or "Register", reason
                                                # "address" or "account" (auth/throttle.py)

What a scrape of ``http://METRICS_HOST:METRICS_PORT/metrics`` shows:

    musicsync_rpc_total{service,method,code}             counter
    musicsync_rpc_duration_seconds{service,method,code}  histogram (streams count whole)
    musicsync_received_bytes_total                       counter
    musicsync_sent_bytes_total                           counter
    musicsync_storage_errors_total{operation}            counter
    musicsync_auth_throttled_total{method,reason}        counter
    process_*                                            RSS, CPU, open files (Linux)

The metric types and the text format come from ``prometheus_client``; the
endpoint is a few lines of asyncio in the server's own event loop rather than
the library's threaded WSGI server, which wakes up twice a second forever.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

import grpc

from .errors import ConfigError

log = logging.getLogger(__name__)

# Seconds; unary calls take milliseconds, transfers and Watch streams far longer.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    60.0, 300.0)
PATH = "/metrics"
_REQUEST_TIMEOUT = 10.0  # seconds a scraper may take to send its request
_MAX_REQUEST_BYTES = 16 * 1024


class MetricsSink(Protocol):
    """What servicers, the blob store and the interceptor may report."""

    def observe_rpc(self, method: str, code: grpc.StatusCode, seconds: float) -> None: ...
    def bytes_received(self, n: int) -> None: ...
    def bytes_sent(self, n: int) -> None: ...
    def storage_error(self, operation: str) -> None: ...
    def throttled(self, method: str, reason: str) -> None: ...


class NullMetrics:
    """Metrics switched off: every report is dropped."""

    def observe_rpc(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        pass

    def bytes_received(self, n: int) -> None:
        pass

    def bytes_sent(self, n: int) -> None:
        pass

    def storage_error(self, operation: str) -> None:
        pass

    def throttled(self, method: str, reason: str) -> None:
        pass


class Metrics:
    """The process's metrics, in a registry of their own (not prometheus_client's global)."""

    def __init__(self) -> None:
        # Imported here: a server without metrics does not pay for the library.
        import prometheus_client
        from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector

        # Leave out the *_created series: twice the lines, and nobody here needs them.
        prometheus_client.disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("service", "method", "code")
        self._rpcs = Counter("musicsync_rpc", "RPCs handled, by method and status code.",
                             labels, registry=self.registry)
        self._durations = Histogram(
            "musicsync_rpc_duration_seconds",
            "Time from the start of an RPC to its status (streams count whole).",
            labels, buckets=DURATION_BUCKETS, registry=self.registry)
        self._received = Counter("musicsync_received_bytes",
                                 "Song bytes received from clients.", registry=self.registry)
        self._sent = Counter("musicsync_sent_bytes", "Song bytes sent to clients.",
                             registry=self.registry)
        self._storage_errors = Counter("musicsync_storage_errors",
                                       "Blob-store operations that failed, by operation.",
                                       ("operation",), registry=self.registry)
        self._throttled = Counter(
            "musicsync_auth_throttled",
            "Password and security-key attempts refused to wait, by method and reason "
            "(address: that client failed too often; account: too many failures from all).",
            ("method", "reason"), registry=self.registry)
        ProcessCollector(registry=self.registry)

    def observe_rpc(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        service, _, name = method.lstrip("/").partition("/")
        labels = (service, name, code.name)
        self._rpcs.labels(*labels).inc()
        self._durations.labels(*labels).observe(seconds)

    def bytes_received(self, n: int) -> None:
        if n > 0:
            self._received.inc(n)

    def bytes_sent(self, n: int) -> None:
        if n > 0:
            self._sent.inc(n)

    def storage_error(self, operation: str) -> None:
        self._storage_errors.labels(operation).inc()

    def throttled(self, method: str, reason: str) -> None:
        self._throttled.labels(method, reason).inc()

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition (Prometheus text, or OpenMetrics if asked) and its content type."""
        from prometheus_client.exposition import choose_encoder

        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


class MetricsEndpoint:
    """Serves ``GET /metrics`` over HTTP/1.1, one request per connection."""

    def __init__(self, metrics: Metrics, host: str, port: int) -> None:
        self._metrics = metrics
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self.port: int | None = None

    async def start(self) -> int:
        """Listens; returns the port bound (useful with port 0)."""
        try:
            self._server = await asyncio.start_server(self._serve, self._host, self._port,
                                                      limit=_MAX_REQUEST_BYTES)
        except OSError as exc:
            raise ConfigError(f"cannot serve metrics on {self._host}:{self._port}: "
                              f"{exc.strerror or exc}; is the port in use?") from None
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("metrics on http://%s:%d%s", self._host, self.port, PATH)
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _REQUEST_TIMEOUT)
            await self._respond(writer, head)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                ConnectionError):
            pass  # the scraper went away, dawdled or sent a huge header: nothing to answer
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass

    async def _respond(self, writer: asyncio.StreamWriter, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return await _send(writer, 400, b"bad request\n")
        verb, target, _ = parts
        if target.split("?", 1)[0] != PATH:
            return await _send(writer, 404, f"metrics are at {PATH}\n".encode())
        if verb not in ("GET", "HEAD"):
            return await _send(writer, 405, b"only GET\n", ("Allow", "GET, HEAD"))
        headers = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
        accept = next((v for k, v in headers.items() if k.strip().lower() == "accept"), "")
        body, content_type = self._metrics.render(accept.strip())
        await _send(writer, 200, body, ("Content-Type", content_type), head_only=verb == "HEAD")


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


async def _send(writer: asyncio.StreamWriter, status: int, body: bytes,
                *headers: tuple[str, str], head_only: bool = False) -> None:
    lines = [f"HTTP/1.1 {status} {_REASONS[status]}", f"Content-Length: {len(body)}",
             "Connection: close"]
    if not any(name == "Content-Type" for name, _ in headers):
        headers = (*headers, ("Content-Type", "text/plain; charset=utf-8"))
    lines += [f"{name}: {value}" for name, value in headers]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    if not head_only:
        writer.write(body)
    await writer.drain()
