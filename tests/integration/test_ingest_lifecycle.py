"""RTMP push → ingest events → the lifecycle agent's decisions → the read model, end to end.

The real API (authorize endpoint over ASGI), projector and lifecycle worker (Faust, a subprocess)
of ``open_api_stack``, and the real ingest node of ``test_ingest_support`` (hook service, nginx-rtmp,
origin and cache tier, one FFmpeg per stream), all on the real broker under a private topic prefix.
A 320x180 test pattern is pushed with a valid key: the agent decides StreamWentLive from the node's
IngestConnected and the API shows the stream live; the push stops: once the grace period is over the
node finalises the playlists and reports the disconnect, the agent decides StreamEnded and the API
shows the stream ended and no longer live.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from events.base import Event
from events.codec import EventCodec
from events.ingest import IngestConnected, IngestDisconnected
from events.streams import StreamEnded, StreamEndReason, StreamWentLive
from infra.kafka import DeadLetters, EventConsumer, TopicNames
from infra.settings import Settings
from schemas import SCHEMAS_DIR
from tests.integration.test_api_support import LifecycleWorker, eventually, stream_state
from tests.integration.test_ingest_support import (
    IngestEnv,
    Pusher,
    open_ingest_env,
    playlist,
    push_command,
    wait_playable,
)

pytestmark = pytest.mark.integration

END_GRACE_S = 0.5  # ESPORTS_INGEST__END_GRACE_S of this node: the stream ends soon after the push stops


@pytest.fixture
async def env(settings: Settings, tmp_path: Path) -> AsyncIterator[IngestEnv]:
    assert shutil.which("ffmpeg") and shutil.which("nginx"), "ffmpeg and nginx: infra/local/install-system.sh"
    async with open_ingest_env(settings, tmp_path, lifecycle=True, end_grace_s=END_GRACE_S) as env:
        yield env


class Decisions:
    """What the lifecycle agent published on ``streams.lifecycle``, read back from the broker."""

    def __init__(self, worker: LifecycleWorker) -> None:
        self.worker = worker
        self.events: list[Event] = []

    async def collect(self, consumer: EventConsumer) -> None:
        async for batch in consumer.batches(timeout_ms=100):
            self.events.extend(c.event for c in batch)

    async def first(self, kind: type, stream_id: str, *, timeout_s: float) -> Any:
        async def probe() -> Any:
            return next((e for e in self.of(stream_id) if isinstance(e, kind)), None)

        try:
            return await eventually(probe, timeout_s=timeout_s, interval_s=0.1)
        except AssertionError:
            seen = [type(e).__name__ for e in self.of(stream_id)]
            log = self.worker.log_text()[-3000:]
            raise AssertionError(f"no {kind.__name__} for {stream_id} (saw {seen}); worker:\n{log}") from None

    def of(self, stream_id: str) -> list[Event]:
        return [e for e in self.events if getattr(e, "stream_id", None) == stream_id]


@pytest.fixture
async def decisions(env: IngestEnv) -> AsyncIterator[Decisions]:
    kafka = env.stack.settings.kafka
    dead = DeadLetters(env.stack.publisher, TopicNames(kafka.topic_prefix).physical("deadletter"))
    consumer = EventConsumer(
        kafka,
        EventCodec.load(SCHEMAS_DIR),
        topics=["streams.lifecycle"],
        group_id=None,
        dead_letters=dead,
        from_beginning=True,
    )
    collected = Decisions(env.stack.worker)
    async with consumer:
        task = asyncio.create_task(collected.collect(consumer))
        try:
            yield collected
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def _live_ids(env: IngestEnv) -> set[str]:
    listing = await env.stack.query("/api/v1/streams/live?limit=100")
    return {s["stream_id"] for s in listing["items"]}


async def test_a_push_goes_live_and_ends_through_the_lifecycle_agent(
    env: IngestEnv, decisions: Decisions
) -> None:
    channel_id, key = await env.stream_key()
    started = time.monotonic()
    pusher = Pusher(push_command(env.rtmp_url(key), 30), env.tmp / "push-lifecycle.log")
    try:
        stream_id = await env.stream_for(channel_id)
        connected = env.sink.of(IngestConnected, stream_id)
        assert len(connected) == 1

        # The live transition: decided from the node's IngestConnected, on Kafka, and in the API.
        went = await decisions.first(StreamWentLive, stream_id, timeout_s=10)
        assert went.causation_id == str(connected[0].event_id)
        assert (went.channel_id, went.ingest_session_id) == (channel_id, connected[0].session_id)
        assert went.started_at == connected[0].occurred_at
        live = await stream_state(env.stack, stream_id, "live", timeout_s=10)
        assert live["channel_id"] == channel_id and live["started_at"] is not None

        async def listed() -> bool:  # the listing is cached per process for a second
            return stream_id in await _live_ids(env)

        await eventually(listed, timeout_s=5)
        await wait_playable(env, stream_id, segments=2)
        assert time.monotonic() - started < 10.0, "playable and live within 10 s of the push"
    finally:
        pusher.stop()  # SIGTERM: FFmpeg closes the RTMP session, nginx calls on_publish_done
    stopped = time.monotonic()

    # The end: after the grace period the node finalises the VOD and reports the disconnect.
    ended = await decisions.first(StreamEnded, stream_id, timeout_s=20)
    [disconnected] = env.sink.of(IngestDisconnected, stream_id)
    assert disconnected.session_id == connected[0].session_id
    assert ended.reason is StreamEndReason.PUBLISHER_STOPPED
    assert ended.causation_id == str(disconnected.event_id)
    assert ended.ended_at == disconnected.occurred_at and ended.duration_ms > 0
    assert [type(e) for e in decisions.of(stream_id)] == [StreamWentLive, StreamEnded]
    print(f"\nStreamEnded {time.monotonic() - stopped:.1f}s after the push stopped")

    final = await stream_state(env.stack, stream_id, "ended", timeout_s=10)
    assert final["end_reason"] == "publisher_stopped"

    async def unlisted() -> bool:
        return stream_id not in await _live_ids(env)

    await eventually(unlisted, timeout_s=5)

    # Written before IngestDisconnected was published, so already final at the origin: a VOD from 0.
    master = await playlist(env.url(f"/hls/{stream_id}/master.m3u8", tier="origin"))
    assert len(master.playlists) == 3
    for variant in master.playlists:
        media = await playlist(variant.absolute_uri)
        assert media.is_endlist and media.playlist_type == "vod", variant.uri
        assert media.segments[0].uri.endswith("seg_00000.m4s") and len(media.segments) >= 2
