"""The Low-Latency HLS pieces below the playlists: CMAF fragments (is a part independent, a segment out
of its parts), the assembler that groups parts into segments, and the LL origin's blocking answers
over real files (the app in process, files written by the test as the session would write them)."""

from __future__ import annotations

import asyncio
import shutil
import struct
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from infra.settings import Settings
from ingest_workers import cmaf, nginx
from ingest_workers.assembly import SegmentAssembler
from ingest_workers.ll_origin import create_ll_origin
from ingest_workers.playlists import LowLatency, Part, RenditionTrack, RunTrack, render_media

KEY, NON_KEY = 0x02000000, 0x01010000  # sample flags: depends on nothing / non-sync, depends on others


def box(kind: bytes, *children: bytes) -> bytes:
    payload = b"".join(children)
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def full(kind: bytes, flags: int, *fields: int) -> bytes:
    return box(kind, struct.pack(">I", flags), *(struct.pack(">I", f) for f in fields))


def trak(track_id: int, handler: bytes) -> bytes:
    tkhd = full(b"tkhd", 0, 0, 0, track_id, 0, 0)
    hdlr = box(b"hdlr", b"\0\0\0\0", b"\0\0\0\0", handler, b"\0" * 12)
    return box(b"trak", tkhd, box(b"mdia", hdlr))


def init(video_default_flags: int = 0) -> bytes:
    trex = full(b"trex", 0, 1, 1, 0, 0, video_default_flags)
    return box(b"ftyp", b"iso6") + box(b"moov", trak(2, b"soun"), trak(1, b"vide"), box(b"mvex", trex))


def fragment(*trafs: bytes, mdat: bytes = b"media") -> bytes:
    """A part as FFmpeg writes it: styp, sidx, moof (mfhd + trafs), mdat."""
    moof = box(b"moof", full(b"mfhd", 0, 1), *trafs)
    return box(b"styp", b"msdh") + full(b"sidx", 0, 1) + moof + box(b"mdat", mdat)


def traf(
    track_id: int, *, first: int | None = None, default: int | None = None, each: int | None = None
) -> bytes:
    tfhd = full(
        b"tfhd", 0x20 if default is not None else 0, track_id, *([default] if default is not None else [])
    )
    if first is not None:
        trun = full(b"trun", 0x5, 2, 100, first)
    elif each is not None:
        trun = full(b"trun", 0x701, 1, 100, 3000, 500, each)
    else:
        trun = full(b"trun", 0x1, 2, 100)
    return box(b"traf", tfhd, trun)


VIDEO = cmaf.TrackDefaults(track_id=1)


def test_the_video_track_of_an_init_segment() -> None:
    assert cmaf.video_defaults(init(NON_KEY)) == cmaf.TrackDefaults(track_id=1, sample_flags=NON_KEY)
    assert cmaf.video_defaults(box(b"ftyp", b"iso6")) is None


@pytest.mark.parametrize(
    ("part", "keyframe"),
    [
        (fragment(traf(1, first=KEY, default=NON_KEY), traf(2)), True),  # FFmpeg: first-sample-flags
        (fragment(traf(1, default=NON_KEY), traf(2)), False),  # FFmpeg: the tfhd's defaults
        (fragment(traf(2, first=NON_KEY), traf(1, first=KEY)), True),  # audio first: the video decides
        (fragment(traf(1, each=KEY)), True),  # per-sample flags
        (fragment(traf(1, each=NON_KEY)), False),
        (box(b"styp", b"msdh"), False),  # no moof
    ],
)
def test_a_part_is_independent_when_its_first_video_sample_is_a_sync_sample(
    part: bytes, keyframe: bool
) -> None:
    assert cmaf.starts_with_keyframe(part, VIDEO) is keyframe


def test_the_track_defaults_decide_when_the_fragment_says_nothing() -> None:
    part = fragment(traf(1))
    assert cmaf.starts_with_keyframe(part, cmaf.video_defaults(init(NON_KEY)) or VIDEO) is False
    assert cmaf.starts_with_keyframe(part, cmaf.video_defaults(init(KEY)) or VIDEO) is True


def _kinds(data: bytes) -> list[bytes]:
    kinds, at = [], 0
    while at < len(data):
        size, kind = struct.unpack_from(">I4s", data, at)
        kinds.append(kind)
        at += size
    return kinds


def test_a_segment_is_its_parts_fragments_under_one_styp_without_their_indexes() -> None:
    parts = [fragment(traf(1, first=KEY), mdat=b"one"), fragment(traf(1), mdat=b"two")]
    segment = cmaf.concatenate_parts(parts)
    assert _kinds(segment) == [b"styp", b"moof", b"mdat", b"moof", b"mdat"]
    assert segment.endswith(box(b"mdat", b"two")) and box(b"mdat", b"one") in segment


def test_the_assembler_closes_a_segment_at_the_next_keyframe_and_at_the_end(tmp_path: Path) -> None:
    (tmp_path / "init.mp4").write_bytes(init(NON_KEY))
    track = RunTrack(init_uri="r/a/init.mp4", started_at=datetime(2026, 12, 4, tzinfo=UTC))
    assembler = SegmentAssembler(tmp_path, "r/a/", track)
    closed = []
    for number, keyframe in enumerate([True, False, False, True, False]):
        name = f"part_{number:05d}.m4s"
        (tmp_path / name).write_bytes(fragment(traf(1, first=KEY) if keyframe else traf(1)))
        closed.append(assembler.add(name, 0.5))
    assert closed[:3] == [None, None, None] and closed[4] is None
    first = closed[3]
    assert first is not None and first.uri == "seg_00000.m4s" and first.duration_s == 1.5
    assert [p.independent for p in first.parts] == [True, False, False]
    assert _kinds((tmp_path / "seg_00000.m4s").read_bytes()) == [b"styp"] + [b"moof", b"mdat"] * 3
    assert [p.uri for p in track.open_parts] == ["r/a/part_00003.m4s", "r/a/part_00004.m4s"]
    last = assembler.close()
    assert last is not None and last.uri == "seg_00001.m4s" and not track.open_parts
    assert [s.uri for s in track.segments] == ["r/a/seg_00000.m4s", "r/a/seg_00001.m4s"]
    assert assembler.close() is None
    assert not list(tmp_path.glob(".*.tmp"))


# ---------------------------------------------------------------------------------------- the LL origin

LL = LowLatency(part_target_s=0.501)


def _write(folder: Path, parts: int, *, part_s: float = 0.5) -> RenditionTrack:
    """The playlist of a rendition after `parts` parts (4 to a segment), written as the session does."""
    track = RenditionTrack()
    run = RunTrack(init_uri="r/a/init.mp4", started_at=datetime(2026, 12, 4, tzinfo=UTC))
    track.runs.append(run)
    for number in range(parts):
        if number % 4 == 0 and run.open_parts:
            done = list(run.open_parts)
            run.append(f"r/a/seg_{len(run.segments):05d}.m4s", 4 * part_s, done)
            run.open_parts.clear()
        run.open_parts.append(
            Part(uri=f"r/a/part_{number:05d}.m4s", duration_s=part_s, independent=number % 4 == 0)
        )
    run.hint_uri = f"r/a/part_{parts:05d}.m4s"
    text = render_media(track, target_s=4 * part_s, ended=False, low_latency=LL)
    tmp = folder / ".a.m3u8.tmp"
    tmp.write_text(text)
    tmp.replace(folder / "a.m3u8")
    return track


@pytest.fixture
async def origin(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_ll_origin(tmp_path, part_wait_s=5)
    (tmp_path / "s1" / "r" / "a").mkdir(parents=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ll") as client:
        yield client


async def test_a_blocking_reload_answers_once_the_part_is_listed(
    origin: httpx.AsyncClient, tmp_path: Path
) -> None:
    folder = tmp_path / "s1"
    _write(folder, 6)  # segment 0 complete, parts 0-1 of segment 1
    now = await origin.get("/hls/s1/a.m3u8", params={"_HLS_msn": 1, "_HLS_part": 1})
    assert now.status_code == 200 and "part_00005.m4s" in now.text
    assert now.headers["cache-control"] == "public, max-age=12"  # a blocking answer stays true
    held = asyncio.create_task(origin.get("/hls/s1/a.m3u8", params={"_HLS_msn": 1, "_HLS_part": 2}))
    await asyncio.sleep(0.2)
    assert not held.done()  # the part does not exist yet
    _write(folder, 7)
    answer = await held
    assert answer.status_code == 200 and 'URI="r/a/part_00006.m4s"' in answer.text
    plain = await origin.get("/hls/s1/a.m3u8")
    assert plain.headers["cache-control"] == "public, max-age=1"


async def test_requests_too_far_ahead_or_malformed_are_refused(
    origin: httpx.AsyncClient, tmp_path: Path
) -> None:
    _write(tmp_path / "s1", 6)
    assert (await origin.get("/hls/s1/a.m3u8", params={"_HLS_msn": 4})).status_code == 400
    assert (await origin.get("/hls/s1/a.m3u8", params={"_HLS_msn": 1, "_HLS_part": 40})).status_code == 400
    assert (await origin.get("/hls/s1/a.m3u8", params={"_HLS_part": 1})).status_code == 400
    assert (await origin.get("/hls/s2/a.m3u8")).status_code == 404
    assert (await origin.get("/hls/../a.m3u8")).status_code == 404


async def test_a_part_that_never_comes_answers_503_after_three_target_durations(
    origin: httpx.AsyncClient, tmp_path: Path
) -> None:
    _write(tmp_path / "s1", 6, part_s=0.25)  # 1 s segments
    response = await origin.get("/hls/s1/a.m3u8", params={"_HLS_msn": 1, "_HLS_part": 3})
    assert response.status_code == 503 and "cache-control" not in response.headers


async def test_the_hinted_part_is_served_once_it_exists_and_only_the_next_one_is_awaited(
    origin: httpx.AsyncClient, tmp_path: Path
) -> None:
    folder = tmp_path / "s1" / "r" / "a"
    (folder / "part_00000.m4s").write_bytes(b"zero")
    held = asyncio.create_task(origin.get("/hls/s1/r/a/part_00001.m4s"))
    await asyncio.sleep(0.2)
    assert not held.done()
    (folder / "part_00001.m4s").write_bytes(b"one")
    answer = await held
    assert answer.status_code == 200 and answer.content == b"one"
    assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert (await origin.get("/hls/s1/r/a/part_00009.m4s")).status_code == 404  # not the next one
    assert (await origin.get("/hls/s1/r/a/seg_00000.m4s")).status_code == 404  # parts only
    metrics = (await origin.get("/metrics")).text
    assert 'll_origin_responses_total{kind="part",status="200"} 1.0' in metrics


# ---------------------------------------------------------------------------------------- the nginx configs


def _settings(tmp_path: Path, **ingest: object) -> Settings:
    base = Settings()
    return base.model_copy(
        update={
            "ingest": base.ingest.model_copy(update={"hls_dir": tmp_path / "hls", **ingest}),
            "stack": base.stack.model_copy(update={"run_dir": tmp_path / "run"}),
        }
    )


def _rendered(server: nginx.Nginx) -> str:
    server.prefix.mkdir(parents=True, exist_ok=True)
    nginx.render(
        server.template, server.conf, server.values(), low_latency=server.settings.ingest.low_latency
    )
    return server.conf.read_text()


def test_low_latency_adds_locations_and_leaves_the_standard_configs_as_they_were(tmp_path: Path) -> None:
    standard, low = (
        _settings(tmp_path / "s", low_latency=False),
        _settings(tmp_path / "l", low_latency=True, ll_origin_port=8191),
    )
    for make in (nginx.origin, nginx.cdn):
        plain = _rendered(make(standard))
        server = make(standard)
        nginx.render(server.template, server.conf, server.values())  # what it was before Low-Latency HLS
        assert plain == server.conf.read_text() and "ll_origin" not in plain and "$args" not in plain
        ll = _rendered(make(low))
        assert len(ll) > len(plain)
    origin = _rendered(nginx.origin(low))
    assert origin.count("proxy_pass http://127.0.0.1:8191;") == 2 and "error_page 404 = @ll_origin;" in origin
    assert origin.index("location @ll_origin") < origin.index("# Playlists change every segment")
    cdn = _rendered(nginx.cdn(low))
    assert "proxy_cache_key $uri$is_args$args;" in cdn
    hold = int(cdn.split("proxy_cache_lock_timeout ", 1)[1].split("s;", 1)[0])
    assert hold > 3 * low.ingest.segment_s  # outlasts a blocking request held by the LL origin


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx: infra/local/install-system.sh")
def test_the_low_latency_configs_are_valid_nginx(tmp_path: Path) -> None:
    low = _settings(tmp_path, low_latency=True)
    for server in (nginx.origin(low), nginx.cdn(low)):
        server.prepare()
        check = subprocess.run(
            ["nginx", "-t", "-q", "-p", str(server.prefix), "-c", str(server.conf), "-e", "/dev/null"],
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stderr


async def test_a_delta_update_is_asked_for_with_hls_skip(origin: httpx.AsyncClient, tmp_path: Path) -> None:
    _write(tmp_path / "s1", 4 * 30 + 2)  # 30 complete 2 s segments
    full = await origin.get("/hls/s1/a.m3u8", params={"_HLS_msn": 30, "_HLS_part": 1})
    delta = await origin.get("/hls/s1/a.m3u8", params={"_HLS_msn": 30, "_HLS_part": 1, "_HLS_skip": "YES"})
    assert "#EXT-X-SKIP" not in full.text and "CAN-SKIP-UNTIL=12" in full.text
    assert "#EXT-X-SKIP:SKIPPED-SEGMENTS=" in delta.text and len(delta.text) < len(full.text) / 2
    kept = delta.text.split("#EXT-X-SKIP:SKIPPED-SEGMENTS=", 1)[1].split("\n", 2)
    assert kept[1] == '#EXT-X-MAP:URI="r/a/init.mp4"' and full.text.endswith(kept[2])  # the rest as it was
