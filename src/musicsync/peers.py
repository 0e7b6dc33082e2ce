"""Who is calling: the client's IP address, also behind a proxy the operator trusts.

Sign-in throttling and the token-less gate count per client address. Behind a
proxy (Envoy in the `scale` deployments) every call comes from the proxy's
address, so one stranger's guesses would slow everyone; the proxy appends the
address it saw to ``x-forwarded-for``. That header is believed only from a peer
in TRUSTED_PROXIES (default: nobody), and read from the right: the entries its
trusted proxies appended are skipped, the first other one is the client (what a
client wrote there itself stays further left, ignored).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import unquote

if TYPE_CHECKING:
    import grpc

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
FORWARDED_HEADER = "x-forwarded-for"
# Entries of the header looked at, from the right: a chain of proxies is short.
MAX_FORWARDED_HOPS = 8


def peer_address(peer: str | None) -> str:
    """The client's IP address from grpc's peer ("ipv4:1.2.3.4:5678", "ipv6:[::1]:5678"),
    without the port; other peers ("unix:...") as they are."""
    peer = unquote(peer or "")
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]")
    return peer


def parse_networks(text: str) -> tuple[Network, ...]:
    """Comma-separated addresses or networks: '10.0.0.0/8, 192.168.1.5, fd00::/8'."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False)
                 for part in text.split(",") if part.strip())


class ClientAddresses:
    """The client address of a call (see the module's docstring)."""

    def __init__(self, trusted: Iterable[Network] = ()) -> None:
        self._trusted = tuple(trusted)

    def of(self, context: grpc.aio.ServicerContext) -> str:
        peer = peer_address(context.peer())
        if not self._trusted or not self._is_trusted(peer):
            return peer
        forwarded = ",".join(value for key, value in context.invocation_metadata() or ()
                             if key == FORWARDED_HEADER and isinstance(value, str))
        for entry in reversed(forwarded.split(",")[-MAX_FORWARDED_HOPS:]):
            address = entry.strip()
            if not _is_address(address):
                break  # not written by a proxy of ours: stop believing the header
            if not self._is_trusted(address):
                return address
        return peer

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._trusted)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
