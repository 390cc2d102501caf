"""The encoder obeys the log: ending a stream or rotating its key disconnects the publisher.

The real API (authorize endpoint and commands over ASGI), projector and lifecycle worker of
``open_api_stack``, and a real ingest node of ``test_ingest_support`` that also reads the command
topics (``commands=command_reader(...)``), on the real broker under a private topic prefix. Real
FFmpeg publishers push a 320x180 test pattern for a minute: a publisher that stops before that was
disconnected by the node. Ending the stream through the API (StreamEndRequested → the lifecycle
agent → StreamEnded) drops the RTMP publisher and ends the session with the reason "stream ended";
issuing a new stream key drops the RTMP and the SRT publishers of the channel, the old key is then
refused and the new one is accepted.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from events.ingest import IngestConnected, IngestDisconnected
from infra.settings import Settings
from ingest_workers.control import Grant
from tests.integration.test_api_support import User, eventually, stream_state
from tests.integration.test_ingest_support import (
    IngestEnv,
    Pusher,
    open_ingest_env,
    push_command,
    wait_playable,
)

pytestmark = pytest.mark.integration

PUSH_S = 60  # every publisher would push this long: one that exits sooner was disconnected
DROPPED_WITHIN_S = 15  # how long a test waits for the dropped FFmpeg to exit (well under PUSH_S)


@pytest.fixture(scope="module")
async def env(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[IngestEnv]:
    assert shutil.which("ffmpeg") and shutil.which("nginx"), "ffmpeg and nginx: infra/local/install-system.sh"
    tmp = tmp_path_factory.mktemp("commands")
    async with open_ingest_env(settings, tmp, lifecycle=True, obey_commands=True) as env:
        yield env


async def _channel(env: IngestEnv) -> tuple[User, str, dict[str, Any]]:
    """(owner, channel id, the issued key: ``stream_key`` and ``key_id``) of a new streamer."""
    owner = await env.stack.register()
    channel = await env.stack.command(
        "POST", "/api/v1/channels", owner, {"slug": f"c-{uuid.uuid4().hex[:12]}", "display_name": "C"}
    )
    issued = await _rotate(env, owner, channel["channel_id"])
    return owner, channel["channel_id"], issued


async def _rotate(env: IngestEnv, owner: User, channel_id: str) -> dict[str, Any]:
    return await env.stack.command("POST", f"/api/v1/channels/{channel_id}/stream-key", owner, expect=201)


async def _grant(env: IngestEnv, channel_id: str, key_id: str) -> Grant:
    """The grant of the node's live session of ``channel_id`` let in with key ``key_id``."""

    async def probe() -> Grant | None:
        grants = [
            g for g in env.node.control.grants.values() if (g.channel_id, g.key_id) == (channel_id, key_id)
        ]
        live = [g for g in grants if g.stream_id in env.node.control.sessions]
        return live[0] if live else None

    return await eventually(probe, timeout_s=15, interval_s=0.1)


def _dropped(env: IngestEnv, reason: str) -> float:
    value = env.node.control.metrics.get_sample_value("ingest_publishers_dropped_total", {"reason": reason})
    assert value is not None
    return value


def _publishes(env: IngestEnv, outcome: str) -> float:
    value = env.node.control.metrics.get_sample_value("ingest_publish_total", {"outcome": outcome})
    return value or 0.0


async def test_ending_a_stream_drops_its_rtmp_publisher(env: IngestEnv) -> None:
    owner, channel_id, issued = await _channel(env)
    pusher = Pusher(push_command(env.rtmp_url(issued["stream_key"]), PUSH_S), env.tmp / "push-end.log")
    try:
        grant = await _grant(env, channel_id, issued["key_id"])
        stream_id = grant.stream_id
        await stream_state(env.stack, stream_id, "live", timeout_s=20)
        await wait_playable(env, stream_id, segments=1, timeout_s=15)
        before = _dropped(env, "stream_ended")

        await env.stack.command("POST", f"/api/v1/streams/{stream_id}/end", owner, expect=202)

        code = await pusher.wait(DROPPED_WITHIN_S)  # the connection was dropped under it
        assert code != 0, "FFmpeg finished its push: the node never dropped it"
    finally:
        pusher.stop()
    assert _dropped(env, "stream_ended") == before + 1

    async def disconnected() -> IngestDisconnected | None:
        return next(iter(env.sink.of(IngestDisconnected, stream_id)), None)

    ended = await eventually(disconnected, timeout_s=15)
    assert ended.reason == "stream ended"  # at once, not "publisher left" after the grace period
    assert stream_id not in env.node.control.sessions
    await stream_state(env.stack, stream_id, "ended", timeout_s=10)


async def test_rotating_the_key_drops_the_publisher_and_refuses_the_old_key(env: IngestEnv) -> None:
    owner, channel_id, old = await _channel(env)
    pusher = Pusher(push_command(env.rtmp_url(old["stream_key"]), PUSH_S), env.tmp / "push-rotate.log")
    try:
        grant = await _grant(env, channel_id, old["key_id"])
        await wait_playable(env, grant.stream_id, segments=1, timeout_s=15)
        before = _dropped(env, "key_rotated")

        new = await _rotate(env, owner, channel_id)

        assert await pusher.wait(DROPPED_WITHIN_S) != 0, "FFmpeg finished its push: never dropped"
    finally:
        pusher.stop()
    assert _dropped(env, "key_rotated") == before + 1

    # The old key is refused on reconnect: FFmpeg fails at once and the node lets nothing in with it.
    accepted, refused = _publishes(env, "accepted"), _publishes(env, "refused")
    again = Pusher(push_command(env.rtmp_url(old["stream_key"]), 5), env.tmp / "push-old-key.log")
    try:
        assert await again.wait(20) != 0
    finally:
        again.stop()
    assert (_publishes(env, "accepted"), _publishes(env, "refused")) == (accepted, refused + 1)

    # The new key is accepted and the channel is live again (the same stream if it came back within
    # the grace period, else a new one).
    fresh = Pusher(push_command(env.rtmp_url(new["stream_key"]), PUSH_S), env.tmp / "push-new-key.log")
    try:
        granted = await _grant(env, channel_id, new["key_id"])
        await wait_playable(env, granted.stream_id, segments=1, timeout_s=15)
        await stream_state(env.stack, granted.stream_id, "live", timeout_s=20)
        assert fresh.process.poll() is None
    finally:
        fresh.stop()


async def test_rotating_the_key_drops_an_srt_publisher(env: IngestEnv) -> None:
    owner, channel_id, old = await _channel(env)
    url = f"srt://127.0.0.1:{env.ingest.srt_port}?streamid={old['stream_key']}"
    pusher = Pusher(push_command(url, PUSH_S, fmt="mpegts"), env.tmp / "push-srt-rotate.log")
    try:
        grant = await _grant(env, channel_id, old["key_id"])

        async def connected() -> IngestConnected | None:  # published by the session a moment later
            return next(iter(env.sink.of(IngestConnected, grant.stream_id)), None)

        assert (await eventually(connected, timeout_s=10)).protocol.value == "srt"
        before = _dropped(env, "key_rotated")

        await _rotate(env, owner, channel_id)

        assert await pusher.wait(DROPPED_WITHIN_S) != 0, "FFmpeg finished its push: never dropped"
    finally:
        pusher.stop()
    assert _dropped(env, "key_rotated") == before + 1
    refused = Pusher(push_command(url, 5, fmt="mpegts"), env.tmp / "push-srt-old-key.log")
    try:
        assert await refused.wait(20) != 0
    finally:
        refused.stop()
