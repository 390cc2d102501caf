"""What the ingest tests share: a node on free ports with a small ladder, FFmpeg pushers, HLS readers.

``ingest_env`` (one per test module) is the API stack of ``test_api_support`` (its authorize endpoint,
over ASGI) plus an ingest node running in the test's event loop: the hook service, the ingest/origin
nginx and the cache tier, under a temporary run folder, publishing to the stack's topics. Events are
also kept in memory (``sink.events``) so tests can wait on them without a consumer per test.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import m3u8
import pytest

from events.base import Event
from events.codec import EventCodec
from infra.kafka import EventConsumer, EventPublisher, LoggedDeadLetters
from infra.settings import Settings
from ingest_workers.control import ApiAuthorizer
from ingest_workers.node import IngestNode, command_reader, open_node
from schemas import SCHEMAS_DIR
from tests.integration.test_api_support import ApiStack, eventually, open_api_stack
from tests.ports import free_port

SOURCE = "testsrc2=size=320x180:rate=30"
LADDER = ["144p:250", "90p:120"]  # under a 320x180 source: source passthrough + two rungs


def node_settings(base: Settings, tmp: Path, **overrides: Any) -> Settings:
    """Free ports, a private run folder, 1 s segments, a tiny ladder, a short grace period.

    ``overrides`` replace any of these ingest settings (``end_grace_s=0.5``, ...).
    """
    ingest = base.ingest.model_copy(
        update={
            "rtmp_port": free_port(),
            "srt_port": free_port(),
            "origin_port": free_port(),
            "cdn_port": free_port(),
            "hook_port": free_port(),
            "whip_port": free_port(),
            "ll_origin_port": free_port(),
            "hls_dir": tmp / "hls",
            "segment_s": 1.0,
            "ladder": LADDER,
            "x264_preset": "ultrafast",
            "end_grace_s": 1.5,
            "health_interval_s": 1.0,
            **overrides,
        }
    )
    ingest.public_hls_url = f"http://127.0.0.1:{ingest.cdn_port}/hls"
    stack = base.stack.model_copy(update={"run_dir": tmp / "run"})
    return base.model_copy(update={"ingest": ingest, "stack": stack})


class RecordingSink:
    """Publishes to Kafka (acknowledged) and keeps what it published."""

    def __init__(self, publisher: EventPublisher) -> None:
        self.publisher = publisher
        self.events: list[Event] = []

    async def publish_many(self, events: Sequence[Event]) -> Any:
        positions = await self.publisher.publish_many(events)
        self.events.extend(events)
        return positions

    def of(self, kind: type, stream_id: str) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind) and getattr(e, "stream_id", None) == stream_id]


class TopicLog:
    """Every event of some topics, read from their beginning in the background (see :func:`reading`)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def of(self, stream_id: str, *kinds: type) -> list[Any]:
        """The events about ``stream_id`` (of ``kinds``, if any), in the order they were read."""
        return [
            e
            for e in self.events
            if getattr(e, "stream_id", None) == stream_id and (not kinds or isinstance(e, kinds))
        ]

    async def first(self, stream_id: str, kind: type, *, timeout_s: float) -> Any:
        async def probe() -> Any:
            return next(iter(self.of(stream_id, kind)), None)

        return await eventually(probe, timeout_s=timeout_s, interval_s=0.1)


@contextlib.asynccontextmanager
async def reading(settings: Settings, *topics: str) -> AsyncIterator[TopicLog]:
    """A :class:`TopicLog` of ``topics`` (logical names) in ``settings``' namespace, while inside."""
    consumer = EventConsumer(
        settings.kafka,
        EventCodec.load(SCHEMAS_DIR),
        topics=list(topics),
        group_id=None,
        dead_letters=LoggedDeadLetters("tests"),
        from_beginning=True,
    )
    log = TopicLog()

    async def collect() -> None:
        async for batch in consumer.batches(timeout_ms=100):
            log.events.extend(c.event for c in batch)

    async with consumer:
        task = asyncio.create_task(collect())
        try:
            yield log
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


@dataclass
class IngestEnv:
    """The API stack, the running node and its event sink."""

    stack: ApiStack
    node: IngestNode
    sink: RecordingSink
    tmp: Path
    claimed: set[str] = field(default_factory=set)

    @property
    def ingest(self) -> Any:
        return self.node.settings.ingest

    async def stream_key(self) -> tuple[str, str]:
        """(channel id, stream key) of a new streamer's channel."""
        owner = await self.stack.register()
        channel = await self.stack.command(
            "POST", "/api/v1/channels", owner, {"slug": f"i-{uuid.uuid4().hex[:12]}", "display_name": "I"}
        )
        issued = await self.stack.command(
            "POST", f"/api/v1/channels/{channel['channel_id']}/stream-key", owner, expect=201
        )
        return channel["channel_id"], issued["stream_key"]

    def rtmp_url(self, key: str) -> str:
        return f"rtmp://127.0.0.1:{self.ingest.rtmp_port}/live/{key}"

    def url(self, path: str, tier: str = "cdn") -> str:
        return self.node.url(path, tier=tier)

    async def stream_for(self, channel_id: str, *, timeout_s: float = 30.0) -> str:
        """The stream id the node started for a channel's publisher (from IngestConnected)."""
        from events.ingest import IngestConnected

        async def probe() -> str | None:
            known = {s.stream_id for s in self.node.control.sessions.values()}
            connected = [e.stream_id for e in self.sink.events if isinstance(e, IngestConnected)]
            fresh = [s for s in connected if s in known and s not in self.claimed]
            return fresh[0] if fresh else None

        stream_id = str(await eventually(probe, timeout_s=timeout_s))
        self.claimed.add(stream_id)
        return stream_id


def push_command(
    url: str, seconds: float, *, fmt: str = "flv", size: str = "320x180", realtime: bool = True
) -> list[str]:
    """An FFmpeg publisher: test pattern + tone, H.264 with a GOP of one 1 s segment, in real time."""
    return [
        "ffmpeg",
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        *(["-re"] if realtime else []),
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={size}:rate=30",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440",
        "-t",
        str(seconds),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-g",
        "30",
        "-keyint_min",
        "30",
        "-sc_threshold",
        "0",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-b:a",
        "64k",
        "-f",
        fmt,
        url,
    ]


class Pusher:
    """A running FFmpeg publisher."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)

    async def wait(self, timeout_s: float = 60.0) -> int:
        return await asyncio.wait_for(asyncio.to_thread(self.process.wait), timeout_s)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


async def fetch(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        return await client.get(url)


async def playlist(url: str) -> m3u8.M3U8:
    response = await fetch(url)
    assert response.status_code == 200, f"GET {url} -> {response.status_code}"
    return m3u8.loads(response.text, uri=url)


def complete_segments(media: m3u8.M3U8) -> list[m3u8.Segment]:
    """The playlist's whole segments: with Low-Latency HLS the m3u8 package also lists the segment in
    progress, as parts without a URI."""
    return [s for s in media.segments if s.uri is not None]


async def wait_playable(
    env: IngestEnv, stream_id: str, *, segments: int = 2, timeout_s: float = 30.0
) -> m3u8.M3U8:
    """Until the master lists every rendition and each has `segments` segments (through the cache tier)."""
    master_url = env.url(f"/hls/{stream_id}/master.m3u8")

    async def probe() -> m3u8.M3U8 | None:
        response = await fetch(master_url)
        if response.status_code != 200:
            return None
        master = m3u8.loads(response.text, uri=master_url)
        for variant in master.playlists:
            media = m3u8.loads((await fetch(variant.absolute_uri)).text)
            if len(media.segments) < segments:
                return None
        return master

    return await eventually(probe, timeout_s=timeout_s, interval_s=0.2)


async def ffprobe_json(url: str) -> dict[str, Any]:
    """ffprobe's JSON of `url`, run in a thread: the ingest node under test (and, with Low-Latency HLS,
    the LL origin that answers its playlists) runs on this event loop."""
    import json

    out = await asyncio.to_thread(
        subprocess.run,
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


@contextlib.asynccontextmanager
async def open_ingest_env(
    settings: Settings, tmp: Path, *, lifecycle: bool = False, obey_commands: bool = False, **ingest: Any
) -> AsyncIterator[IngestEnv]:
    """The stack (with the lifecycle worker if ``lifecycle``) and a node (``ingest``: setting overrides)
    that, with ``obey_commands``, reads the command topics as ``esports ingest`` does (an ended stream
    or a rotated key drops its publisher)."""
    async with open_api_stack(settings, tmp, lifecycle=lifecycle) as stack:
        scoped = node_settings(stack.settings, tmp, **ingest)
        token = scoped.auth.internal_token
        assert token is not None
        sink = RecordingSink(stack.publisher)
        authorizer = ApiAuthorizer(stack.client, token.get_secret_value())
        commands = command_reader(scoped) if obey_commands else None
        async with open_node(scoped, sink, authorizer, commands=commands) as node:
            env = IngestEnv(stack, node, sink, tmp)
            yield env


@pytest.fixture(scope="module")
async def ingest_env(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[IngestEnv]:
    assert shutil.which("ffmpeg") and shutil.which("nginx"), "ffmpeg and nginx: infra/local/install-system.sh"
    async with open_ingest_env(settings, tmp_path_factory.mktemp("ingest")) as env:
        yield env
