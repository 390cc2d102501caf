"""Pure pieces of the ingest workers: the ladder, FFmpeg's command and progress, playlists, sources."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import m3u8
import pytest

from infra.settings import Settings
from ingest_workers.demo import end_leftover_streams
from ingest_workers.errors import LadderError
from ingest_workers.ladder import (
    FfmpegOutput,
    RungSpec,
    SourceInfo,
    Thumbnail,
    parse_ladder,
    plan_ladder,
    transcode_command,
)
from ingest_workers.playlists import (
    MediaSegment,
    RenditionTrack,
    RunTrack,
    parse_media_playlist,
    render_media,
)
from ingest_workers.probe import codecs_of
from ingest_workers.progress import ProgressParser
from ingest_workers.pull import UnsupportedSource, pull_source
from ingest_workers.srt import _key_of

DEFAULT = parse_ladder(["720p:2800", "480p30:1200", "360p30:700"])


def source(height: int, codec: str = "h264", fps: float = 60.0) -> SourceInfo:
    return SourceInfo(codec=codec, width=height * 16 // 9, height=height, fps=fps, has_audio=True)


def test_ladder_spec_parsing() -> None:
    assert parse_ladder(["360p:700", "720p60:2800"]) == (
        RungSpec(height=720, video_kbps=2800, max_fps=60.0),
        RungSpec(height=360, video_kbps=700),
    )
    for bad in (["720:2800"], ["720p"], ["720p:2800", "720p30:1000"]):
        with pytest.raises(LadderError):
            parse_ladder(bad)


def test_h264_1080p60_passes_through_above_the_default_rungs() -> None:
    rungs = plan_ladder(DEFAULT, source(1080))
    assert [(r.name, r.width, r.height, r.fps, r.copy) for r in rungs] == [
        ("source", 1920, 1080, 60.0, True),
        ("720p60", 1280, 720, 60.0, False),
        ("480p30", 854, 480, 30.0, False),
        ("360p30", 640, 360, 30.0, False),
    ]


def test_never_upscales_and_drops_rungs_as_tall_as_a_passed_through_source() -> None:
    assert [r.name for r in plan_ladder(DEFAULT, source(720, fps=30))] == ["source", "480p30", "360p30"]
    assert [r.name for r in plan_ladder(DEFAULT, source(240, fps=30))] == ["source"]


def test_other_codecs_are_reencoded_at_most_at_their_own_height() -> None:
    assert [r.name for r in plan_ladder(DEFAULT, source(720, "hevc", 30))] == ["720p30", "480p30", "360p30"]
    tiny = plan_ladder(DEFAULT, source(240, "vp8", 30))
    assert [(r.height, r.copy) for r in tiny] == [(240, False)]
    assert [r.copy for r in plan_ladder(DEFAULT, source(720), passthrough=False)] == [False, False, False]


def test_command_aligns_keyframes_and_writes_fmp4_with_temp_files(tmp_path: Path) -> None:
    rungs = plan_ladder(DEFAULT, source(1080))
    outputs = [FfmpegOutput(rung=r, directory=tmp_path / r.name) for r in rungs]
    argv = transcode_command(["-i", "rtmp://127.0.0.1/live/stream-1"], outputs, segment_s=2)
    text = " ".join(argv)
    assert argv.count("-i") == 1 and "split=3" in text  # decoded once
    assert argv.count("-f") == 4 and argv.count("hls") == 4
    assert text.count("-sc_threshold 0") == 3 and text.count("prev_forced_t+2") == 3
    assert text.count("temp_file+independent_segments+program_date_time") == 4
    assert text.count("-hls_segment_type fmp4") == 4 and "-c:v copy" in text
    assert "-g 120" in text and "-g 60" in text  # one segment of frames at 60 and at 30 fps


def test_a_restarted_run_may_replace_the_still_an_earlier_run_wrote(tmp_path: Path) -> None:
    rungs = plan_ladder(DEFAULT, source(720))
    outputs = [FfmpegOutput(rung=r, directory=tmp_path / "run-2" / r.name) for r in rungs]
    still = Thumbnail(path=tmp_path / "thumb.jpg")
    argv = transcode_command(["-i", "rtmp://x/live/s"], outputs, segment_s=2, thumbnail=still)
    # -nostdin makes FFmpeg refuse an existing output and exit unless -y says it may replace it
    assert "-nostdin" in argv and argv.index("-y") < argv.index("-i")
    assert argv[-1] == str(still.path) and "-atomic_writing 1" in " ".join(argv)


def test_progress_blocks() -> None:
    parser = ProgressParser()
    lines = [
        "frame=300",
        "fps=59.9",
        "bitrate=2500.3kbits/s",
        "drop_frames=2",
        "speed=1.52x",
        "progress=continue",
    ]
    results = [parser.feed(line) for line in lines]
    assert results[:-1] == [None] * 5
    last = results[-1]
    assert last is not None and (last.frame, last.fps, last.speed, last.drop_frames) == (300, 59.9, 1.52, 2)
    assert last.bitrate_kbps == 2500.3 and not last.ended
    assert [parser.feed(x) for x in ("speed=N/A", "progress=end")][-1].speed == 0.0  # type: ignore[union-attr]


def test_public_playlist_concatenates_runs_with_a_discontinuity_and_ends_as_a_vod() -> None:
    ffmpeg = (
        '#EXTM3U\n#EXT-X-MAP:URI="init.mp4"\n#EXTINF:2.000000,\n'
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-25T17:46:53.017+0000\nseg_00000.m4s\n#EXTINF:2.0,\nseg_00001.m4s\n"
    )
    init, listed = parse_media_playlist(ffmpeg)
    assert init == "init.mp4" and [s.uri for s in listed] == ["seg_00000.m4s", "seg_00001.m4s"]
    assert listed[0].program_date_time == datetime(2026, 11, 25, 17, 46, 53, 17000, tzinfo=UTC)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    first = [MediaSegment(uri="a-1/720p/s0.m4s", duration_s=2.0)] * 2
    second = [MediaSegment(uri="a-2/720p/s0.m4s", duration_s=2.0)]
    track = RenditionTrack(
        runs=[
            RunTrack(init_uri="a-1/720p/init.mp4", started_at=start, segments=first),
            RunTrack(init_uri="a-2/720p/init.mp4", started_at=start.replace(second=9), segments=second),
        ]
    )
    live = m3u8.loads(render_media(track, target_s=2, ended=False))
    assert live.playlist_type == "event" and not live.is_endlist and len(live.segments) == 3
    assert [s.discontinuity for s in live.segments] == [False, False, True]
    assert live.segments[2].init_section.uri == "a-2/720p/init.mp4"
    assert live.segments[1].program_date_time == start.replace(second=2)
    vod = m3u8.loads(render_media(track, target_s=2, ended=True))
    assert vod.is_endlist and vod.playlist_type == "vod" and vod.target_duration == 2


def test_codecs_from_the_avcc_box(tmp_path: Path) -> None:
    init = tmp_path / "init.mp4"
    init.write_bytes(b"\x00\x00\x00\x20ftyp....avcC\x01\x64\x00\x1f\xff")
    assert codecs_of(init, has_audio=True) == "avc1.64001f,mp4a.40.2"
    assert codecs_of(init, has_audio=False) == "avc1.64001f"


def test_pull_sources_whitelist_only_their_scheme() -> None:
    def whitelist(url: str) -> str:
        args = pull_source(url, allow_local=True).input_args
        return args[args.index("-protocol_whitelist") + 1]

    assert whitelist("rtmp://feed.example/live/x") == "rtmp,tcp"
    assert whitelist("srt://feed.example:9000") == "srt,udp"
    assert whitelist("/srv/feeds/match.mp4") == "file"
    assert "file" not in whitelist("https://cdn.example/master.m3u8")
    assert "-re" in pull_source("/srv/feeds/match.mp4", allow_local=True).input_args
    with pytest.raises(UnsupportedSource):
        pull_source("gopher://x")


def test_srt_streamid_forms() -> None:
    assert _key_of("live_abc") == "live_abc"
    assert _key_of("#!::r=live_abc,m=publish") == "live_abc"
    assert _key_of("#!::m=publish") == ""


def test_a_fresh_demo_ends_what_its_channel_still_shows_live_and_waits(tmp_path: Path) -> None:
    calls: list[str] = []
    live = [[{"stream_id": "old"}], [{"stream_id": "old"}], []]  # the read model catches up

    def api(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path}")
        if request.url.path == "/api/v1/streams":
            assert request.url.params["channel"] == "demo" and request.url.params["state"] == "live"
            return httpx.Response(200, json={"items": live.pop(0) if len(live) > 1 else live[0]})
        if request.url.path == "/api/v1/auth/login":
            return httpx.Response(200, json={"access_token": "t0ken"})
        return httpx.Response(202, json={"event_id": "e", "position": "streams:0:1"})

    settings = Settings(stack={"run_dir": tmp_path})  # type: ignore[arg-type]
    with httpx.Client(base_url="http://api", transport=httpx.MockTransport(api)) as client:
        assert end_leftover_streams(settings, client, poll_s=0) == ["old"]
        assert calls.count("POST /api/v1/streams/old/end") == 1 and calls.count("GET /api/v1/streams") == 3
        calls.clear()
        assert end_leftover_streams(settings, client, poll_s=0) == []  # nothing live: nothing ended
        assert calls == ["GET /api/v1/streams"]
