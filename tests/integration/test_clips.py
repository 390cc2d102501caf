"""Clips cut by the ingest node from a replay's segments, end to end.

The real API, projector and lifecycle worker of ``open_api_stack`` and a real ingest node (nginx,
FFmpeg) reading the command topics, on the real broker under a private topic prefix. FFmpeg pushes
a test pattern (a keyframe every second, 1 s segments) for a few seconds; once the stream ended a
viewer asks for clips of the replay: one starting on a segment boundary (the segments are copied),
one starting between keyframes (its head re-encoded). Each becomes ready with an MP4 served by the
cache tier, whose duration FFprobe reads within 0.5 s of the request; the channel lists them and
the clip page carries ``og:video``. Refusals: outside 5-60 s, past the end, unknown stream, no token.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from infra.settings import Settings
from tests.integration.test_api_support import User, eventually, stream_state
from tests.integration.test_ingest_support import (
    IngestEnv,
    Pusher,
    fetch,
    ffprobe_json,
    open_ingest_env,
    push_command,
)

pytestmark = pytest.mark.integration

PUSH_S = 14


@pytest.fixture(scope="module")
async def env(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[IngestEnv]:
    assert shutil.which("ffmpeg") and shutil.which("nginx"), "ffmpeg and nginx: infra/local/install-system.sh"
    async with open_ingest_env(
        settings, tmp_path_factory.mktemp("clips"), lifecycle=True, obey_commands=True
    ) as env:
        yield env


@pytest.fixture(scope="module")
async def replay(env: IngestEnv) -> dict[str, Any]:
    """An ended stream (its replay final on disk) of a new channel: stream_id, channel_id, slug."""
    owner = await env.stack.register()
    slug = f"c-{uuid.uuid4().hex[:12]}"
    channel = await env.stack.command(
        "POST", "/api/v1/channels", owner, {"slug": slug, "display_name": "Clips"}
    )
    issued = await env.stack.command(
        "POST", f"/api/v1/channels/{channel['channel_id']}/stream-key", owner, expect=201
    )
    pusher = Pusher(push_command(env.rtmp_url(issued["stream_key"]), PUSH_S), env.tmp / "push.log")
    try:
        stream_id = await env.stream_for(channel["channel_id"], timeout_s=20)
        assert await pusher.wait(60) == 0
    finally:
        pusher.stop()
    await stream_state(env.stack, stream_id, "ended", timeout_s=30)
    root = env.ingest.hls_dir / stream_id

    async def final() -> bool:
        media = [p for p in root.glob("*.m3u8") if p.name != "master.m3u8"]
        return bool(media) and all("#EXT-X-ENDLIST" in p.read_text() for p in media)

    await eventually(final, timeout_s=20)
    return {"stream_id": stream_id, "channel_id": channel["channel_id"], "slug": slug}


async def _clip(
    env: IngestEnv, viewer: User, stream_id: str, start_ms: int, duration_ms: int
) -> dict[str, Any]:
    """Request a clip and wait until the read model has it ready (asserting it did not fail)."""
    body = {
        "stream_id": stream_id,
        "start_ms": start_ms,
        "duration_ms": duration_ms,
        "title": f"at {start_ms}",
    }
    accepted = await env.stack.command("POST", "/api/v1/clips", viewer, body, expect=202)

    async def done() -> dict[str, Any] | None:
        clip = await _listed(env, stream_id, accepted["clip_id"])
        return clip if clip and clip["status"] != "pending" else None

    clip = await eventually(done, timeout_s=60)
    assert clip["status"] == "ready", clip
    return clip


async def _listed(env: IngestEnv, stream_id: str, clip_id: str) -> dict[str, Any] | None:
    """The clip as the stream's clip listing shows it (None: not there yet)."""
    response = await env.stack.client.get(f"/api/v1/streams/{stream_id}/clips")
    assert response.status_code == 200, response.text
    return next((dict(c) for c in response.json()["items"] if c["clip_id"] == clip_id), None)


async def _check_playable(clip: dict[str, Any], requested_ms: int) -> None:
    assert abs(clip["duration_ms"] - requested_ms) <= 500, clip
    response = await fetch(clip["url"])
    assert response.status_code == 200 and response.headers["content-type"] == "video/mp4"
    probed = await ffprobe_json(clip["url"])
    assert abs(float(probed["format"]["duration"]) * 1000 - requested_ms) <= 500
    assert {s["codec_name"] for s in probed["streams"]} == {"h264", "aac"}


async def test_a_clip_on_a_keyframe_is_copied_and_one_between_is_reencoded(
    env: IngestEnv, replay: dict[str, Any]
) -> None:
    viewer = await env.stack.register()
    copied = await _clip(env, viewer, replay["stream_id"], 2000, 6000)
    assert copied["reencoded"] is False and copied["channel_id"] == replay["channel_id"]
    await _check_playable(copied, 6000)

    reencoded = await _clip(env, viewer, replay["stream_id"], 2500, 7000)
    assert reencoded["reencoded"] is True
    await _check_playable(reencoded, 7000)

    listed = await env.stack.client.get(f"/api/v1/channels/{replay['slug']}/clips")
    assert listed.status_code == 200
    assert {c["clip_id"] for c in listed.json()["items"]} >= {copied["clip_id"], reencoded["clip_id"]}

    page = await env.stack.client.get(f"/clips/{copied['clip_id']}")
    assert page.status_code == 200
    assert f'<meta property="og:video" content="{copied["url"]}">' in page.text
    assert '<meta property="og:video:type" content="video/mp4">' in page.text
    assert f'src="{copied["url"]}"' in page.text
    channel_page = await env.stack.client.get(f"/channels/{replay['slug']}")
    assert f"/clips/{copied['clip_id']}" in channel_page.text


async def test_a_clip_past_the_segments_fails_on_the_node(env: IngestEnv, replay: dict[str, Any]) -> None:
    """Within what the read model allows (wall-clock slack) but past the media: the node refuses."""
    viewer = await env.stack.register()
    stream = (await env.stack.client.get(f"/api/v1/streams/{replay['stream_id']}")).json()
    assert stream["state"] == "ended"
    body = {"stream_id": replay["stream_id"], "start_ms": PUSH_S * 1000 - 1000, "duration_ms": 5000}
    accepted = await env.stack.command("POST", "/api/v1/clips", viewer, body, expect=202)

    async def failed() -> dict[str, Any] | None:
        clip = await _listed(env, replay["stream_id"], accepted["clip_id"])
        return clip if clip and clip["status"] == "failed" else None

    clip = await eventually(failed, timeout_s=60)
    assert "outside" in clip["failure"]


async def test_refusals(env: IngestEnv, replay: dict[str, Any]) -> None:
    viewer = await env.stack.register()
    url, stream_id = "/api/v1/clips", replay["stream_id"]
    for too in (4999, 60001):
        body = {"stream_id": stream_id, "start_ms": 0, "duration_ms": too}
        response = await env.stack.client.post(url, json=body, headers=viewer.auth)
        assert response.status_code == 422, response.text
    body = {"stream_id": stream_id, "start_ms": 3_600_000, "duration_ms": 5000}
    late = await env.stack.client.post(url, json=body, headers=viewer.auth)
    assert late.status_code == 422 and late.headers["content-type"].startswith("application/problem+json")
    body = {"stream_id": str(uuid.uuid4()), "start_ms": 0, "duration_ms": 5000}
    unknown = await env.stack.client.post(url, json=body, headers=viewer.auth)
    assert unknown.status_code == 404
    anonymous = await env.stack.client.post(
        url, json={"stream_id": stream_id, "start_ms": 0, "duration_ms": 5000}
    )
    assert anonymous.status_code == 401
    assert (await env.stack.client.get(f"/api/v1/streams/{uuid.uuid4()}/clips")).status_code == 404
    assert (await env.stack.client.get("/api/v1/channels/no-such-channel-x/clips")).status_code == 404
    assert (await env.stack.client.get(f"/clips/{uuid.uuid4()}")).status_code == 404
