"""The ingest node's composition root: nginx (RTMP + origin), the cache tier, the hook service.

``serve(settings, stop)`` builds settings → clients (Kafka publisher and command reader, API client)
→ components (:class:`IngestControl`, the hook app, both nginx, the LL origin when Low-Latency HLS is
on, the SRT listener, the WHIP endpoint, the
:class:`~ingest_workers.commands.CommandListener`, the replay
:class:`~ingest_workers.retention.RetentionSweeper`) and runs them until ``stop`` is set; ``run`` is
what ``esports ingest`` (and ``python -m ingest_workers``) calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import uvicorn
from starlette.applications import Starlette

from events.base import Event
from events.codec import EventCodec
from events.ingest import IngestProtocol
from events.streams import ClipRequested
from events.topics import Topic
from infra import logs
from infra.kafka import EventConsumer, EventPublisher, KafkaError, LoggedDeadLetters
from infra.settings import Settings
from ingest_workers import nginx
from ingest_workers.clips import ClipCutter
from ingest_workers.commands import COMMAND_TOPICS, READY_TIMEOUT_S, CommandListener
from ingest_workers.control import ApiAuthorizer, Authorizer, IngestControl, create_hook_app
from ingest_workers.errors import IngestError
from ingest_workers.ll_origin import create_ll_origin
from ingest_workers.retention import RetentionSweeper, remove_vod
from ingest_workers.session import EventSink
from ingest_workers.srt import SrtListener
from ingest_workers.whip import WhipIngest
from schemas import SCHEMAS_DIR

__all__ = ["IngestNode", "command_reader", "open_node", "run", "serve"]

log = logging.getLogger(__name__)


@dataclass
class IngestNode:
    """A running node: its control (sessions), its processes and its replay sweeper (if retention is set)."""

    settings: Settings
    control: IngestControl
    origin: nginx.Nginx
    cdn: nginx.Nginx
    sweeper: RetentionSweeper | None = None

    def url(self, path: str, *, tier: str = "cdn") -> str:
        """A URL of the cache tier ("cdn"), the origin nginx ("origin") or the LL origin ("ll")."""
        if tier == "ll":
            return f"http://127.0.0.1:{self.settings.ingest.ll_origin_port}{path}"
        port = self.settings.ingest.cdn_port if tier == "cdn" else self.settings.ingest.origin_port
        return f"http://{self.settings.ingest.host}:{port}{path}"


@contextlib.asynccontextmanager
async def _http_server(
    app: Starlette, host: str, port: int, *, name: str, setting: str
) -> AsyncIterator[None]:
    """Serve ``app`` (the ``name`` service) on ``host:port`` while inside; ``setting`` moves it."""
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
            raise IngestError(f"{name} could not bind port {port}; set {setting} to move it")
        await asyncio.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        await task


def command_reader(settings: Settings, topics: tuple[str, ...] = COMMAND_TOPICS) -> EventConsumer:
    """The node's reader of the command topics: no group, from their end (see :class:`CommandListener`)."""
    return EventConsumer(
        settings.kafka,
        EventCodec.load(SCHEMAS_DIR),
        topics=topics,
        group_id=None,
        dead_letters=LoggedDeadLetters("ingest_workers"),  # what it cannot read concerns it not
        from_beginning=False,
    )


@contextlib.asynccontextmanager
async def _obeying(control: IngestControl, commands: EventConsumer | None) -> AsyncIterator[None]:
    """Run a :class:`CommandListener` on ``commands`` (if any) while inside; ready when entered."""
    if commands is None:
        yield
        return
    hls_dir = control.settings.hls_dir

    async def remove(stream_id: str) -> None:
        if await asyncio.to_thread(remove_vod, hls_dir, stream_id):
            log.info("stream %s: replay deleted from %s", stream_id, hls_dir)

    listener = CommandListener(commands, control.publishers, control.drop, remove)
    async with commands:
        task = asyncio.create_task(listener.run(), name="ingest-commands")
        task.add_done_callback(_report_stopped)
        ready = asyncio.create_task(listener.ready.wait())
        try:
            await asyncio.wait({task, ready}, timeout=READY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                await task  # raises what stopped it (no partitions: do the topics exist?)
            if not ready.done():
                raise IngestError(f"the command reader did not start within {READY_TIMEOUT_S:.0f}s")
            yield
        finally:
            for each in (task, ready):
                each.cancel()
            await asyncio.gather(task, ready, return_exceptions=True)


def _report_stopped(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the node stopped reading commands from the log: %r", task.exception())


@contextlib.asynccontextmanager
async def _clipping(settings: Settings, node: str, sink: EventSink, on: bool) -> AsyncIterator[None]:
    """Cut the clips requested of the streams held here (:mod:`ingest_workers.clips`) while inside, if
    ``on``: a reader of ``streams`` of its own (no group, from the end, like the command reader), so a
    clip being cut never delays a drop or a deletion."""
    if not on:
        yield
        return

    async def publish(event: Event) -> None:
        await sink.publish_many([event])

    ingest = settings.ingest
    cutter = ClipCutter(
        hls_dir=ingest.hls_dir, public_hls_url=ingest.public_hls_url, node=node, publish=publish
    )
    reader = command_reader(settings, (Topic.STREAMS,))
    pending: set[asyncio.Task[object]] = set()
    ready = asyncio.Event()

    async def read() -> None:
        assigned = await reader.assignment(READY_TIMEOUT_S)
        async for batch in reader.batches(timeout_ms=200):
            for consumed in batch:
                if isinstance(consumed.event, ClipRequested) and cutter.holds(consumed.event.stream_id):
                    task = asyncio.create_task(cutter.handle(consumed.event))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
            if not ready.is_set() and len(reader.positions()) >= len(assigned):
                ready.set()

    async with reader:
        task = asyncio.create_task(read(), name="ingest-clips")
        task.add_done_callback(_report_stopped)
        waiting = asyncio.create_task(ready.wait())
        try:
            await asyncio.wait({task, waiting}, timeout=READY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                await task
            if not waiting.done():
                raise IngestError(f"the clip reader did not start within {READY_TIMEOUT_S:.0f}s")
            yield
        finally:
            for each in (task, waiting, *pending):
                each.cancel()
            await asyncio.gather(task, waiting, *pending, return_exceptions=True)


@contextlib.asynccontextmanager
async def _ll_origin(settings: Settings) -> AsyncIterator[None]:
    """Serve the Low-Latency HLS origin on 127.0.0.1 (the origin nginx forwards to it) if it is on."""
    ingest = settings.ingest
    if not ingest.low_latency:
        yield
        return
    app = create_ll_origin(ingest.hls_dir, part_wait_s=3 * max(ingest.segment_s, 1.0))
    async with _http_server(
        app,
        "127.0.0.1",
        ingest.ll_origin_port,
        name="LL-HLS origin",
        setting="ESPORTS_INGEST__LL_ORIGIN_PORT",
    ):
        yield


@contextlib.asynccontextmanager
async def _sweeping(control: IngestControl, sink: EventSink) -> AsyncIterator[RetentionSweeper | None]:
    """Run the replay retention sweep while inside, if ``vod_retention_days`` is set (else None)."""
    ingest = control.settings
    if ingest.vod_retention_days <= 0:
        yield None
        return

    async def publish(event: Event) -> None:
        await sink.publish_many([event])

    sweeper = RetentionSweeper(
        hls_dir=ingest.hls_dir,
        retention_days=ingest.vod_retention_days,
        interval_s=ingest.vod_sweep_interval_s,
        node=control.node,
        live=lambda: set(control.sessions),
        publish=publish,
    )
    task = asyncio.create_task(sweeper.run(), name="ingest-vod-retention")
    try:
        yield sweeper
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@contextlib.asynccontextmanager
async def open_node(
    settings: Settings, sink: EventSink, authorizer: Authorizer, *, commands: EventConsumer | None = None
) -> AsyncIterator[IngestNode]:
    """Start the hook service, the ingest/origin nginx and the cache tier; stop them on exit.

    With ``commands`` (see :func:`command_reader`) the node obeys the log: it drops the publishers
    of streams that ended and of keys that were rotated, and deletes replays on command
    (:mod:`ingest_workers.commands`) and cuts the clips asked of its streams (:mod:`ingest_workers.clips`).
    With ``vod_retention_days`` set it sweeps old replays
    (:mod:`ingest_workers.retention`)."""
    control = IngestControl(settings.ingest, sink)
    node = IngestNode(settings, control, nginx.origin(settings), nginx.cdn(settings))
    srt = SrtListener(settings.ingest.host, settings.ingest.srt_port, control, authorizer)
    control.disconnectors[IngestProtocol.RTMP] = node.origin.drop_publisher
    control.disconnectors[IngestProtocol.SRT] = srt.drop_publisher
    whip = WhipIngest(settings.ingest, control, authorizer)
    control.disconnectors[IngestProtocol.WHIP] = whip.drop_publisher
    hooks = create_hook_app(settings.ingest, control, authorizer)
    ingest = settings.ingest
    async with (
        _http_server(
            hooks, "127.0.0.1", ingest.hook_port, name="hook service", setting="ESPORTS_INGEST__HOOK_PORT"
        ),
        _http_server(
            whip.app(), ingest.host, ingest.whip_port, name="WHIP ingest", setting="ESPORTS_INGEST__WHIP_PORT"
        ),
        _ll_origin(settings),
    ):
        try:
            await node.origin.start()
            await node.cdn.start()
            srt.start(asyncio.get_running_loop())
            async with (
                _obeying(control, commands),
                _clipping(settings, control.node, sink, commands is not None),
                _sweeping(control, sink) as sweeper,
            ):
                node.sweeper = sweeper
                yield node
        finally:
            await asyncio.to_thread(srt.stop)
            await whip.close()
            await control.close()
            await node.cdn.stop()
            await node.origin.stop()


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Run a node against the real API and Kafka until `stop` is set."""
    token = settings.auth.internal_token
    if token is None:
        raise IngestError("ESPORTS_AUTH__INTERNAL_TOKEN is not set (esports infra up writes a local one)")
    async with (
        EventPublisher(settings.kafka, EventCodec.load(SCHEMAS_DIR), producer="ingest_workers") as publisher,
        httpx.AsyncClient(base_url=settings.ingest.api_url, timeout=5, trust_env=False) as api,
        open_node(
            settings,
            publisher,
            ApiAuthorizer(api, token.get_secret_value()),
            commands=command_reader(settings),
        ) as node,
    ):
        log.info(
            "ingest node %s: rtmp://%s:%s/live, WHIP http://%s:%s/whip, origin :%s, cache tier :%s (%s)",
            node.control.node,
            settings.ingest.host,
            settings.ingest.rtmp_port,
            settings.ingest.host,
            settings.ingest.whip_port,
            settings.ingest.origin_port,
            settings.ingest.cdn_port,
            settings.ingest.public_hls_url,
        )
        await stop.wait()


def run(settings: Settings) -> int:
    """`esports ingest`: serve until SIGINT/SIGTERM."""
    logs.configure(settings.log_level, settings.log_format)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop)

    try:
        asyncio.run(main())
    except (IngestError, KafkaError) as e:
        log.error("%s", e)
        return 1
    return 0
