"""A long push serves a bounded live playlist that slides, then the whole session as a VOD.

A real FFmpeg publisher pushes 1 s segments for 16 s into a node whose DVR window is 8 s, with
FFmpeg's private playlists cut to 4 segments so they slide too (the worker must follow their
``#EXT-X-MEDIA-SEQUENCE`` and FFmpeg must keep every segment file). While live, every version of the
public playlist read through the origin lists only the window, with a growing media sequence and no
``EXT-X-PLAYLIST-TYPE``; at the end the same URL lists every segment once, each at the position its
media sequence number gave it while live, and every one of them is still served.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import m3u8
import pytest

from events.ingest import SegmentPublished
from infra.settings import Settings
from ingest_workers import ladder
from tests.integration.test_ingest_support import (
    IngestEnv,
    Pusher,
    complete_segments,
    fetch,
    open_ingest_env,
    push_command,
    wait_playable,
)

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.test_ingest_support"]

DVR_WINDOW_S = 8.0
PUSH_S = 16
PRIVATE_LIST_SIZE = 4  # FFmpeg's own playlists slide over a quarter of the push


@pytest.fixture
async def env(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[IngestEnv]:
    assert shutil.which("ffmpeg") and shutil.which("nginx"), "ffmpeg and nginx: infra/local/install-system.sh"
    monkeypatch.setattr(ladder, "PRIVATE_LIST_SIZE", PRIVATE_LIST_SIZE)
    async with open_ingest_env(settings, tmp_path, dvr_window_s=DVR_WINDOW_S) as env:
        yield env


async def _watch(url: str, versions: list[str], done: asyncio.Event) -> None:
    """Every distinct version of a playlist the origin serves, until `done`."""
    while not done.is_set():
        response = await fetch(url)
        if response.status_code == 200 and (not versions or versions[-1] != response.text):
            versions.append(response.text)
        await asyncio.sleep(0.25)


async def test_the_live_playlist_slides_over_the_dvr_window_then_the_vod_lists_everything(
    env: IngestEnv,
) -> None:
    channel_id, key = await env.stream_key()
    pusher = Pusher(push_command(env.rtmp_url(key), PUSH_S), env.tmp / "push-window.log")
    versions: list[str] = []
    done = asyncio.Event()
    try:
        stream_id = await env.stream_for(channel_id)
        await wait_playable(env, stream_id, segments=1)
        url = env.url(f"/hls/{stream_id}/144p30.m3u8", tier="origin")
        watching = asyncio.create_task(_watch(url, versions, done))
        assert await pusher.wait() == 0
        await asyncio.wait_for(env.node.control.wait_ended(stream_id), 20)
        done.set()
        await watching
    finally:
        done.set()
        pusher.stop()

    vod_text = (await fetch(url)).text
    vod = m3u8.loads(vod_text)
    assert vod.is_endlist and vod.playlist_type == "vod" and vod.media_sequence == 0
    published = [e.uri for e in env.sink.of(SegmentPublished, stream_id) if e.rendition == "144p30"]
    assert len(vod.segments) == len(published) >= DVR_WINDOW_S + 2  # every segment, once, in order
    # (fewer than PUSH_S on a loaded machine: the push is paced in real time by a starved FFmpeg)
    everything = [s.uri for s in vod.segments]
    assert everything == [u.split(f"/{stream_id}/", 1)[1] for u in published]
    assert everything[0].endswith("/seg_00000.m4s")

    live = [m3u8.loads(text) for text in versions if "#EXT-X-ENDLIST" not in text]
    assert len(live) >= 8, f"saw {len(live)} live versions"
    previous = 0
    for media in live:
        durations = [s.duration for s in complete_segments(media)]
        assert media.playlist_type is None and media.discontinuity_sequence == 0
        assert len(durations) <= 6 or sum(durations[1:]) < DVR_WINDOW_S  # no more than the window
        assert media.media_sequence >= previous  # the numbering only moves forward ...
        previous = media.media_sequence
        start = media.media_sequence  # ... and names the same segments the VOD lists there
        listed = [s.uri for s in complete_segments(media)]
        assert listed == everything[start : start + len(listed)]
    assert previous >= max(1, len(published) - DVR_WINDOW_S - 3)  # the window slid over the rest
    # the live playlist stayed shorter than the whole session (in segments: with Low-Latency HLS it
    # also lists the parts of its last seconds, so a short session's VOD can have fewer bytes)
    longest = max(len(complete_segments(media)) for media in live)
    assert longest < len(complete_segments(m3u8.loads(vod_text))) * 0.8

    for uri in (everything[0], everything[len(everything) // 2], everything[-1]):  # files are kept
        assert (await fetch(env.url(f"/hls/{stream_id}/{uri}", tier="origin"))).status_code == 200
