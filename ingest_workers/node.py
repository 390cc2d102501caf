"""The ingest node's composition root: nginx (RTMP + origin), the cache tier, the hook service.

``serve(settings, stop)`` builds settings → clients (Kafka publisher, API client) → components
(:class:`IngestControl`, the hook app, both nginx) and runs them until ``stop`` is set; ``run`` is
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

from events.codec import EventCodec
from infra import logs
from infra.kafka import EventPublisher
from infra.settings import Settings
from ingest_workers import nginx
from ingest_workers.control import ApiAuthorizer, Authorizer, IngestControl, create_hook_app
from ingest_workers.errors import IngestError
from ingest_workers.session import EventSink
from ingest_workers.srt import SrtListener
from schemas import SCHEMAS_DIR

__all__ = ["IngestNode", "open_node", "run", "serve"]

log = logging.getLogger(__name__)


@dataclass
class IngestNode:
    """A running node: its control (sessions) and its processes."""

    settings: Settings
    control: IngestControl
    origin: nginx.Nginx
    cdn: nginx.Nginx

    def url(self, path: str, *, tier: str = "cdn") -> str:
        port = self.settings.ingest.cdn_port if tier == "cdn" else self.settings.ingest.origin_port
        return f"http://{self.settings.ingest.host}:{port}{path}"


@contextlib.asynccontextmanager
async def _hook_server(settings: Settings, app: Starlette) -> AsyncIterator[None]:
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=settings.ingest.hook_port,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
            raise IngestError(
                f"hook service could not bind port {settings.ingest.hook_port}; "
                "set ESPORTS_INGEST__HOOK_PORT to move it"
            )
        await asyncio.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def open_node(settings: Settings, sink: EventSink, authorizer: Authorizer) -> AsyncIterator[IngestNode]:
    """Start the hook service, the ingest/origin nginx and the cache tier; stop them on exit."""
    control = IngestControl(settings.ingest, sink)
    node = IngestNode(settings, control, nginx.origin(settings), nginx.cdn(settings))
    srt = SrtListener(settings.ingest.host, settings.ingest.srt_port, control, authorizer)
    async with _hook_server(settings, create_hook_app(settings.ingest, control, authorizer)):
        try:
            await node.origin.start()
            await node.cdn.start()
            srt.start(asyncio.get_running_loop())
            yield node
        finally:
            await asyncio.to_thread(srt.stop)
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
        open_node(settings, publisher, ApiAuthorizer(api, token.get_secret_value())) as node,
    ):
        log.info(
            "ingest node %s: rtmp://%s:%s/live, origin :%s, cache tier :%s (%s)",
            node.control.node,
            settings.ingest.host,
            settings.ingest.rtmp_port,
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
    except IngestError as e:
        log.error("%s", e)
        return 1
    return 0
