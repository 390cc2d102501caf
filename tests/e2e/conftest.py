"""The platform for browser tests, in an isolated namespace, and a real Chromium driven by Playwright.

``web_platform`` (one for the package, shared by its modules) starts what the pages need, on free ports and
under its own topic prefix, PostgreSQL schemas and Redis prefix (the support code of the integration
tests):

* the API with the pages, served by uvicorn on a real port (the browser's origin);
* the projector (in this process) and the processors worker (``esports processors``, a subprocess:
  lifecycle, moderation, viewer counts, polls);
* an edge node on a real port, with the API's JWT secret and the pages' origin allowed;
* the ingest node (nginx-rtmp, the origin and cache tier, the hooks, reading the command topics).

``web_stack`` (one per module) is a streamer of the module's own: a channel with FFmpeg pushing a test
pattern with a tone to it, as ``esports demo`` does, and a tournament whose match the live stream
belongs to. A module that ends its stream or sets its channel's rules leaves the others' alone.

``browser`` is Debian's Chromium at /usr/bin/chromium (never a downloaded build). Outside CI a
missing Chromium or Playwright skips the e2e tests; with ``CI=true`` it fails them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.util
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from edge_ws.node import EdgeNode
from events.codec import EventCodec
from infra.settings import Settings
from tests.integration.conftest import codec, settings
from tests.integration.test_api_support import ApiStack, User, stream_state
from tests.integration.test_edge_support import edge_settings, running_node
from tests.integration.test_ingest_support import (
    IngestEnv,
    Pusher,
    open_ingest_env,
    push_command,
    wait_playable,
)
from tests.ports import free_port
from web.app import create_app

__all__ = ["codec", "settings"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
PUSH_SECONDS = 1800  # longer than the module's tests; stopped at teardown
pytestmark = pytest.mark.integration


@dataclass
class WebStack:
    """The running platform as the browser tests see it."""

    env: IngestEnv
    base_url: str
    edge: EdgeNode
    owner: User
    channel_id: str
    stream_id: str
    tournament_id: str
    match_id: str
    pusher: Pusher
    stream_key: str
    followers: list[str] = dataclasses.field(default_factory=list)  # usernames, added by the tests
    pushers: list[Pusher] = dataclasses.field(default_factory=list)  # later pushes, stopped at teardown

    def push(self, log: Path) -> Pusher:
        """Publish the test pattern again with the channel's key (a new stream of the channel)."""
        pusher = Pusher(push_command(self.env.rtmp_url(self.stream_key), PUSH_SECONDS), log)
        self.pushers.append(pusher)
        return pusher

    @property
    def stack(self) -> ApiStack:
        return self.env.stack

    def url(self, path: str) -> str:
        return self.base_url + path


@contextlib.asynccontextmanager
async def serving(app: Any, port: int) -> AsyncIterator[None]:
    """The ASGI app under uvicorn on 127.0.0.1:port, in this event loop."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.05)
    try:
        yield
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def _tournament_of(stack: ApiStack, owner: User, stream_id: str) -> tuple[str, str]:
    created = await stack.command(
        "POST",
        "/api/v1/tournaments",
        owner,
        {"name": "E2E Masters", "game": "CS2", "starts_at": "2026-11-20T15:00:00Z"},
        expect=201,
    )
    await stack.query(f"/api/v1/tournaments/{created['tournament_id']}", after=created["positions"])
    match = await stack.command(
        "POST",
        f"/api/v1/tournaments/{created['tournament_id']}/matches",
        owner,
        {"teams": ["Vitality", "Spirit"], "scheduled_start": "2030-01-01T18:00:00Z", "round_name": "Final"},
        expect=201,
    )
    await stack.query(f"/api/v1/matches/{match['match_id']}", after=match["positions"])
    patched = await stack.command(
        "PATCH", f"/api/v1/streams/{stream_id}", owner, {"match_id": match["match_id"], "role": "main"}
    )
    await stack.query(f"/api/v1/matches/{match['match_id']}", after=patched["positions"])
    return created["tournament_id"], match["match_id"]


@dataclass
class WebPlatform:
    """The platform every browser module shares: the API with the pages, an edge, the ingest node."""

    env: IngestEnv
    base_url: str
    edge: EdgeNode


@pytest.fixture(scope="package")
async def web_platform(
    settings: Settings, codec: EventCodec, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[WebPlatform]:
    """Started once for the package, stopped after its last module (each module brings its own channel
    and push: see ``web_stack``)."""
    assert shutil.which("ffmpeg") and shutil.which("nginx"), "ffmpeg and nginx: infra/local/install-system.sh"
    tmp = tmp_path_factory.mktemp("web")
    async with open_ingest_env(settings, tmp, lifecycle=True, obey_commands=True) as env:
        stack = env.stack
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        api = stack.settings.api.model_copy(update={"public_url": base_url})
        edge = edge_settings(stack.settings).model_copy(update={"auth": stack.settings.auth, "api": api})
        async with running_node(edge, codec) as node:
            web = stack.settings.web.model_copy(update={"edge_urls": [f"ws://127.0.0.1:{node.port}/"]})
            page_settings = stack.settings.model_copy(
                update={"api": api, "ingest": env.node.settings.ingest, "web": web}
            )
            services = dataclasses.replace(stack.services, settings=page_settings)
            async with serving(create_app(page_settings, services), port):
                yield WebPlatform(env, base_url, node)


@pytest.fixture(scope="module")
async def web_stack(
    web_platform: WebPlatform, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[WebStack]:
    """A module's own streamer, channel and live stream (FFmpeg pushing) on the shared platform, in a
    match of a tournament: ending it, or changing its channel's rules, leaves the other modules' alone."""
    env, base_url, node = web_platform.env, web_platform.base_url, web_platform.edge
    stack = env.stack
    tmp = tmp_path_factory.mktemp("channel")
    owner = await stack.register()
    channel = await stack.command(
        "POST",
        "/api/v1/channels",
        owner,
        {"slug": f"e2e-{uuid.uuid4().hex[:10]}", "display_name": "E2E Channel"},
    )
    await stack.relogin(owner)
    issued = await stack.command(
        "POST", f"/api/v1/channels/{channel['channel_id']}/stream-key", owner, expect=201
    )
    pusher = Pusher(push_command(env.rtmp_url(issued["stream_key"]), PUSH_SECONDS), tmp / "push.log")
    pushers: list[Pusher] = []
    try:
        stream_id = await env.stream_for(channel["channel_id"], timeout_s=60)
        await stream_state(stack, stream_id, "live", timeout_s=90)
        await wait_playable(env, stream_id, segments=3, timeout_s=90)
        tournament_id, match_id = await _tournament_of(stack, owner, stream_id)
        yield WebStack(
            env,
            base_url,
            node,
            owner,
            channel["channel_id"],
            stream_id,
            tournament_id,
            match_id,
            pusher,
            issued["stream_key"],
            pushers=pushers,
        )
    finally:
        pusher.stop()
        for later in pushers:
            later.stop()


@pytest.fixture(scope="package")
async def browser() -> AsyncIterator[Any]:
    """Headless Debian Chromium under Playwright (skipped outside CI when missing, failed in CI)."""
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright package (pip install -e '.[dev]')")
    if missing:
        message = "e2e needs " + " and ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()
