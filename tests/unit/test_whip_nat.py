"""WHIP behind a 1:1 NAT (a container's published ports, a Kubernetes LoadBalancer): the settings, and
real aiortc peer connections on this machine's own addresses.

The node's side gathers through :func:`ingest_workers.whip.nat_candidates`, exactly as ``WhipIngest``
does with ``whip_udp_ports``/``whip_public_ip`` set; the publisher is aiortc's client side with its
ordinary gathering. With a public address the answer offers only that address (here 127.0.0.1, which
aioice's own gathering never offers), on a port of the range held on every local address (what a
NAT forwards to); the connection is then made on this machine. What a NAT does to the packets (the
source address of the replies) is not emulated here.
"""

from __future__ import annotations

import asyncio
import random
import re
import socket
from collections.abc import AsyncIterator, Iterator

import pytest
from aioice.ice import get_host_addresses
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from pydantic import ValidationError

from infra.settings import IngestSettings
from ingest_workers.control import Grant
from ingest_workers.whip import WhipIngest, WhipRefused, nat_candidates

CANDIDATE = re.compile(r"^a=candidate:\S+ 1 udp \d+ (\S+) (\d+) typ host", re.MULTILINE)
CONNECT_TIMEOUT_S = 20.0  # a bound on a hang, not a speed requirement


# --- settings -----------------------------------------------------------------------------------


def test_both_are_off_by_default() -> None:
    settings = IngestSettings()
    assert settings.whip_udp_ports == "" and settings.whip_udp_port_range is None
    assert settings.whip_public_ip == ""


def test_a_port_range_is_first_to_last_inclusive() -> None:
    assert IngestSettings(whip_udp_ports="20000-20009").whip_udp_port_range == range(20000, 20010)
    assert IngestSettings(whip_udp_ports="20000-20000").whip_udp_port_range == range(20000, 20001)


@pytest.mark.parametrize("ports", ["20009-20000", "80-90", "20000-70000", "20000", "20000:20009", "a-b"])
def test_a_wrong_port_range_is_refused(ports: str) -> None:
    with pytest.raises(ValidationError):
        IngestSettings(whip_udp_ports=ports)


@pytest.mark.parametrize("address", ["203.0.113.10", "2001:db8::1"])
def test_the_public_address_is_an_ip_address(address: str) -> None:
    assert IngestSettings(whip_public_ip=address).whip_public_ip == address


@pytest.mark.parametrize("address", ["ingest.example.com", "203.0.113", "203.0.113.10:20000"])
def test_a_host_name_or_an_address_with_a_port_is_refused(address: str) -> None:
    with pytest.raises(ValidationError):
        IngestSettings(whip_public_ip=address)


# --- real peer connections ----------------------------------------------------------------------


@pytest.fixture
def ports() -> range:
    """Eight ports below the kernel's ephemeral range (where nothing binds by chance)."""
    first = random.randrange(20000, 30000)
    return range(first, first + 8)


@pytest.fixture
async def peers() -> AsyncIterator[tuple[RTCPeerConnection, RTCPeerConnection]]:
    """(publisher, node): no STUN or TURN, as WhipIngest and a WHIP client on a LAN."""
    publisher = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    node = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    yield publisher, node
    await publisher.close()
    await node.close()


async def exchange(
    publisher: RTCPeerConnection, node: RTCPeerConnection, ports: range | None, public_ip: str
) -> str:
    """The WHIP offer/answer (video and audio, send-only, bundled as OBS sends them); the answer."""
    publisher.addTransceiver("video", direction="sendonly")
    publisher.addTransceiver("audio", direction="sendonly")
    await publisher.setLocalDescription(await publisher.createOffer())
    await node.setRemoteDescription(publisher.localDescription)
    nat_candidates(node, ports, public_ip)
    await node.setLocalDescription(await node.createAnswer())
    answer = str(node.localDescription.sdp)
    await publisher.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return answer


async def connected(*pcs: RTCPeerConnection) -> None:
    async def settle() -> None:
        while any(pc.connectionState != "connected" for pc in pcs):
            assert not any(pc.connectionState in ("failed", "closed") for pc in pcs)
            await asyncio.sleep(0.05)

    await asyncio.wait_for(settle(), CONNECT_TIMEOUT_S)


def held_on_every_address(port: int) -> bool:
    """Whether a socket holds ``port`` on every IPv4 address (the wildcard): not even 127.0.0.1, an
    address no interface socket of aioice's gathering takes, is free."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.bind(("127.0.0.1", port))
    except OSError:
        return True
    finally:
        probe.close()
    return False


def candidates(answer: str) -> list[tuple[str, int]]:
    """The answer's candidates (each media section repeats the bundle's)."""
    return sorted({(host, int(port)) for host, port in CANDIDATE.findall(answer)})


async def test_with_a_range_every_candidate_is_on_a_port_of_it(
    peers: tuple[RTCPeerConnection, RTCPeerConnection], ports: range
) -> None:
    publisher, node = peers
    answer = await exchange(publisher, node, ports, "")
    found = candidates(answer)
    assert sorted(host for host, _ in found) == sorted(get_host_addresses(True, True))
    assert all(port in ports for _, port in found), found
    # one socket per address; an IPv4 and an IPv6 socket may share a port number (another family)
    assert len(found) == len(get_host_addresses(True, True)), found
    await connected(publisher, node)


async def test_with_a_public_address_the_answer_offers_only_it_and_media_reaches_the_node(
    peers: tuple[RTCPeerConnection, RTCPeerConnection], ports: range
) -> None:
    publisher, node = peers
    answer = await exchange(publisher, node, ports, "127.0.0.1")
    ((host, port),) = candidates(answer)
    assert host == "127.0.0.1" and port in ports
    assert "c=IN IP4 127.0.0.1" in answer
    assert held_on_every_address(port), "the node's socket answers whatever address a NAT forwards to"
    await connected(publisher, node)


async def test_a_public_address_without_a_range_takes_any_free_port(
    peers: tuple[RTCPeerConnection, RTCPeerConnection],
) -> None:
    publisher, node = peers
    ((host, port),) = candidates(await exchange(publisher, node, None, "127.0.0.1"))
    assert host == "127.0.0.1" and port > 0
    assert held_on_every_address(port)
    await connected(publisher, node)


@pytest.fixture
def taken(ports: range) -> Iterator[range]:
    """A range of one port, held by another socket on every address."""
    held = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    held.bind(("0.0.0.0", ports.start))
    try:
        yield range(ports.start, ports.start + 1)
    finally:
        held.close()


async def test_when_every_port_of_the_range_is_taken_the_answer_has_no_candidate(
    peers: tuple[RTCPeerConnection, RTCPeerConnection], taken: range
) -> None:
    """WhipIngest answers such an offer with 503 instead (an answer no publisher could reach)."""
    publisher, node = peers
    assert candidates(await exchange(publisher, node, taken, "127.0.0.1")) == []


# --- WhipIngest: the settings reach the answer ----------------------------------------------------


async def offer_of(publisher: RTCPeerConnection) -> str:
    publisher.addTransceiver("video", direction="sendonly")
    await publisher.setLocalDescription(await publisher.createOffer())
    return str(publisher.localDescription.sdp)


async def test_the_node_answers_with_the_settings_public_address_and_ports(
    peers: tuple[RTCPeerConnection, RTCPeerConnection], ports: range
) -> None:
    publisher, _ = peers
    settings = IngestSettings(whip_udp_ports=f"{ports.start}-{ports.stop - 1}", whip_public_ip="203.0.113.10")
    whip = WhipIngest(settings, control=None, authorizer=None)  # type: ignore[arg-type]  # not reached
    try:
        _, answer = await whip._open(Grant(stream_id="stream-1"), await offer_of(publisher))
        ((host, port),) = candidates(answer)
        assert host == "203.0.113.10" and port in ports
    finally:
        await whip.close()


async def test_the_node_refuses_with_503_when_every_port_is_taken(
    peers: tuple[RTCPeerConnection, RTCPeerConnection], taken: range
) -> None:
    publisher, _ = peers
    settings = IngestSettings(whip_udp_ports=f"{taken.start}-{taken.start}", whip_public_ip="127.0.0.1")
    whip = WhipIngest(settings, control=None, authorizer=None)  # type: ignore[arg-type]  # not reached
    with pytest.raises(WhipRefused) as refused:
        await whip._open(Grant(stream_id="stream-1"), await offer_of(publisher))
    assert refused.value.status == 503
    assert not whip._publishers
