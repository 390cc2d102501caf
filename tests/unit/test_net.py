"""The client address behind trusted proxies (infra.net), as the API and the edges use it."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError
from websockets.datastructures import Headers
from websockets.http11 import Request

from edge_ws.http import Gate
from edge_ws.limits import AddressCap
from edge_ws.metrics import Metrics
from infra.net import ClientAddresses, parse_networks
from infra.settings import Settings

PROXIES = ClientAddresses(["10.0.0.0/8", "fd00::/8"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        # No trusted proxy in front: the header is whatever the client typed, ignored.
        ("203.0.113.9", ["1.2.3.4"], "203.0.113.9"),
        # One trusted proxy: the address it appended is the client.
        ("10.0.0.2", ["198.51.100.7"], "198.51.100.7"),
        # A client sending its own header through the proxy cannot choose its address.
        ("10.0.0.2", ["6.6.6.6, 198.51.100.7"], "198.51.100.7"),
        # Two trusted hops (CDN edge then balancer) are both skipped.
        ("10.0.0.2", ["198.51.100.7, 10.1.1.1"], "198.51.100.7"),
        # Several headers count as one list, in order.
        ("10.0.0.2", ["6.6.6.6", "198.51.100.7"], "198.51.100.7"),
        # Ports and IPv6 brackets as proxies write them.
        ("10.0.0.2", ["198.51.100.7:51234"], "198.51.100.7"),
        ("fd00::1", ["[2001:db8::5]:443"], "2001:db8::5"),
        # Garbage stops the walk at the last trusted hop, never at a value a client wrote.
        ("10.0.0.2", ["198.51.100.7, not-an-ip, 10.1.1.1"], "10.1.1.1"),
        ("10.0.0.2", ["nonsense"], "10.0.0.2"),
        # A trusted peer without the header is itself the client (a health check, say).
        ("10.0.0.2", [], "10.0.0.2"),
        # Only trusted hops: the leftmost is the best we know.
        ("10.0.0.2", ["10.9.9.9"], "10.9.9.9"),
    ],
)
def test_the_client_is_the_first_untrusted_hop_from_the_right(
    peer: str, forwarded: list[str], client: str
) -> None:
    assert PROXIES.resolve(peer, forwarded) == client


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert ClientAddresses().resolve("10.0.0.2", ["198.51.100.7"]) == "10.0.0.2"


def test_a_bad_network_is_named() -> None:
    with pytest.raises(ValueError, match=re.escape("'10.0.0.0/33'")):
        parse_networks(["10.0.0.0/8", "10.0.0.0/33"])


def test_the_setting_is_checked_when_settings_load() -> None:
    with pytest.raises(ValidationError, match="not-a-network"):
        Settings(api={"trusted_proxies": ["not-a-network"]})  # type: ignore[arg-type]
    assert Settings(api={"trusted_proxies": ["127.0.0.1"]}).api.trusted_proxies == ["127.0.0.1"]  # type: ignore[arg-type]


def _gate(addresses: ClientAddresses, limit: int) -> Gate:
    return Gate(
        origins=frozenset(),
        cap=AddressCap(limit),
        tokens=SimpleNamespace(),  # type: ignore[arg-type]  # no token in these requests
        metrics=Metrics(),
        health=dict,
        node_id="n",
        addresses=addresses,
    )


def _handshake(peer: str, forwarded: str | None) -> tuple[Any, Request]:
    headers = Headers([("Host", "edge")] + ([("X-Forwarded-For", forwarded)] if forwarded else []))
    return SimpleNamespace(remote_address=(peer, 40000), request=None), Request("/", headers)


def test_the_edge_caps_connections_per_client_behind_a_proxy() -> None:
    gate = _gate(ClientAddresses(["10.0.0.0/8"]), limit=1)
    conn, request = _handshake("10.0.0.2", "198.51.100.7")
    gate.cap.opened(gate.address_of(conn, request))
    # The same viewer again through the balancer is over the cap...
    refused = gate(*_handshake("10.0.0.2", "198.51.100.7"))
    assert refused is not None and refused.status_code == 429
    # ...another viewer through the same balancer is not.
    assert gate(*_handshake("10.0.0.2", "198.51.100.8")) is None


def test_the_edge_ignores_the_header_from_an_untrusted_peer() -> None:
    gate = _gate(ClientAddresses(), limit=1)
    conn, request = _handshake("203.0.113.9", "198.51.100.7")
    gate.cap.opened(gate.address_of(conn, request))
    refused = gate(*_handshake("203.0.113.9", "198.51.100.99"))
    assert refused is not None and refused.status_code == 429
