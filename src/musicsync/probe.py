"""`musicsync health`: asks a running server's gRPC health service whether it serves.

For container health checks (docker compose, the image's HEALTHCHECK) where no
grpc_health_probe binary is at hand; Kubernetes probes gRPC health natively, but
not under TLS, where its probes run this command instead (k8s/tls/).

Under TLS (the server's own TLS settings, or ``--tls``) the probe trusts the
certificate the server is configured with, see ``tls.channel_credentials``.
"""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .config import Settings

_WILDCARDS = ("", "0.0.0.0", "::", "[::]")


def probe_address(settings: Settings) -> str:
    """Where a probe inside the server's host or container finds it.

    The port is PORT when set (single-service mode), else the auth port, which
    serves every service when they all run in one process.
    """
    host = "127.0.0.1" if settings.host in _WILDCARDS else settings.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    port = settings.port if settings.port is not None else settings.auth_port
    return f"{host}:{port}"


def check(address: str, service: str = "", timeout: float = 5.0, *,
          credentials: grpc.ChannelCredentials | None = None,
          server_name: str | None = None) -> tuple[bool, str]:
    """(serving, what to print): SERVING, NOT_SERVING, or why the server did not answer.

    With ``credentials`` the probe talks TLS, checking the server's certificate
    for ``server_name`` (default: the address's host).
    """
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    channel = (grpc.insecure_channel(address) if credentials is None
               else grpc.secure_channel(address, credentials, options=options))
    with channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as error:
            return False, f"{error.code().name}: {error.details()}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return response.status == health_pb2.HealthCheckResponse.SERVING, status
