"""Replays go away: deleted by the owner through the API, or aged out by a node's retention sweep.

The real API, projector and lifecycle worker of ``open_api_stack`` and a real ingest node (nginx,
FFmpeg) reading the command topics, on the real broker under a private topic prefix. Real FFmpeg
publishers push a short test pattern; once the stream ended, ``DELETE /api/v1/streams/{id}/vod``
(StreamVodDeleted on ``streams``) makes the node remove the folder, the read model mark the replay
deleted and the origin answer 404. The node's sweep (retention 7 days) removes an ended folder
backdated by ten days and leaves a live stream's folder alone, and the read model follows.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from infra.settings import Settings
from tests.integration.test_api_support import User, eventually, stream_state
from tests.integration.test_ingest_support import (
    IngestEnv,
    Pusher,
    fetch,
    open_ingest_env,
    push_command,
    wait_playable,
)

pytestmark = pytest.mark.integration

RETENTION_DAYS = 7


@pytest.fixture(scope="module")
async def env(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[IngestEnv]:
    assert shutil.which("ffmpeg") and shutil.which("nginx"), "ffmpeg and nginx: infra/local/install-system.sh"
    tmp = tmp_path_factory.mktemp("vod")
    async with open_ingest_env(
        settings,
        tmp,
        lifecycle=True,
        obey_commands=True,
        vod_retention_days=RETENTION_DAYS,
        vod_sweep_interval_s=3600,  # once at start (nothing to do); the tests call sweep() themselves
    ) as env:
        assert env.node.sweeper is not None
        yield env


async def _streamer(env: IngestEnv) -> tuple[User, str, str]:
    """(owner, channel id, stream key) of a new streamer."""
    owner = await env.stack.register()
    channel = await env.stack.command(
        "POST", "/api/v1/channels", owner, {"slug": f"v-{uuid.uuid4().hex[:12]}", "display_name": "V"}
    )
    issued = await env.stack.command(
        "POST", f"/api/v1/channels/{channel['channel_id']}/stream-key", owner, expect=201
    )
    return owner, channel["channel_id"], issued["stream_key"]


async def _ended_stream(env: IngestEnv, name: str) -> tuple[User, str]:
    """(owner, stream id) of a stream pushed for a few seconds and ended (its replay final on disk)."""
    owner, channel_id, key = await _streamer(env)
    pusher = Pusher(push_command(env.rtmp_url(key), 6), env.tmp / f"push-{name}.log")
    try:
        stream_id = await env.stream_for(channel_id, timeout_s=20)
        assert await pusher.wait(40) == 0
    finally:
        pusher.stop()
    await stream_state(env.stack, stream_id, "ended", timeout_s=30)
    await eventually(lambda: _final(env, stream_id), timeout_s=20)
    return owner, stream_id


async def _final(env: IngestEnv, stream_id: str) -> bool:
    """Every media playlist of the stream's folder ends with ENDLIST (the session is over)."""
    root = env.ingest.hls_dir / stream_id
    media = [p for p in root.glob("*.m3u8") if p.name != "master.m3u8"]
    return bool(media) and all("#EXT-X-ENDLIST" in p.read_text() for p in media)


async def _stream(env: IngestEnv, stream_id: str) -> dict[str, Any]:
    response = await env.stack.client.get(f"/api/v1/streams/{stream_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _replay_deleted(env: IngestEnv, stream_id: str, reason: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        stream = await _stream(env, stream_id)
        return stream if stream["vod_deleted_at"] else None

    stream = await eventually(probe, timeout_s=20)
    assert stream["vod_deleted_reason"] == reason
    return stream


def _backdate(root: Path, days: float) -> None:
    then = time.time() - days * 86400
    for playlist in root.glob("*.m3u8"):
        os.utime(playlist, (then, then))


async def test_the_owner_deletes_the_replay(env: IngestEnv) -> None:
    owner, stream_id = await _ended_stream(env, "owner")
    root = env.ingest.hls_dir / stream_id
    origin_master = env.url(f"/hls/{stream_id}/master.m3u8", tier="origin")
    assert root.is_dir() and (await fetch(origin_master)).status_code == 200

    stranger = await env.stack.register()
    refused = await env.stack.client.delete(f"/api/v1/streams/{stream_id}/vod", headers=stranger.auth)
    assert refused.status_code == 403 and refused.headers["content-type"].startswith(
        "application/problem+json"
    )
    unknown = await env.stack.client.delete(f"/api/v1/streams/{uuid.uuid4()}/vod", headers=owner.auth)
    assert unknown.status_code == 404 and unknown.headers["content-type"].startswith(
        "application/problem+json"
    )
    assert root.is_dir()

    await env.stack.command("DELETE", f"/api/v1/streams/{stream_id}/vod", owner, expect=202)

    async def gone() -> bool:
        return not root.exists()

    await eventually(gone, timeout_s=15)
    await _replay_deleted(env, stream_id, "deleted_by_owner")
    assert (await fetch(origin_master)).status_code == 404
    page = await env.stack.client.get(f"/live/{stream_id}")
    assert page.status_code == 200 and "The replay of this stream was deleted" in page.text
    again = await env.stack.client.delete(f"/api/v1/streams/{stream_id}/vod", headers=owner.auth)
    assert again.status_code == 409, again.text


async def test_a_live_stream_keeps_its_files(env: IngestEnv) -> None:
    owner, channel_id, key = await _streamer(env)
    pusher = Pusher(push_command(env.rtmp_url(key), 60), env.tmp / "push-live.log")
    try:
        stream_id = await env.stream_for(channel_id, timeout_s=15)
        await stream_state(env.stack, stream_id, "live", timeout_s=30)
        await wait_playable(env, stream_id, segments=1, timeout_s=20)
        refused = await env.stack.client.delete(f"/api/v1/streams/{stream_id}/vod", headers=owner.auth)
        assert refused.status_code == 409
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert (env.ingest.hls_dir / stream_id).is_dir() and pusher.process.poll() is None
    finally:
        pusher.stop()


async def test_the_retention_sweep_removes_an_old_replay_and_not_a_live_one(env: IngestEnv) -> None:
    _, old_id = await _ended_stream(env, "old")
    old_root = env.ingest.hls_dir / old_id
    _backdate(old_root, RETENTION_DAYS + 3)
    _, channel_id, key = await _streamer(env)
    pusher = Pusher(push_command(env.rtmp_url(key), 60), env.tmp / "push-live-sweep.log")
    try:
        live_id = await env.stream_for(channel_id, timeout_s=15)
        await wait_playable(env, live_id, segments=1, timeout_s=20)
        live_root = env.ingest.hls_dir / live_id
        _backdate(live_root, RETENTION_DAYS + 3)  # as old as the other: only being live protects it

        assert env.node.sweeper is not None
        removed = await env.node.sweeper.sweep()

        assert old_id in removed and live_id not in removed
        assert not old_root.exists() and live_root.is_dir()
        assert pusher.process.poll() is None
    finally:
        pusher.stop()
    stream = await _replay_deleted(env, old_id, "retention")
    assert stream["state"] == "ended"
