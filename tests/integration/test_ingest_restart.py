"""A transcoder that dies under a stream older than one still interval continues the same stream.

The FFmpeg of a live RTMP push is killed 15 s in, after it wrote the stream's first still
(``thumb.jpg``): the next run must list new segments after an ``#EXT-X-DISCONTINUITY`` within a few
seconds and replace the still in place. Before the fix every restart failed the same way (FFmpeg
refused to overwrite the still: ``File '…/thumb.jpg' already exists. Exiting.``).
"""

from __future__ import annotations

import asyncio
import os
import signal

import m3u8
import pytest

from tests.integration.test_api_support import eventually
from tests.integration.test_ingest_support import (
    IngestEnv,
    Pusher,
    complete_segments,
    fetch,
    playlist,
    push_command,
    wait_playable,
)

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.test_ingest_support"]

KILL_AFTER_S = 15.0
# FFmpeg's exit is seen at once, the publisher gets 2 s to say whether it left, then a 0.5 s backoff,
# the RTMP connect and one 1 s segment.
RESUME_WITHIN_S = 8.0
# A run's first still comes 15-17 s into it here (whatever the interval), so allow some margin.
STILL_WITHIN_S = 25.0


def _after_cut(media: m3u8.M3U8) -> list[m3u8.Segment]:
    """The segments from the first discontinuity on (none when the playlist has no cut)."""
    cut = next((i for i, s in enumerate(media.segments) if s.discontinuity), None)
    return [] if cut is None else complete_segments(media)[cut:]


async def test_a_transcoder_killed_after_its_first_still_resumes_the_stream(ingest_env: IngestEnv) -> None:
    env = ingest_env
    loop = asyncio.get_running_loop()
    channel_id, key = await env.stream_key()
    pusher = Pusher(push_command(env.rtmp_url(key), 50), env.tmp / "push-restart.log")
    try:
        stream_id = await env.stream_for(channel_id)
        started = loop.time()
        await wait_playable(env, stream_id, segments=1)
        still = env.ingest.hls_dir / stream_id / "thumb.jpg"

        async def first_still() -> bool:
            return still.exists()

        await eventually(first_still, timeout_s=STILL_WITHIN_S)
        await asyncio.sleep(max(0.0, started + KILL_AFTER_S - loop.time()))
        session = env.node.control.sessions[stream_id]
        assert session.current is not None and session.current.pid is not None
        killed, written = session.current.pid, still.stat().st_mtime_ns
        os.kill(killed, signal.SIGKILL)
        killed_at = loop.time()

        async def resumed() -> list[m3u8.Segment]:
            after = _after_cut(await playlist(env.url(f"/hls/{stream_id}/144p30.m3u8", tier="origin")))
            return after if len(after) >= 2 else []

        after = await eventually(resumed, timeout_s=RESUME_WITHIN_S, interval_s=0.2)
        assert session.current is not None and session.current.pid != killed
        assert after[0].init_section is not None and after[0].init_section.uri.endswith("/144p30/init.mp4")
        assert (await fetch(env.url(f"/hls/{stream_id}/{after[-1].uri}"))).status_code == 200

        async def fresh_still() -> bool:
            return still.stat().st_mtime_ns > written

        await eventually(fresh_still, timeout_s=STILL_WITHIN_S, interval_s=0.2)
        assert loop.time() - killed_at < STILL_WITHIN_S
        served = await fetch(env.url(f"/hls/{stream_id}/thumb.jpg", tier="origin"))
        assert served.status_code == 200
        assert served.content[:2] == b"\xff\xd8" and served.content[-2:] == b"\xff\xd9"  # a whole JPEG
    finally:
        pusher.stop()
    await asyncio.wait_for(env.node.control.wait_ended(stream_id), 20)
    vod = await playlist(env.url(f"/hls/{stream_id}/source.m3u8", tier="origin"))
    assert vod.is_endlist and sum(s.discontinuity for s in vod.segments) == 1
