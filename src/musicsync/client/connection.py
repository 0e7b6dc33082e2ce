"""The channel to a server: plaintext or TLS, with the message limits the server works within."""

from __future__ import annotations

import grpc

# The server keeps every answer under 4 MiB (its limits.CLIENT_MESSAGE_BYTES), and takes
# upload chunks of at most 4 MiB; 1 MiB chunks leave room for the message framing.
RECEIVE_LIMIT = 4 * 1024 * 1024
SEND_LIMIT = 4 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", RECEIVE_LIMIT),
    ("grpc.max_send_message_length", SEND_LIMIT),
    # Idle Watch streams live behind home routers and NATs: keep them open.
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    # After a server restart, calls fail at once until the channel tries to connect
    # again; gRPC's default pause between tries grows to 120 s. 30 s, as LiveFeed's.
    ("grpc.max_reconnect_backoff_ms", 30_000),
]


# The ports a server uses when a target names none: a one-process server answers every
# service on each of them, a server split into one process per service (docker compose,
# Kubernetes) each service on its own.
SERVICE_PORTS = {"auth": 50051, "file": 50052, "sync": 50053}


def service_targets(target: str) -> dict[str, str]:
    """Where to reach each service: "host:port" for all of them, or "host" on SERVICE_PORTS.

    An IPv6 address goes in brackets ("[::1]", "[::1]:50051").
    """
    target = target.strip()
    host_end = target.rfind("]") if target.startswith("[") else -1
    if ":" in target[host_end + 1:]:
        return dict.fromkeys(SERVICE_PORTS, target)
    return {service: f"{target}:{port}" for service, port in SERVICE_PORTS.items()}


def open_channel(target: str, *, tls: bool = False, root_certificates: bytes | None = None,
                 server_name: str | None = None) -> grpc.aio.Channel:
    """A channel to ``target`` ("host:port"): TLS when ``tls`` or ``root_certificates``.

    ``root_certificates`` (PEM) are the certificates to trust, e.g. a self-signed server's
    own; without them the system's roots are used. ``server_name`` is the name the server's
    certificate must hold when it differs from the host in ``target``.
    """
    options = list(CHANNEL_OPTIONS)
    if not (tls or root_certificates):
        return grpc.aio.insecure_channel(target, options=options)
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
    return grpc.aio.secure_channel(target, credentials, options=options)
