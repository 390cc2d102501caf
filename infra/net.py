"""The client's address for per-address limits, also behind reverse proxies.

Behind a load balancer every connection comes from the balancer, so a per-IP limit would throttle
everyone at once. Proxies append the address they received a request from to ``X-Forwarded-For``;
that header is only as trustworthy as the hop that wrote it, so it is read only when the peer is one
of the configured trusted proxies (``api.trusted_proxies``), and then from the right: each hop that
is itself a trusted proxy is skipped, and the first one that is not is the client (what nginx's
``real_ip_recursive on`` does). A malformed hop stops the walk at the last proxy that was trusted, so
a client cannot pick its own address by sending a garbage header.

With no trusted proxies (the default) the header is ignored and the peer address is the client.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

__all__ = ["ClientAddresses", "parse_networks"]

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address


def parse_networks(specs: Iterable[str]) -> tuple[Network, ...]:
    """CIDR blocks or single addresses (``10.0.0.0/8``, ``::1``); ``ValueError`` names a bad one."""
    networks = []
    for raw in specs:
        try:
            networks.append(ip_network(raw.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{raw!r} is not an IP address or CIDR block") from None
    return tuple(networks)


def _address(text: str) -> Address | None:
    """An address from a header hop: ``1.2.3.4``, ``1.2.3.4:5678``, ``[::1]:80`` or ``::1``."""
    text = text.strip()
    if text.startswith("["):  # [v6]:port
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ip_address(text)
    except ValueError:
        return None


class ClientAddresses:
    """Resolves the client's address from the peer address and ``X-Forwarded-For`` values."""

    def __init__(self, trusted_proxies: Iterable[str] = ()) -> None:
        self._trusted = parse_networks(trusted_proxies)

    def trusts(self, address: Address | None) -> bool:
        return address is not None and any(address in network for network in self._trusted)

    def resolve(self, peer: str, forwarded_for: Iterable[str] = ()) -> str:
        """The client's address; ``forwarded_for`` holds every X-Forwarded-For header, in order."""
        peer_address = _address(peer)
        if not self._trusted or not self.trusts(peer_address):
            return peer
        hops = [hop for header in forwarded_for for hop in header.split(",") if hop.strip()]
        client = peer
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                return client  # garbage written by someone untrusted: keep the last trusted hop
            client = str(address)
            if not self.trusts(address):
                return client
        return client
