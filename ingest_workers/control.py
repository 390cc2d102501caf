"""Ingest control: the stream-key check behind nginx-rtmp's hooks, and the registry of live sessions.

``on_publish`` posts the publisher's stream name (its stream key) here. The key is checked by the
API's internal authorize endpoint (against the stored hash, in constant time) and never logged;
a known key is answered with a redirect that renames the RTMP stream to its stream id, so everything
after this point (the transcoder's command line, files, URLs, events) only ever sees the stream id.
Unknown or revoked keys get 403 and nginx drops the connection. ``on_publish_done`` marks the
publisher gone; the session ends after its grace period.

:meth:`IngestControl.drop` is the other way a publisher goes: the node was told by the log (see
:mod:`ingest_workers.commands`) that its stream ended or its key was rotated. It disconnects the
publisher through the protocol's own means (registered by the composition root as ``disconnectors``)
and the session ends at once, without waiting for a reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qs

import httpx
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from events.ingest import IngestProtocol
from infra.metrics import LATENCY_BUCKETS, render, service_registry
from infra.settings import IngestSettings
from ingest_workers.commands import Drop, DropReason, Publisher
from ingest_workers.nginx import RTMP_APP
from ingest_workers.pull import pull_source
from ingest_workers.session import EventSink, Source, StreamSession

__all__ = [
    "ApiAuthorizer",
    "Authorizer",
    "Disconnector",
    "Grant",
    "IngestControl",
    "create_hook_app",
    "node_name",
    "rtmp_source",
]

log = logging.getLogger(__name__)
MAX_KEY_LENGTH = 256
MAX_FORM_BYTES = 16384
FAST_PROBE = ("-analyzeduration", "500000", "-probesize", "500000")
ENDED_REMEMBERED = 1000  # streams this node was told ended, refused if their publisher comes back
Handler = Callable[[Request], Awaitable[Response]]
Disconnector = Callable[[str], Awaitable[bool]]  # stream id -> whether a publisher was disconnected


@dataclass(frozen=True, slots=True, kw_only=True)
class Grant:
    """What a valid stream key lets in: the stream to publish, its channel and the key's opaque id
    (never the key), and the channel's video settings. ``channel_id``/``key_id`` are "" when the
    authorizer does not know them."""

    stream_id: str
    channel_id: str = ""
    key_id: str = ""
    dvr_window_s: float | None = None  # the channel's DVR window; None: the node's ``dvr_window_s``


class Authorizer(Protocol):
    """Maps a stream key to what it may publish, or None when the key is unknown or revoked."""

    async def authorize(self, stream_key: str, publisher_addr: str | None = None) -> Grant | None: ...


class ApiAuthorizer:
    """Asks the API's ``POST /internal/ingest/authorize`` (bearer: the internal token)."""

    def __init__(self, client: httpx.AsyncClient, internal_token: str) -> None:
        self._client = client
        self._headers = {"Authorization": f"Bearer {internal_token}"}

    async def authorize(self, stream_key: str, publisher_addr: str | None = None) -> Grant | None:
        body = {"stream_key": stream_key}
        if publisher_addr and _is_ip(publisher_addr):
            body["publisher_addr"] = publisher_addr  # wrong keys are limited per publisher address
        response = await self._client.post("/internal/ingest/authorize", json=body, headers=self._headers)
        if response.status_code == 429:
            log.warning("publish refused: too many wrong stream keys from %s", publisher_addr or "this node")
            return None
        if response.status_code in (403, 404, 422):
            return None
        response.raise_for_status()
        answer = response.json()
        dvr = answer.get("dvr_window_s")
        return Grant(
            stream_id=str(answer["stream_id"]),
            channel_id=str(answer.get("channel_id", "")),
            key_id=str(answer.get("key_id", "")),
            dvr_window_s=None if dvr is None else float(dvr),
        )


def session_settings(settings: IngestSettings, grant: Grant) -> IngestSettings:
    """The node's settings with the channel's own where it chose them (its DVR window)."""
    if grant.dvr_window_s is None or grant.dvr_window_s == settings.dvr_window_s:
        return settings
    return settings.model_copy(update={"dvr_window_s": grant.dvr_window_s})


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def rtmp_source(settings: IngestSettings, stream_id: str, encoder: str | None = None) -> Source:
    """The local nginx's copy of a published stream, named by its stream id (never by its key)."""
    url = f"rtmp://127.0.0.1:{settings.rtmp_port}/{RTMP_APP}/{stream_id}"
    # nginx relays FLV with its codec headers first: half a second of probing is plenty.
    args = ("-protocol_whitelist", "rtmp,tcp", "-rtmp_live", "live", *FAST_PROBE, "-i", url)
    return Source(
        protocol=IngestProtocol.RTMP, input_args=args, probe_args=(*args[:-2], url), encoder=encoder
    )


def node_name(settings: IngestSettings) -> str:
    """The node's name in events (``IngestConnected.node``) and on /health: host name and RTMP port,
    which tells apart two nodes on one machine."""
    return f"{socket.gethostname()}:{settings.rtmp_port}"


class IngestControl:
    """The node's live sessions by stream id; one supervised task each."""

    def __init__(self, settings: IngestSettings, sink: EventSink, *, node: str | None = None) -> None:
        self.settings = settings
        self.sink = sink
        self.node = node or node_name(settings)
        self.sessions: dict[str, StreamSession] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.grants: dict[str, Grant] = {}  # stream id -> what its current publisher was let in with
        self.disconnectors: dict[IngestProtocol, Disconnector] = {}  # pushed sources, by protocol
        self._ended: deque[str] = deque(maxlen=ENDED_REMEMBERED)
        self.metrics = service_registry()
        self.publishes = Counter(
            "ingest_publish_total", "Publish attempts by outcome", ["outcome"], registry=self.metrics
        )
        self.live = Gauge("ingest_sessions", "Live ingest sessions on this node", registry=self.metrics)
        self.live.set_function(lambda: len(self.sessions))
        self.hook_seconds = Histogram(
            "ingest_hook_duration_seconds",
            "Time to answer an nginx-rtmp hook (on_publish includes the stream-key check), by hook",
            ["hook"],
            buckets=LATENCY_BUCKETS,
            registry=self.metrics,
        )
        self.dropped = Counter(
            "ingest_publishers_dropped_total",
            "Publishers this node disconnected because the log said so, by reason",
            ["reason"],
            registry=self.metrics,
        )
        for reason in DropReason:
            self.dropped.labels(reason.value)
        self.ended_restarts = 0  # FFmpeg restarts of the sessions that have ended
        self.metrics.register(_TranscoderRestarts(self))

    def attach(
        self, stream_id: str, make_source: Callable[[], Source], grant: Grant | None = None
    ) -> StreamSession:
        """A publisher (re)connected: continue its session within the grace period, else start one."""
        self.grants[stream_id] = grant or Grant(stream_id=stream_id)
        session = self.sessions.get(stream_id)
        if session is not None:
            session.source_back()
            return session
        session = StreamSession(
            session_settings(self.settings, self.grants[stream_id]),
            self.sink,
            stream_id=stream_id,
            source=make_source(),
            node=self.node,
        )
        self.sessions[stream_id] = session
        task = asyncio.create_task(self._supervise(session), name=f"ingest-{stream_id}")
        self.tasks[stream_id] = task
        return session

    def pull(self, stream_id: str, url: str) -> StreamSession:
        """Transcode a production feed (RTMP, SRT, HLS or file URL) as stream `stream_id`."""
        source = pull_source(url, allow_local=True)  # the operator's feed; refuses unsupported schemes
        return self.attach(stream_id, lambda: source)

    def detach(self, stream_id: str) -> None:
        """The publisher left; the session ends unless it comes back within the grace period."""
        session = self.sessions.get(stream_id)
        if session is not None:
            session.source_left()

    async def _supervise(self, session: StreamSession) -> None:
        try:
            await session.run()
        except Exception:
            log.exception("stream %s: session failed", session.stream_id)
        finally:
            self.sessions.pop(session.stream_id, None)
            self.tasks.pop(session.stream_id, None)
            self.grants.pop(session.stream_id, None)
            self.ended_restarts += session.counters.restarts

    def ended(self, stream_id: str) -> bool:
        """Whether the log said this stream ended (a publisher coming back to it is refused)."""
        return stream_id in self._ended

    def publishers(self) -> list[Publisher]:
        """The live sessions as :func:`ingest_workers.commands.decide` sees them."""
        return [
            Publisher(stream_id=stream_id, channel_id=grant.channel_id, key_id=grant.key_id)
            for stream_id, grant in self.grants.items()
            if stream_id in self.sessions
        ]

    async def drop(self, drop: Drop) -> bool:
        """Disconnect the publisher of ``drop.stream_id`` if it is on this node (False if not); for an
        ended stream, end its session at once instead of after the grace period."""
        session = self.sessions.get(drop.stream_id)
        if session is None:
            return False
        if drop.reason is DropReason.STREAM_ENDED:
            # no grace: the stream is over, and a publisher coming back to it is refused. A rotated
            # key keeps the grace period: the publisher may come back with the new key and continue.
            self._ended.append(drop.stream_id)
            session.end_now("stream ended")
        self.dropped.labels(drop.reason.value).inc()
        disconnect = self.disconnectors.get(session.source.protocol) if session.source.live else None
        if disconnect is None or not await disconnect(drop.stream_id):
            # a pulled feed, or a publisher the server no longer knows: stop the session itself
            task = self.tasks.get(drop.stream_id)
            if task is not None:
                task.cancel()
        log.info("stream %s: publisher dropped (%s)", drop.stream_id, drop.reason.value)
        return True

    async def wait_ended(self, stream_id: str) -> None:
        task = self.tasks.get(stream_id)
        if task is not None:
            await asyncio.shield(task)

    async def close(self) -> None:
        """Stop every session (each still finalises its playlists and reports the disconnect)."""
        for task in list(self.tasks.values()):
            task.cancel()
        for task in list(self.tasks.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task


class _TranscoderRestarts(Collector):
    """``ingest_transcoder_restarts_total``: FFmpeg restarts under a connected source, read at scrape time."""

    def __init__(self, control: IngestControl) -> None:
        self._control = control

    def collect(self) -> Iterator[Metric]:
        live = sum(session.counters.restarts for session in self._control.sessions.values())
        yield CounterMetricFamily(
            "ingest_transcoder_restarts",
            "FFmpeg restarts after a crash while the publisher stayed connected, on this node.",
            value=self._control.ended_restarts + live,
        )


async def _form(request: Request) -> dict[str, str]:
    """nginx-rtmp's urlencoded notification (small; anything larger is not nginx)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    return {k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()}


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_hook_app(settings: IngestSettings, control: IngestControl, authorizer: Authorizer) -> Starlette:
    """The hook service: nginx-rtmp's on_publish / on_publish_done, /health and /metrics."""
    clients: dict[str, str] = {}  # nginx client id -> stream id, to match on_publish_done

    async def publish(request: Request) -> Response:
        """on_publish: check the key; 302 renames the stream to its id, 403 refuses it."""
        if not _loopback(request):
            return PlainTextResponse("forbidden", status_code=403)
        form = await _form(request)
        key, app = str(form.get("name", "")), str(form.get("app", ""))
        if app != RTMP_APP or not key or len(key) > MAX_KEY_LENGTH:
            control.publishes.labels("refused").inc()
            return PlainTextResponse("refused", status_code=403)
        try:
            grant = await authorizer.authorize(key, str(form.get("addr", "")) or None)
        except httpx.HTTPError as e:
            log.error("stream-key check unavailable (%s): publish refused", type(e).__name__)
            control.publishes.labels("unavailable").inc()
            return PlainTextResponse("unavailable", status_code=503)
        if grant is None:
            log.info("publish refused: unknown or revoked stream key (from %s)", form.get("addr", "?"))
            control.publishes.labels("refused").inc()
            return PlainTextResponse("refused", status_code=403)
        stream_id = grant.stream_id
        if control.ended(stream_id):
            log.info("publish refused: stream %s has ended", stream_id)
            control.publishes.labels("refused").inc()
            return PlainTextResponse("refused", status_code=403)
        clients[str(form.get("clientid", ""))] = stream_id
        encoder = str(form.get("flashver", form.get("flashVer", ""))) or None
        control.attach(stream_id, lambda: rtmp_source(settings, stream_id, encoder), grant)
        control.publishes.labels("accepted").inc()
        log.info("publish accepted for stream %s", stream_id)
        return Response(status_code=302, headers={"Location": stream_id})

    async def publish_done(request: Request) -> Response:
        """on_publish_done: the publisher left."""
        if not _loopback(request):
            return PlainTextResponse("forbidden", status_code=403)
        form = await _form(request)
        stream_id = clients.pop(str(form.get("clientid", "")), None)
        if stream_id is not None:
            log.info("publisher of stream %s left", stream_id)
            control.detach(stream_id)
        return PlainTextResponse("ok")

    async def health(request: Request) -> Response:
        """Liveness and the live sessions of this node."""
        return JSONResponse({"status": "ok", "node": control.node, "sessions": sorted(control.sessions)})

    async def metrics(request: Request) -> Response:
        body, content_type = render(control.metrics)
        return Response(body, media_type=content_type)

    def timed(hook: str, handler: Handler) -> Handler:
        seconds = control.hook_seconds.labels(hook)

        async def timed_handler(request: Request) -> Response:
            with seconds.time():
                return await handler(request)

        return timed_handler

    return Starlette(
        routes=[
            Route("/hooks/rtmp/publish", timed("publish", publish), methods=["POST"]),
            Route("/hooks/rtmp/publish_done", timed("publish_done", publish_done), methods=["POST"]),
            Route("/health", health),
            Route("/metrics", metrics),
        ]
    )
