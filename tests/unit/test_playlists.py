"""The public playlists' window: what slides out advances the media and discontinuity sequences, a
segment keeps its number in every version (live and VOD), and the VOD lists everything once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import m3u8
import pydantic
import pytest

from infra.settings import IngestSettings
from ingest_workers.ladder import PRIVATE_LIST_SIZE, FfmpegOutput, Rung, transcode_command
from ingest_workers.playlists import (
    LIVE_WINDOW_SEGMENTS,
    RenditionTrack,
    RunTrack,
    Window,
    media_sequence_of,
    render_media,
)

START = datetime(2026, 12, 4, 12, tzinfo=UTC)


def _track(*lengths: int, duration_s: float = 1.0) -> RenditionTrack:
    """Runs of `lengths` segments (0 = a run that died before its first segment), appended one by one."""
    track = RenditionTrack()
    for number, length in enumerate(lengths, start=1):
        run = RunTrack(init_uri=f"r{number}/init.mp4", started_at=START + timedelta(minutes=number))
        track.runs.append(run)
        for index in range(length):
            run.append(f"r{number}/seg_{index:05d}.m4s", duration_s)
    return track


def _all_uris(track: RenditionTrack) -> list[str]:
    return [s.uri for run in track.runs for s in run.segments]


def _live(track: RenditionTrack, window: Window) -> m3u8.M3U8:
    return m3u8.loads(render_media(track, target_s=1, ended=False, window=window))


def _run_ordinals(track: RenditionTrack) -> dict[str, int]:
    """Each segment's discontinuity number: the ordinal of its run among the runs with segments."""
    runs = [run for run in track.runs if run.segments]
    return {s.uri: ordinal for ordinal, run in enumerate(runs) for s in run.segments}


def _check_numbering(live: m3u8.M3U8, track: RenditionTrack) -> None:
    """Media sequence + position is the segment's index in the whole session; discontinuity sequence
    + the cuts before a segment is its run's ordinal (RFC 8216 6.2.1/6.2.2)."""
    everything, ordinals = _all_uris(track), _run_ordinals(track)
    cuts = 0
    for position, segment in enumerate(live.segments):
        cuts += int(segment.discontinuity)
        assert everything[live.media_sequence + position] == segment.uri
        assert (live.discontinuity_sequence or 0) + cuts == ordinals[segment.uri], segment.uri


def test_the_live_playlist_lists_the_dvr_window_and_numbers_it() -> None:
    track = _track(20)
    live = _live(track, Window(dvr_s=5, min_segments=3))
    assert [s.uri for s in live.segments] == _all_uris(track)[15:]
    assert live.media_sequence == 15 and live.discontinuity_sequence == 0
    assert live.playlist_type is None and not live.is_endlist  # no EVENT: segments leave a sliding list
    assert live.segments[0].init_section.uri == "r1/init.mp4"
    assert live.segments[0].program_date_time == START + timedelta(minutes=1, seconds=15)
    _check_numbering(live, track)


def test_a_zero_dvr_window_keeps_the_short_live_window() -> None:
    track = _track(20)
    live = _live(track, Window(dvr_s=0))
    assert len(live.segments) == LIVE_WINDOW_SEGMENTS and live.media_sequence == 20 - LIVE_WINDOW_SEGMENTS
    short = _live(_track(2), Window(dvr_s=0))  # fewer segments than the window: all of them
    assert len(short.segments) == 2 and short.media_sequence == 0


def test_restarts_that_slide_out_advance_the_discontinuity_sequence() -> None:
    track = _track(5, 0, 4, 3)  # the second run died before its first segment: no cut of its own
    live = _live(track, Window(dvr_s=5, min_segments=1))
    assert [s.uri for s in live.segments] == ["r3/seg_00002.m4s", "r3/seg_00003.m4s", *_all_uris(track)[9:]]
    assert live.media_sequence == 7 and live.discontinuity_sequence == 1
    assert [s.discontinuity for s in live.segments] == [False, False, True, False, False]
    assert [s.init_section.uri for s in live.segments[1:3]] == ["r3/init.mp4", "r4/init.mp4"]
    _check_numbering(live, track)
    last_run_only = _live(track, Window(dvr_s=3, min_segments=1))
    assert last_run_only.discontinuity_sequence == 2 and not any(
        s.discontinuity for s in last_run_only.segments
    )
    assert last_run_only.media_sequence == 9 and last_run_only.segments[0].init_section.uri == "r4/init.mp4"


def test_sliding_never_renumbers_and_the_vod_keeps_every_number() -> None:
    """Segment after segment over three runs, every version of the live playlist and the final VOD
    agree on each segment's media and discontinuity numbers; the sequences only grow."""
    track = RenditionTrack()
    window = Window(dvr_s=4.5, min_segments=2)
    previous = (0, 0)
    for number, length in enumerate((7, 1, 6), start=1):
        run = RunTrack(init_uri=f"r{number}/init.mp4", started_at=START + timedelta(minutes=number))
        track.runs.append(run)
        for index in range(length):
            run.append(f"r{number}/seg_{index:05d}.m4s", 1.5)
            live = _live(track, window)
            _check_numbering(live, track)
            total = track.segment_count
            assert min(2, total) <= len(live.segments) <= 3  # 4.5 s of 1.5 s segments, not the session
            assert live.media_sequence == total - len(live.segments) >= previous[0]
            assert live.discontinuity_sequence >= previous[1]
            previous = (live.media_sequence, live.discontinuity_sequence)
    assert previous == (14 - 3, 2)
    vod = m3u8.loads(render_media(track, target_s=1, ended=True, window=window))
    assert vod.is_endlist and vod.playlist_type == "vod" and vod.media_sequence == 0
    assert [s.uri for s in vod.segments] == _all_uris(track) and len(vod.segments) == 14
    assert sum(s.discontinuity for s in vod.segments) == 2 and vod.target_duration == 2
    _check_numbering(vod, track)


def test_the_target_duration_is_the_longest_segment_ever_not_the_windows() -> None:
    track = _track(1, duration_s=3.2)
    track.runs[0].append("r1/seg_00001.m4s", 1.0)
    for index in range(2, 10):
        track.runs[0].append(f"r1/seg_{index:05d}.m4s", 1.0)
    live = _live(track, Window(dvr_s=2, min_segments=1))
    assert all(s.duration == 1.0 for s in live.segments) and live.target_duration == 4


def test_a_window_is_checked() -> None:
    with pytest.raises(ValueError, match="dvr_s must be >= 0"):
        Window(dvr_s=-1)
    with pytest.raises(ValueError, match="min_segments >= 1"):
        Window(dvr_s=10, min_segments=0)
    with pytest.raises(pydantic.ValidationError, match="dvr_window_s"):
        IngestSettings(dvr_window_s=-5)
    assert IngestSettings().dvr_window_s == 7200


def test_an_empty_track_renders_an_empty_live_playlist() -> None:
    live = _live(RenditionTrack(runs=[RunTrack(init_uri="r1/init.mp4", started_at=START)]), Window(dvr_s=10))
    assert live.segments == [] and live.media_sequence == 0 and live.discontinuity_sequence == 0


def test_the_media_sequence_of_ffmpegs_sliding_playlist() -> None:
    sliding = '#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:42\n#EXT-X-MAP:URI="init.mp4"\n'
    assert media_sequence_of(sliding) == 42 and media_sequence_of("#EXTM3U\n") == 0


def test_ffmpeg_keeps_a_bounded_private_playlist_and_every_segment_file() -> None:
    rung = Rung(name="144p30", width=256, height=144, fps=30, video_kbps=250, audio_kbps=96)
    argv = transcode_command(
        ["-i", "rtmp://127.0.0.1/live/x"], [FfmpegOutput(rung=rung, directory=Path("/tmp/r"))], segment_s=2
    )
    assert argv[argv.index("-hls_list_size") + 1] == str(PRIVATE_LIST_SIZE) and PRIVATE_LIST_SIZE > 0
    assert "delete_segments" not in argv[argv.index("-hls_flags") + 1]
    assert "-hls_playlist_type" not in argv  # an EVENT playlist would never slide
