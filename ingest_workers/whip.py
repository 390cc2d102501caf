"""WHIP ingest (WebRTC-HTTP Ingestion Protocol, RFC 9725): OBS 30+ and browsers publish over WebRTC.

``POST /whip`` (or ``/whip/<anything>``, for clients that append a name) on ``whip_port`` carries the
publisher's SDP offer (``Content-Type: application/sdp``) and its stream key as ``Authorization:
Bearer <key>``. The key goes through the same :class:`~ingest_workers.control.Authorizer` as RTMP
and SRT (counted in the same ``ingest_publish_total``, never logged); a known key gets ``201
Created`` with the SDP answer and ``Location: /whip/sessions/<id>``, an unguessable resource that
``DELETE`` ends. Wrong key: 401 (none) or 403 (unknown, revoked, or its stream has ended); not SDP:
415; an offer we cannot use: 400 with the reason. aiortc answers with every ICE candidate in the
SDP (no trickle: ``PATCH`` is 405, which RFC 9725 allows).

The media path, chosen to feed the same :class:`~ingest_workers.session.StreamSession` as SRT does
(the simplest robust path: no new transcoder, no second ladder): aiortc (a maintained WebRTC stack:
ICE, DTLS-SRTP, jitter buffer, H.264/VP8/Opus decoders) hands us decoded frames;
:class:`~ingest_workers.webrtc_relay.TsRelay` encodes them once more (H.264 + AAC) into MPEG-TS sent
over loopback UDP, and the session's FFmpeg reads ``udp://127.0.0.1:PORT`` exactly as it reads a
relayed SRT caller. The ladder, playlists, events (``IngestConnected.protocol`` is ``whip``, a
symbol appended in schema v3), health reports and drops all apply unchanged, and the key never
reaches a command line. The price is that extra encode in this process: aiortc exposes decoded
frames, not the publisher's H.264 (see :mod:`ingest_workers.webrtc_relay`).

The session starts when ICE/DTLS connect; the peer connection failing or closing (the publisher left)
detaches it, and :meth:`WhipIngest.drop_publisher` (the control's disconnector for ``whip``) closes it.
One publisher per stream: a new offer with the same key replaces the current publisher (OBS
reconnecting before its old connection timed out), and the session goes on as after a reconnect.
The node must be reachable on its host candidates (no STUN/TURN is configured). Behind a 1:1 NAT (a
container's published ports, a Kubernetes LoadBalancer) ``whip_udp_ports`` keeps the media sockets in
a range that can be published port for port, and ``whip_public_ip`` replaces the node's own addresses
in the answer by the one publishers reach (see :func:`nat_candidates`); both unset, aioice gathers as
usual: every local address, any free port.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import ipaddress
import logging
import random
import secrets
import socket
from dataclasses import dataclass, field

import httpx
from aioice import Candidate
from aioice.candidate import candidate_foundation, candidate_priority
from aioice.ice import Connection, StunProtocol
from aioice.turn import UDP_SOCKET_BUFFER_SIZE
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from events.ingest import IngestProtocol
from infra.settings import IngestSettings
from ingest_workers.control import MAX_KEY_LENGTH, Authorizer, Grant, IngestControl
from ingest_workers.session import Source
from ingest_workers.srt import _free_udp_port, udp_source
from ingest_workers.webrtc_relay import TsRelay

__all__ = [
    "MAX_OFFER_BYTES",
    "WhipIngest",
    "WhipRefused",
    "bearer_key",
    "nat_candidates",
    "read_offer",
    "whip_source",
]

log = logging.getLogger(__name__)
MAX_OFFER_BYTES = 65536  # an OBS offer is a few KiB
SDP_TYPE = "application/sdp"


class WhipRefused(Exception):
    """A WHIP request answered with an error status (``status``) and a message for the publisher."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bearer_key(authorization: str | None) -> str:
    """The stream key of ``Authorization: Bearer <key>``; 401 without one."""
    scheme, _, key = (authorization or "").strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise WhipRefused(401, "send the stream key as 'Authorization: Bearer <stream key>'")
    if len(key) > MAX_KEY_LENGTH:
        raise WhipRefused(403, "refused")
    return key


def read_offer(content_type: str | None, body: bytes) -> str:
    """The SDP offer of a WHIP POST: 415 unless ``application/sdp``, 413 if large, 400 unless an SDP
    session with at least one media section."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != SDP_TYPE:
        raise WhipRefused(415, f"the offer must be sent as Content-Type: {SDP_TYPE}")
    if len(body) > MAX_OFFER_BYTES:
        raise WhipRefused(413, f"the offer is larger than {MAX_OFFER_BYTES} bytes")
    try:
        sdp = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WhipRefused(400, "the offer is not UTF-8 text") from None
    lines = [line.strip() for line in sdp.splitlines()]
    if not lines or lines[0] != "v=0":
        raise WhipRefused(400, "the body is not an SDP offer (it must start with 'v=0')")
    if not any(line.startswith(("m=audio ", "m=video ")) for line in lines):
        raise WhipRefused(400, "the SDP offer has no audio or video section")
    return sdp


def whip_source(port: int, keyframe_s: float) -> Source:
    """What a WHIP session's FFmpeg reads: the relay's MPEG-TS on loopback UDP (as for SRT, see
    :func:`~ingest_workers.srt.udp_source`), probed long enough to meet a keyframe: FFmpeg joins the
    relay wherever it is, and its parameter sets come with the next keyframe (one per ``keyframe_s``)."""
    source = udp_source(port)
    probe_us = str(int((2 * keyframe_s + 1) * 1_000_000))
    probe = {"-analyzeduration": probe_us, "-probesize": "5000000"}
    return dataclasses.replace(
        source,
        protocol=IngestProtocol.WHIP,
        input_args=_with(source.input_args, probe),
        probe_args=_with(source.probe_args, probe),
        encoder="whip",
    )


def _with(args: tuple[str, ...], values: dict[str, str]) -> tuple[str, ...]:
    """``args`` with the value after each option of ``values`` replaced."""
    out = list(args)
    for option, value in values.items():
        out[out.index(option) + 1] = value
    return tuple(out)


def nat_candidates(pc: RTCPeerConnection, ports: range | None, public_ip: str) -> None:
    """Make ``pc`` (its remote description set, not yet its local one) gather its ICE host candidates
    on ``ports`` and, with ``public_ip``, on one socket bound to every local address of that family
    whose candidate is ``public_ip``: what a 1:1 NAT forwards to. aioice binds any free port on each
    local address and has no option for either, so each ICE connection gets this gathering of its own.
    """
    transports = [t.receiver.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport)
    for connection in {id(c): c for c in (t.transport.iceGatherer._connection for t in transports)}.values():
        gather = functools.partial(_host_candidates, connection, ports, public_ip)
        connection.get_component_candidates = gather  # type: ignore[method-assign]


async def _host_candidates(
    connection: Connection,
    ports: range | None,
    public_ip: str,
    *,
    component: int,
    addresses: list[str],
) -> list[Candidate]:
    """Stands in for :meth:`aioice.Connection.get_component_candidates`: host candidates only (no
    STUN or TURN server is configured for WHIP)."""
    if public_ip:
        addresses = ["::" if ipaddress.ip_address(public_ip).version == 6 else "0.0.0.0"]
    candidates = []
    for address in addresses:
        protocol = await _bind(connection, address, ports)
        if protocol is None:
            log.warning("WHIP: no free UDP port in %s on %s", ports, address)
            continue
        port = protocol.transport.get_extra_info("sockname")[1]
        host = public_ip or address
        protocol.local_candidate = Candidate(
            foundation=candidate_foundation("host", "udp", host),
            component=component,
            transport="udp",
            priority=candidate_priority(component, "host"),
            host=host,
            port=port,
            type="host",
        )
        connection._protocols.append(protocol)
        candidates.append(protocol.local_candidate)
    return candidates


async def _bind(connection: Connection, address: str, ports: range | None) -> StunProtocol | None:
    """A STUN socket of ``connection`` on ``address``: on a free port of ``ports`` (tried from a random
    one, so publishers spread), any free port without a range; None if every port is taken."""
    loop = asyncio.get_running_loop()
    start = random.randrange(len(ports)) if ports else 0
    candidates = [*ports[start:], *ports[:start]] if ports else [0]
    for port in candidates:
        try:
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: StunProtocol(connection), local_addr=(address, port)
            )
        except OSError:  # taken (another publisher, or anything else on this node)
            continue
        sock = transport.get_extra_info("socket")
        if sock is not None:  # as aioice does: room for a burst of video packets
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_SOCKET_BUFFER_SIZE)
        return protocol
    return None


@dataclass(eq=False)
class _Publisher:
    """One WHIP session resource: its peer connection and relay, once connected."""

    resource: str
    grant: Grant
    pc: RTCPeerConnection
    port: int
    tracks: list[MediaStreamTrack] = field(default_factory=list)
    relay: TsRelay | None = None
    attached: bool = False
    ended: bool = False


class WhipIngest:
    """The WHIP endpoint of a node: accepts publishers with a valid key and relays each to its session."""

    def __init__(self, settings: IngestSettings, control: IngestControl, authorizer: Authorizer) -> None:
        self.settings = settings
        self.control = control
        self.authorizer = authorizer
        self._publishers: dict[str, _Publisher] = {}  # resource id -> publisher
        self._ports: dict[str, int] = {}  # stream id -> relay port (a reconnect finds its session)

    def app(self) -> Starlette:
        """``POST /whip[/...]`` (offer → answer), ``DELETE /whip/sessions/{id}``."""
        return Starlette(
            routes=[
                Route("/whip/sessions/{resource}", self._delete, methods=["DELETE", "PATCH"]),
                Route("/whip", self._post, methods=["POST"]),
                Route("/whip/{name:path}", self._post, methods=["POST"]),
            ]
        )

    async def _post(self, request: Request) -> Response:
        """A publisher's offer: 201 with the SDP answer, or the refusal's status and reason."""
        try:
            key = bearer_key(request.headers.get("authorization"))
            offer = read_offer(request.headers.get("content-type"), await _body(request))
            grant = await self._authorize(key, request.client.host if request.client else None)
            publisher, answer = await self._open(grant, offer)
        except WhipRefused as e:
            if e.status in (401, 403):
                self.control.publishes.labels("refused").inc()
            return PlainTextResponse(e.message, status_code=e.status)
        self.control.publishes.labels("accepted").inc()
        log.info("WHIP publish accepted for stream %s", grant.stream_id)
        location = f"/whip/sessions/{publisher.resource}"
        return Response(answer, status_code=201, media_type=SDP_TYPE, headers={"Location": location})

    async def _authorize(self, key: str, addr: str | None) -> Grant:
        try:
            grant = await self.authorizer.authorize(key, addr)
        except httpx.HTTPError as e:
            log.error("stream-key check unavailable (%s): WHIP publish refused", type(e).__name__)
            self.control.publishes.labels("unavailable").inc()
            raise WhipRefused(503, "the stream-key check is unavailable; try again") from None
        if grant is None:
            log.info("WHIP publish refused: unknown or revoked stream key (from %s)", addr or "?")
            raise WhipRefused(403, "refused: unknown or revoked stream key")
        if self.control.ended(grant.stream_id):
            log.info("WHIP publish refused: stream %s has ended", grant.stream_id)
            raise WhipRefused(403, "refused: the stream has ended")
        return grant

    async def _open(self, grant: Grant, offer: str) -> tuple[_Publisher, str]:
        port = self._ports.setdefault(grant.stream_id, _free_udp_port())
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        publisher = _Publisher(secrets.token_urlsafe(18), grant, pc, port)
        pc.on("track", publisher.tracks.append)
        pc.on("connectionstatechange", lambda: self._state_changed(publisher))
        nat = bool(self.settings.whip_udp_ports or self.settings.whip_public_ip)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            if nat:
                nat_candidates(pc, self.settings.whip_udp_port_range, self.settings.whip_public_ip)
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as e:  # aiortc raises ValueError and friends on offers it cannot use
            await pc.close()
            raise WhipRefused(400, f"cannot use this SDP offer: {e}") from None
        if nat and "\na=candidate:" not in pc.localDescription.sdp:
            await pc.close()
            log.warning("WHIP publish refused: no ICE candidate (every port of whip_udp_ports taken?)")
            raise WhipRefused(503, "no WebRTC port is free on this node; try again later")
        for earlier in [p for p in self._publishers.values() if p.grant.stream_id == grant.stream_id]:
            # one publisher per stream: the newest wins (OBS reconnecting before its old connection
            # timed out), like a publisher coming back within the grace period
            log.info("stream %s: a new WHIP publisher replaces the previous one", grant.stream_id)
            await self._end(earlier)
        self._publishers[publisher.resource] = publisher
        return publisher, pc.localDescription.sdp

    async def _state_changed(self, publisher: _Publisher) -> None:
        state = publisher.pc.connectionState
        if state == "connected" and publisher.relay is None and not publisher.ended:
            self._connected(publisher)
        elif state in ("failed", "closed"):
            await self._end(publisher)

    def _connected(self, publisher: _Publisher) -> None:
        relay = publisher.relay = TsRelay(publisher.port, keyframe_s=self.settings.segment_s)
        for track in publisher.tracks:
            relay.add(track)
        stream_id, port, keyframe_s = publisher.grant.stream_id, publisher.port, self.settings.segment_s
        self.control.attach(stream_id, lambda: whip_source(port, keyframe_s), publisher.grant)
        publisher.attached = True
        log.info("WHIP publisher of stream %s connected", stream_id)

    async def _end(self, publisher: _Publisher) -> None:
        """The publisher left (closed, failed, DELETE or dropped): stop relaying, detach its session."""
        if publisher.ended:
            return
        publisher.ended = True
        self._publishers.pop(publisher.resource, None)
        await publisher.pc.close()
        if publisher.relay is not None:
            await publisher.relay.close()
        if publisher.attached:
            self.control.detach(publisher.grant.stream_id)
            log.info("WHIP publisher of stream %s left", publisher.grant.stream_id)

    async def _delete(self, request: Request) -> Response:
        """RFC 9725 §4.3: DELETE the session resource to stop publishing. No trickle ICE: PATCH is 405."""
        publisher = self._publishers.get(request.path_params["resource"])
        if publisher is None:
            return PlainTextResponse("no such WHIP session", status_code=404)
        if request.method == "PATCH":
            return PlainTextResponse("trickle ICE is not supported", status_code=405)
        await self._end(publisher)
        return PlainTextResponse("ended")

    async def drop_publisher(self, stream_id: str) -> bool:
        """The control's disconnector for WHIP: close the peer connection publishing ``stream_id``."""
        mine = [p for p in self._publishers.values() if p.grant.stream_id == stream_id and p.attached]
        for publisher in mine:
            await self._end(publisher)
        return bool(mine)

    async def close(self) -> None:
        for publisher in list(self._publishers.values()):
            await self._end(publisher)


async def _body(request: Request) -> bytes:
    """The request body, read no further than one byte over :data:`MAX_OFFER_BYTES`."""
    chunks, size = [], 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_OFFER_BYTES:
            break
    return b"".join(chunks)
