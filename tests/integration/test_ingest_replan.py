"""A publisher back within the grace period at another resolution gets the ladder of what it sends now.

Real FFmpeg publishers (test pattern, H.264, 1 s GOP) push to the real nginx-rtmp of an ingest node,
stop, and push again with the same key at another size before the grace period is over: the same
session probes the source again and plans a new ladder. Down (1280x720 then 640x360): the 480p rung
is not encoded from 360 lines any more, its playlist is ended, and the master announces the
passthrough at 640x360; up (640x360 then 1280x720): a 480p rung appears, its playlist starting with
the passthrough's first run. Either way RenditionsReady comes again on Kafka with the same session,
the kept rungs continue after a discontinuity, and the VOD master lists the last ladder, each playlist
from the session's first segment.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import m3u8
import pytest

from events.ingest import IngestConnected, RenditionsReady
from infra.settings import Settings
from ingest_workers.session import LEFT_RUN_STOP_S
from tests.integration.test_api_support import eventually
from tests.integration.test_ingest_support import (
    IngestEnv,
    Pusher,
    TopicLog,
    complete_segments,
    ffprobe_json,
    open_ingest_env,
    playlist,
    push_command,
    reading,
    wait_playable,
)
from tests.ports import free_port

pytestmark = pytest.mark.integration

LADDER = ["720p:1200", "480p30:500", "240p30:200"]  # under an H.264 source: the passthrough, then these
GRACE_S = 3.0  # the second push connects about a second after the first stopped
PUSH_S = 60  # stopped by the test long before
BIG, SMALL = "1280x720", "640x360"
PART_S = 0.25  # Low-Latency HLS: 4 parts to a 1 s segment


@pytest.fixture(scope="module")
async def env(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[IngestEnv]:
    assert shutil.which("ffmpeg") and shutil.which("nginx"), "ffmpeg and nginx: infra/local/install-system.sh"
    async with open_ingest_env(
        settings, tmp_path_factory.mktemp("replan"), ladder=LADDER, end_grace_s=GRACE_S
    ) as env:
        yield env


@pytest.fixture(scope="module")
async def ll_env(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[IngestEnv]:
    """A Low-Latency HLS node: the worker assembles the segments from FFmpeg's parts."""
    assert shutil.which("ffmpeg") and shutil.which("nginx"), "ffmpeg and nginx: infra/local/install-system.sh"
    async with open_ingest_env(
        settings,
        tmp_path_factory.mktemp("replan-ll"),
        ladder=LADDER,
        end_grace_s=GRACE_S,
        low_latency=True,
        part_s=PART_S,
        ll_origin_port=free_port(),
    ) as env:
        yield env


def _names(master: m3u8.M3U8) -> list[str]:
    return sorted(p.uri.removesuffix(".m3u8") for p in master.playlists)


def _resolution(master: m3u8.M3U8, name: str) -> Any:
    return next(p.stream_info.resolution for p in master.playlists if p.uri == f"{name}.m3u8")


def _published_done(env: IngestEnv) -> float:
    """How many on_publish_done hooks the node answered (the publisher-left notices)."""
    count = env.node.control.metrics.get_sample_value(
        "ingest_hook_duration_seconds_count", {"hook": "publish_done"}
    )
    return count or 0.0


@dataclass
class Publisher:
    """The pushers of one test (stopped at its end) and the Kafka log of the ingest topic."""

    env: IngestEnv
    log: TopicLog
    pushers: list[Pusher] = field(default_factory=list)

    def push(self, key: str, size: str) -> Pusher:
        argv = push_command(self.env.rtmp_url(key), PUSH_S, size=size)
        self.pushers.append(Pusher(argv, self.env.tmp / f"push-{key[-6:]}-{size}.log"))
        return self.pushers[-1]

    def stop(self) -> None:
        for pusher in self.pushers:
            pusher.stop()


@contextlib.asynccontextmanager
async def _publishing(env: IngestEnv) -> AsyncIterator[Publisher]:
    async with reading(env.stack.settings, "ingest") as log:
        publisher = Publisher(env, log)
        try:
            yield publisher
        finally:
            publisher.stop()


@pytest.fixture
async def publisher(env: IngestEnv) -> AsyncIterator[Publisher]:
    async with _publishing(env) as publisher:
        yield publisher


@pytest.fixture
async def ll_publisher(ll_env: IngestEnv) -> AsyncIterator[Publisher]:
    async with _publishing(ll_env) as publisher:
        yield publisher


async def _reconnect(
    publisher: Publisher, first: str, second: str, *, segments: int = 2
) -> tuple[str, RenditionsReady]:
    """Push at `first` until every rendition has `segments`, stop, push at `second` (left running):
    (stream id, the second RenditionsReady, read back from Kafka) once the new ladder is playable."""
    env, log = publisher.env, publisher.log
    channel_id, key = await env.stream_key()
    done = _published_done(env)
    pusher = publisher.push(key, first)
    stream_id = await env.stream_for(channel_id)
    await wait_playable(env, stream_id, segments=segments, timeout_s=20)
    pusher.stop()

    async def left() -> bool:  # the session knows before the same key publishes again
        return _published_done(env) > done

    await eventually(left, timeout_s=10, interval_s=0.1)
    publisher.push(key, second)

    async def replanned() -> RenditionsReady | None:
        ready = log.of(stream_id, RenditionsReady)
        return ready[1] if len(ready) > 1 else None

    ready = await eventually(replanned, timeout_s=30, interval_s=0.2)
    [connected] = log.of(stream_id, IngestConnected)
    assert [r.session_id for r in log.of(stream_id, RenditionsReady)] == [connected.session_id] * 2
    return stream_id, ready


async def _media(env: IngestEnv, stream_id: str, name: str) -> m3u8.M3U8:
    return await playlist(env.url(f"/hls/{stream_id}/{name}.m3u8", tier="origin"))


def _cut(media: m3u8.M3U8) -> int:
    """The index of the only discontinuity."""
    cuts = [i for i, s in enumerate(media.segments) if s.discontinuity]
    assert len(cuts) == 1, cuts
    return cuts[0]


async def _ended_vod(publisher: Publisher, stream_id: str, run1: str) -> dict[str, m3u8.M3U8]:
    """Stop the publisher, wait for the session's end: each playlist the VOD master lists, by name."""
    env = publisher.env
    publisher.stop()
    await asyncio.wait_for(env.node.control.wait_ended(stream_id), GRACE_S + 15)
    master = await playlist(env.url(f"/hls/{stream_id}/master.m3u8", tier="origin"))
    vod = {name: await _media(env, stream_id, name) for name in _names(master)}
    for name, media in vod.items():
        assert media.is_endlist and media.playlist_type == "vod", name
        assert media.segments[0].uri.startswith(f"{run1}/") and media.segments[0].uri.endswith(
            "/seg_00000.m4s"
        )
        _cut(media)  # the reconnect, once
    return vod


async def test_back_at_a_lower_resolution_the_taller_rungs_end(publisher: Publisher) -> None:
    env, log = publisher.env, publisher.log
    # a run older than LEFT_RUN_STOP_S: the worker waits that long for the source before it stops the
    # run, and the publisher is back before it decides (a restart of the old ladder, before the fix)
    stream_id, ready = await _reconnect(publisher, BIG, SMALL, segments=int(LEFT_RUN_STOP_S) + 2)
    run1, run2 = f"{ready.session_id[:8]}-1", f"{ready.session_id[:8]}-2"
    [first] = log.of(stream_id, RenditionsReady)[:1]
    assert [(r.name, r.width, r.height) for r in first.renditions] == [
        ("source", 1280, 720),
        ("480p30", 854, 480),
        ("240p30", 426, 240),
    ]
    assert [(r.name, r.width, r.height) for r in ready.renditions] == [
        ("source", 640, 360),
        ("240p30", 426, 240),
    ]

    master = await playlist(env.url(f"/hls/{stream_id}/master.m3u8"))
    assert _names(master) == ["240p30", "source"]  # nothing encoded taller than the 360-line source
    assert _resolution(master, "source") == (640, 360)
    dropped = await _media(env, stream_id, "480p30")
    assert dropped.is_endlist and all(s.uri.startswith(f"{run1}/480p30/") for s in dropped.segments)
    assert not any(s.discontinuity for s in dropped.segments)
    for name in ("source", "240p30"):
        live = await _media(env, stream_id, name)
        assert not live.is_endlist
        after = complete_segments(live)[_cut(live) :]
        assert after[0].init_section.uri == f"{run2}/{name}/init.mp4"
        assert all(s.uri.startswith(f"{run2}/{name}/") for s in after)
    init = await ffprobe_json(env.url(f"/hls/{stream_id}/{run2}/source/init.mp4", tier="origin"))
    assert [(s["width"], s["height"]) for s in init["streams"] if s["codec_type"] == "video"] == [(640, 360)]

    vod = await _ended_vod(publisher, stream_id, run1)
    assert sorted(vod) == ["240p30", "source"]
    kept = await _media(env, stream_id, "480p30")  # on disk for the replay, as it ended
    assert kept.is_endlist and [s.uri for s in kept.segments] == [s.uri for s in dropped.segments]


async def test_back_at_a_higher_resolution_a_rung_is_added(publisher: Publisher) -> None:
    env, log = publisher.env, publisher.log
    stream_id, ready = await _reconnect(publisher, SMALL, BIG)
    run1, run2 = f"{ready.session_id[:8]}-1", f"{ready.session_id[:8]}-2"
    [first] = log.of(stream_id, RenditionsReady)[:1]
    assert [r.name for r in first.renditions] == ["source", "240p30"]
    assert [(r.name, r.width, r.height) for r in ready.renditions] == [
        ("source", 1280, 720),
        ("480p30", 854, 480),
        ("240p30", 426, 240),
    ]
    master = await playlist(env.url(f"/hls/{stream_id}/master.m3u8"))
    assert _names(master) == ["240p30", "480p30", "source"]
    assert _resolution(master, "source") == (1280, 720) and _resolution(master, "480p30") == (854, 480)
    added = await _media(env, stream_id, "480p30")
    cut = _cut(added)
    # before its own run, the new rung lists the passthrough's first run (the nearest old rung)
    assert all(s.uri.startswith(f"{run1}/source/") for s in added.segments[:cut])
    assert all(s.uri.startswith(f"{run2}/480p30/") for s in complete_segments(added)[cut:])

    vod = await _ended_vod(publisher, stream_id, run1)
    assert sorted(vod) == ["240p30", "480p30", "source"]
    assert vod["480p30"].segments[0].uri == f"{run1}/source/seg_00000.m4s"
    source = vod["source"]
    assert len(vod["480p30"].segments[: _cut(vod["480p30"])]) == len(source.segments[: _cut(source)])


async def test_low_latency_playlists_report_the_new_ladder_only(ll_publisher: Publisher) -> None:
    env = ll_publisher.env
    stream_id, ready = await _reconnect(ll_publisher, BIG, SMALL)
    run1 = f"{ready.session_id[:8]}-1"
    assert [r.name for r in ready.renditions] == ["source", "240p30"]
    dropped = await _media(env, stream_id, "480p30")
    assert dropped.is_endlist and not dropped.segments[-1].parts  # a VOD: no parts, no hint, no reports
    live = await _media(env, stream_id, "source")
    assert not live.is_endlist and live.preload_hint is not None
    assert [r.uri for r in live.rendition_reports] == ["240p30.m3u8"]  # not the dropped rung

    vod = await _ended_vod(ll_publisher, stream_id, run1)
    assert sorted(vod) == ["240p30", "source"]
