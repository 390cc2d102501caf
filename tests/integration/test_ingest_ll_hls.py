"""Low-Latency HLS end to end: a real push, one FFmpeg writing parts for every rung, read through the
cache tier (nginx proxy_cache) in front of the origin nginx and the LL origin.

Every rendition's live playlist follows Apple's rules (read by the m3u8 package: parts within the
part target, a segment as long as its parts and starting with an independent part, the preload hint
naming the next part, rendition reports for the other rungs), every part and segment it lists is
served, a segment is its parts' fragments; a blocking reload for the next part answers once that part
exists and lists it, the preload-hinted part is served once written; and 200 viewers asking at once
for the same next part make one request to the origin (counted in the origin nginx's access log).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import m3u8
import pytest

from infra.settings import Settings
from ingest_workers.blocking_reload import Answer, Request, decide, position_of
from tests.integration.test_api_support import eventually
from tests.integration.test_ingest_support import (
    IngestEnv,
    Pusher,
    fetch,
    open_ingest_env,
    push_command,
    wait_playable,
)
from tests.ports import free_port

pytestmark = pytest.mark.integration

PART_S = 0.25  # of the 1 s segments of node_settings: 4 parts a segment
PUSH_S = 60  # longer than the module's tests
VIEWERS = 200
RENDITIONS = {"source", "144p30", "90p30"}


@dataclass
class Live:
    env: IngestEnv
    stream_id: str

    def url(self, path: str, tier: str = "cdn") -> str:
        return self.env.url(f"/hls/{self.stream_id}/{path}", tier)


@pytest.fixture(scope="module")
async def live(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Live]:
    assert shutil.which("ffmpeg") and shutil.which("nginx"), "ffmpeg and nginx: infra/local/install-system.sh"
    tmp = tmp_path_factory.mktemp("ll-hls")
    async with open_ingest_env(
        settings, tmp, low_latency=True, part_s=PART_S, ll_origin_port=free_port()
    ) as env:
        channel_id, key = await env.stream_key()
        pusher = Pusher(push_command(env.rtmp_url(key), PUSH_S), tmp / "push-ll.log")
        try:
            stream_id = await env.stream_for(channel_id)
            await wait_playable(env, stream_id, segments=3, timeout_s=20)
            yield Live(env, stream_id)
        finally:
            pusher.stop()


async def _media(live: Live, name: str, query: str = "") -> tuple[str, m3u8.M3U8]:
    response = await fetch(live.url(f"{name}.m3u8{query}"))
    assert response.status_code == 200, f"{name}.m3u8{query} -> {response.status_code}"
    return response.text, m3u8.loads(response.text)


async def test_every_rendition_lists_valid_parts_and_serves_them(live: Live) -> None:
    master = m3u8.loads((await fetch(live.url("master.m3u8"))).text)
    names = {p.uri.removesuffix(".m3u8") for p in master.playlists}
    assert names == RENDITIONS
    for name in sorted(names):
        text, media = await _media(live, name)
        target = media.part_inf.part_target
        assert media.server_control.can_block_reload == "YES"
        assert media.server_control.part_hold_back >= 2 * target
        assert {r.uri for r in media.rendition_reports} == {f"{n}.m3u8" for n in names - {name}}
        complete = [s for s in media.segments if s.uri]
        with_parts = [s for s in complete if s.parts]
        assert with_parts, text
        for segment in with_parts:
            assert all(p.duration <= target for p in segment.parts), text
            assert sum(p.duration for p in segment.parts) == pytest.approx(segment.duration, abs=1e-3)
            assert segment.parts[0].independent == "YES", text
            assert segment.duration <= media.target_duration
        listed = [p.uri for s in media.segments for p in s.parts]
        hint = media.preload_hint.uri
        assert media.preload_hint.hint_type == "PART" and hint not in listed
        assert int(hint[-9:-4]) == int(listed[-1][-9:-4]) + 1  # FFmpeg's next part
        for uri in (listed[0], listed[-1], complete[-1].uri, media.segment_map[0].uri):
            response = await fetch(live.url(uri))
            assert response.status_code == 200, uri
            assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        segment = (await fetch(live.url(with_parts[-1].uri))).content
        parts = [(await fetch(live.url(p.uri))).content for p in with_parts[-1].parts]
        assert segment.count(b"moof") == len(parts) and all(
            p[p.index(b"moof") - 4 :] in segment for p in parts
        )
    init = (await fetch(live.url(media.segment_map[0].uri))).content
    local = live.env.tmp / "ll-segment.mp4"
    local.write_bytes(init + segment)
    probe = await asyncio.to_thread(
        subprocess.run,
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
         "stream=nb_read_frames", "-of", "csv=p=0", str(local)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert probe.returncode == 0 and int(probe.stdout.strip()) >= 15, probe.stderr  # a decodable second


async def test_a_blocking_reload_answers_when_the_next_part_exists(live: Live) -> None:
    text, media = await _media(live, "144p30")
    before = position_of(text)
    hint = media.preload_hint.uri
    asked = Request(before.last_msn, before.last_part + 1)  # the next part (or the next segment's first)
    query = f"?_HLS_msn={asked.msn}&_HLS_part={asked.part}"
    hinted = asyncio.create_task(fetch(live.url(hint)))  # asked for before FFmpeg wrote it
    answer_text, answer = await _media(live, "144p30", query)
    after = position_of(answer_text)
    assert decide(after, asked) is Answer.NOW  # it lists the part asked for
    assert hint in [p.uri for s in answer.segments for p in s.parts]
    hinted_part = await hinted
    assert hinted_part.status_code == 200
    assert hinted_part.content == (live.env.ingest.hls_dir / live.stream_id / hint).read_bytes()
    far = await fetch(live.url(f"144p30.m3u8?_HLS_msn={after.last_msn + 50}&_HLS_part=0"))
    assert far.status_code == 400


async def test_viewers_waiting_for_the_same_next_part_make_one_origin_request(live: Live) -> None:
    text, _ = await _media(live, "90p30")
    before = position_of(text)
    msn, part = before.last_msn, before.last_part + 2  # not written yet when the viewers ask
    query = f"_HLS_msn={msn}&_HLS_part={part}"
    url = live.url(f"90p30.m3u8?{query}")
    limits = httpx.Limits(max_connections=VIEWERS + 10, max_keepalive_connections=VIEWERS + 10)
    async with httpx.AsyncClient(timeout=30, trust_env=False, limits=limits) as client:
        answers = await asyncio.gather(*(client.get(url) for _ in range(VIEWERS)))
    assert [a.status_code for a in answers] == [200] * VIEWERS
    for answer in answers:
        assert decide(position_of(answer.text), Request(msn, part)) is Answer.NOW
    log = live.env.node.origin.logs / "nginx-origin-access.log"
    reached = [line for line in log.read_text().splitlines() if f"/90p30.m3u8?{query} " in line]
    assert len(reached) == 1, reached


async def test_a_delta_update_through_the_cache_tier_lists_the_end_of_the_full_playlist(live: Live) -> None:
    async def skipping() -> tuple[str, str] | None:
        full = (await fetch(live.url("source.m3u8"))).text
        position = position_of(full)
        query = f"?_HLS_msn={position.last_msn}&_HLS_part={max(0, position.last_part)}&_HLS_skip=YES"
        delta = (await fetch(live.url(f"source.m3u8{query}"))).text
        return (full, delta) if "#EXT-X-SKIP" in delta else None

    full_text, delta_text = await eventually(skipping, timeout_s=30, interval_s=0.5)
    full, delta = m3u8.loads(full_text), m3u8.loads(delta_text)
    assert delta.version == 9 and delta.media_sequence == full.media_sequence
    skipped = delta.skip.skipped_segments
    kept = [s.uri for s in delta.segments if s.uri]
    assert kept and skipped > 0
    everything = [s.uri for s in full.segments if s.uri]
    assert everything.index(kept[0]) == skipped  # media sequence + skipped numbers its first segment
