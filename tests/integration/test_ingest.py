"""RTMP push → key check → one FFmpeg → HLS ladder → origin and cache tier, with the events on Kafka.

Real FFmpeg publishers (320x180 test pattern, 1 s GOP), the real nginx-rtmp, the API's authorize
endpoint and the real broker; small ladder and 1 s segments so the module stays cheap on 2 cores.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import m3u8
import pytest

from events.codec import EventCodec
from events.ingest import (
    IngestConnected,
    IngestDisconnected,
    IngestHealthReported,
    RenditionsReady,
    SegmentPublished,
)
from infra.kafka import DeadLetters, EventConsumer, TopicNames
from schemas import SCHEMAS_DIR
from tests.integration.test_api_support import eventually
from tests.integration.test_ingest_support import (
    IngestEnv,
    Pusher,
    complete_segments,
    fetch,
    ffprobe_json,
    playlist,
    push_command,
    wait_playable,
)

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.test_ingest_support"]


async def _ingest_events(env: IngestEnv, stream_id: str, until: type, timeout_s: float = 20.0) -> list[Any]:
    """The stream's events as read back from the ingest topic, up to the first `until`."""
    stack = env.stack
    dead = DeadLetters(stack.publisher, TopicNames(stack.settings.kafka.topic_prefix).physical("deadletter"))
    got: list[Any] = []
    async with EventConsumer(
        stack.settings.kafka,
        EventCodec.load(SCHEMAS_DIR),
        topics=["ingest"],
        group_id=None,
        dead_letters=dead,
        from_beginning=True,
    ) as consumer:

        async def read() -> None:
            async for batch in consumer.batches():
                got.extend(c.event for c in batch if getattr(c.event, "stream_id", "") == stream_id)
                if any(isinstance(e, until) for e in got):
                    return

        await asyncio.wait_for(read(), timeout_s)
    return got


def _boundaries(media: m3u8.M3U8) -> list[tuple[str, float]]:
    """(PROGRAM-DATE-TIME, duration) of every segment but the last (cut short at the end of the
    input by a frame more or less per rendition): equal lists = aligned renditions."""
    return [(s.program_date_time.isoformat(), round(s.duration, 3)) for s in media.segments[:-1]]


async def test_push_becomes_playable_hls_then_a_vod(ingest_env: IngestEnv) -> None:
    env = ingest_env
    channel_id, key = await env.stream_key()
    started = asyncio.get_running_loop().time()
    pusher = Pusher(push_command(env.rtmp_url(key), 7), env.tmp / "push-main.log")
    try:
        stream_id = await env.stream_for(channel_id)
        master = await wait_playable(env, stream_id, segments=1)
        assert asyncio.get_running_loop().time() - started < 10.0
        assert [p.stream_info.resolution for p in master.playlists] == [(320, 180), (256, 144), (160, 90)]
        for variant in master.playlists:
            info = variant.stream_info
            assert info.bandwidth > 0 and info.frame_rate == 30.0 and info.codecs.endswith(",mp4a.40.2")
        # read from each init segment's avcC (ultrafast encodes are constrained baseline: avc1.42c0..)
        assert all(p.stream_info.codecs.startswith("avc1.42c0") for p in master.playlists)

        # The key never leaves the hook: not in the transcoder's argv, files, URLs or events.
        session = env.node.control.sessions[stream_id]
        assert session.current is not None and key not in " ".join(session.current.argv)
        assert stream_id in " ".join(session.current.argv)

        # 200 concurrent requests for a fresh segment reach the origin once (request collapsing).
        await _collapsed(env, stream_id)

        # Headers of the origin: MIME types, CORS, cache lifetimes.
        origin_master = await fetch(env.url(f"/hls/{stream_id}/master.m3u8", tier="origin"))
        assert origin_master.headers["content-type"] == "application/vnd.apple.mpegurl"
        assert origin_master.headers["access-control-allow-origin"] == "*"
        assert origin_master.headers["cache-control"] == "public, max-age=1"
        media = await playlist(env.url(f"/hls/{stream_id}/source.m3u8", tier="origin"))
        segment = await fetch(env.url(f"/hls/{stream_id}/{media.segments[0].uri}", tier="origin"))
        assert segment.headers["content-type"] == "video/iso.segment"
        assert segment.headers["cache-control"] == "public, max-age=31536000, immutable"
        init = await fetch(env.url(f"/hls/{stream_id}/{media.segment_map[0].uri}", tier="origin"))
        assert init.headers["content-type"] == "video/mp4"
        private = await fetch(
            env.url(f"/hls/{stream_id}/{media.segments[0].uri.rsplit('/', 1)[0]}/index.m3u8")
        )
        assert private.status_code == 404  # FFmpeg's own playlists (and its *.tmp files) are not served

        assert await pusher.wait() == 0
    finally:
        pusher.stop()

    await asyncio.wait_for(env.node.control.wait_ended(stream_id), 20)
    events = await _ingest_events(env, stream_id, IngestDisconnected)
    kinds = [type(e) for e in events]
    assert kinds[0] is IngestConnected and kinds[-1] is IngestDisconnected
    assert RenditionsReady in kinds and IngestHealthReported in kinds
    published = [e for e in events if isinstance(e, SegmentPublished)]
    assert {e.rendition for e in published} == {"source", "144p30", "90p30"}
    assert all(key not in repr(e) for e in events)

    # The VOD: every rendition ends with ENDLIST, boundaries align, ffprobe reads it from the start.
    boundaries = []
    for name in ("source", "144p30", "90p30"):
        vod = await playlist(env.url(f"/hls/{stream_id}/{name}.m3u8", tier="origin"))
        assert vod.is_endlist and vod.playlist_type == "vod" and vod.segments[0].uri.endswith("seg_00000.m4s")
        boundaries.append(_boundaries(vod))
        probed = await ffprobe_json(env.url(f"/hls/{stream_id}/{name}.m3u8"))
        assert {s["codec_type"] for s in probed["streams"]} == {"video", "audio"}
        assert float(probed["format"]["duration"]) >= len(vod.segments) - 1
    assert boundaries[0] == boundaries[1] == boundaries[2] and len(boundaries[0]) >= 3
    decoded = await asyncio.to_thread(
        subprocess.run,
        [
            "ffmpeg",
            "-v",
            "error",
            "-i",
            env.url(f"/hls/{stream_id}/master.m3u8"),
            "-map",
            "0:v:0",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert decoded.returncode == 0 and decoded.stderr == "", decoded.stderr
    assert key not in (env.node.origin.logs / "nginx-ingest-error.log").read_text()


async def _collapsed(env: IngestEnv, stream_id: str) -> None:
    media = await playlist(env.url(f"/hls/{stream_id}/144p30.m3u8", tier="origin"))
    path = f"/hls/{stream_id}/{complete_segments(media)[-1].uri}"
    limits = httpx.Limits(max_connections=250, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=20, trust_env=False, limits=limits) as client:
        answers = await asyncio.gather(*(client.get(env.url(path)) for _ in range(200)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.content for a in answers}) == 1
    log = env.node.origin.logs / "nginx-origin-access.log"

    def origin_hits() -> int:
        return sum(f"GET {path} " in line for line in log.read_text().splitlines())

    await asyncio.sleep(0.3)  # access log lines are written when each request finishes
    assert origin_hits() == 1


async def test_wrong_key_is_refused_without_files(ingest_env: IngestEnv) -> None:
    env = ingest_env
    before = set(env.ingest.hls_dir.iterdir()) if env.ingest.hls_dir.exists() else set()
    pusher = Pusher(push_command(env.rtmp_url("live_not-a-key"), 3), env.tmp / "push-wrong.log")
    try:
        assert await pusher.wait(20) != 0
    finally:
        pusher.stop()
    after = set(env.ingest.hls_dir.iterdir()) if env.ingest.hls_dir.exists() else set()
    assert after == before
    assert not any(isinstance(e, IngestConnected) and e.stream_id not in env.claimed for e in env.sink.events)


async def test_two_streams_at_once(ingest_env: IngestEnv) -> None:
    env = ingest_env
    first, second = await env.stream_key(), await env.stream_key()
    pushers = [
        Pusher(push_command(env.rtmp_url(k), 5), env.tmp / f"push-two-{i}.log")
        for i, (_, k) in enumerate((first, second))
    ]
    try:
        streams = [await env.stream_for(first[0]), await env.stream_for(second[0])]
        assert streams[0] != streams[1]
        masters = await asyncio.gather(*(wait_playable(env, s, segments=1, timeout_s=12) for s in streams))
        assert all(len(m.playlists) == 3 for m in masters)
        for pusher in pushers:
            assert await pusher.wait() == 0
    finally:
        for pusher in pushers:
            pusher.stop()
    await asyncio.gather(*(asyncio.wait_for(env.node.control.wait_ended(s), 20) for s in streams))


async def test_killed_ffmpeg_restarts_with_a_discontinuity(ingest_env: IngestEnv) -> None:
    env = ingest_env
    channel_id, key = await env.stream_key()
    pusher = Pusher(push_command(env.rtmp_url(key), 12), env.tmp / "push-kill.log")
    try:
        stream_id = await env.stream_for(channel_id)
        await wait_playable(env, stream_id, segments=1)
        session = env.node.control.sessions[stream_id]
        assert session.current is not None and session.current.pid is not None
        killed = session.current.pid
        os.kill(killed, signal.SIGKILL)

        async def restarted() -> bool:
            return any(e.restarts >= 1 for e in env.sink.of(IngestHealthReported, stream_id))

        await eventually(restarted, timeout_s=10)

        async def resumed() -> m3u8.M3U8 | None:
            media = await playlist(env.url(f"/hls/{stream_id}/144p30.m3u8", tier="origin"))
            after = [
                s
                for i, s in enumerate(media.segments)
                if s.discontinuity or (i and media.segments[i - 1].discontinuity)
            ]
            return media if after and len(media.segments) > media.segments.index(after[0]) + 1 else None

        media = await eventually(resumed, timeout_s=15, interval_s=0.3)
        assert session.current is not None and session.current.pid != killed
        cut = next(i for i, s in enumerate(media.segments) if s.discontinuity)
        assert media.segments[cut].init_section.uri != media.segments[0].init_section.uri
        probed = await ffprobe_json(env.url(f"/hls/{stream_id}/144p30.m3u8", tier="origin"))
        assert probed["streams"]
    finally:
        pusher.stop()
    await asyncio.wait_for(env.node.control.wait_ended(stream_id), 20)


async def test_pull_of_a_local_file(ingest_env: IngestEnv, tmp_path: Path) -> None:
    env = ingest_env
    source = tmp_path / "feed.mp4"
    made = await asyncio.to_thread(
        subprocess.run,
        push_command(str(source), 4, fmt="mp4", realtime=False),
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    stream_id = f"pull-{os.urandom(4).hex()}"
    env.node.control.pull(stream_id, str(source))
    await wait_playable(env, stream_id, segments=1)
    await asyncio.wait_for(env.node.control.wait_ended(stream_id), 20)
    vod = await playlist(env.url(f"/hls/{stream_id}/source.m3u8", tier="origin"))
    assert vod.is_endlist and len(vod.segments) >= 3
    kinds = {type(e) for e in env.sink.events if getattr(e, "stream_id", "") == stream_id}
    assert {IngestConnected, RenditionsReady, SegmentPublished, IngestDisconnected} <= kinds


async def test_srt_push_with_the_key_in_streamid(ingest_env: IngestEnv) -> None:
    env = ingest_env
    channel_id, key = await env.stream_key()
    refused = Pusher(
        push_command(f"srt://127.0.0.1:{env.ingest.srt_port}?streamid=live_wrong", 2, fmt="mpegts"),
        env.tmp / "push-srt-wrong.log",
    )
    assert await refused.wait(20) != 0
    url = f"srt://127.0.0.1:{env.ingest.srt_port}?streamid={key}"
    pusher = Pusher(push_command(url, 5, fmt="mpegts"), env.tmp / "push-srt.log")
    try:
        stream_id = await env.stream_for(channel_id)
        master = await wait_playable(env, stream_id, segments=1)
        assert len(master.playlists) == 3
        assert await pusher.wait() == 0
    finally:
        pusher.stop()
    await asyncio.wait_for(env.node.control.wait_ended(stream_id), 30)
    connected = env.sink.of(IngestConnected, stream_id)
    assert connected[0].protocol.value == "srt"
    vod = await playlist(env.url(f"/hls/{stream_id}/source.m3u8", tier="origin"))
    assert vod.is_endlist
