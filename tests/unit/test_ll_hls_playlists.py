"""Low-Latency HLS playlists against Apple's rules (RFC 8216bis), read back by the m3u8 package.

A track is fed part by part as the session feeds it (a segment closes when a part with a keyframe
starts the next one) and every version of the live playlist is checked: parts within PART-TARGET,
a segment as long as its parts, PART-HOLD-BACK at least two part targets, the preload hint naming
the next part, parts listed for the last three target durations and the segment in progress, and a
segment's media sequence number the same in every version. Blocking reload decisions are a table.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import m3u8
import pydantic
import pytest

from infra.settings import IngestSettings
from ingest_workers.blocking_reload import (
    Answer,
    Request,
    advance_part_limit,
    decide,
    delta_update,
    parse_request,
    position_of,
)
from ingest_workers.ladder import FfmpegOutput, Rung, transcode_command
from ingest_workers.playlists import (
    LowLatency,
    Part,
    RenditionReport,
    RenditionTrack,
    RunTrack,
    Window,
    part_target,
    render_media,
)

START = datetime(2026, 12, 4, 12, tzinfo=UTC)
PART_S = 0.5
PARTS_PER_SEGMENT = 4
TARGET = PART_TARGET = part_target(PART_S, [30.0])
LL = LowLatency(part_target_s=PART_TARGET, reports=(RenditionReport(uri="b.m3u8", last_msn=3, last_part=1),))


class Feed:
    """Parts into a track the way the session adds them: ``independent`` parts start segments."""

    def __init__(self, track: RenditionTrack, run: str = "r1") -> None:
        self.run = RunTrack(init_uri=f"{run}/a/init.mp4", started_at=START)
        track.runs.append(self.run)
        self.name, self.number = run, 0

    def part(self, *, independent: bool, duration_s: float = PART_S) -> None:
        if independent and self.run.open_parts:
            self.close()
        uri = f"{self.name}/a/part_{self.number:05d}.m4s"
        self.run.open_parts.append(Part(uri=uri, duration_s=duration_s, independent=independent))
        self.number += 1
        self.run.hint_uri = f"{self.name}/a/part_{self.number:05d}.m4s"

    def close(self) -> None:
        parts = list(self.run.open_parts)
        name = f"{self.name}/a/seg_{len(self.run.segments):05d}.m4s"
        self.run.append(name, sum(p.duration_s for p in parts), parts)
        self.run.open_parts.clear()


def _live(track: RenditionTrack, window: Window | None = None) -> tuple[str, m3u8.M3U8]:
    text = render_media(track, target_s=2, ended=False, window=window, low_latency=LL)
    return text, m3u8.loads(text)


def _check_rules(text: str, playlist: m3u8.M3U8, feed: Feed) -> None:
    """Apple's rules for one version of a live LL-HLS media playlist."""
    assert playlist.server_control.can_block_reload == "YES"
    part_target_s = playlist.part_inf.part_target
    assert part_target_s == PART_TARGET
    assert playlist.server_control.part_hold_back >= 2 * part_target_s  # MUST; 3x recommended
    assert playlist.server_control.part_hold_back == pytest.approx(3 * part_target_s)
    assert playlist.preload_hint.hint_type == "PART" and playlist.preload_hint.uri == feed.run.hint_uri
    assert [r.uri for r in playlist.rendition_reports] == ["b.m3u8"]
    complete = [s for s in playlist.segments if s.uri]
    for segment in playlist.segments:
        assert all(p.duration <= part_target_s for p in segment.parts)
        if segment.uri and segment.parts:
            assert sum(p.duration for p in segment.parts) == pytest.approx(segment.duration)
            assert segment.parts[0].independent == "YES"
            assert all(p.independent is None for p in segment.parts[1:])
    with_parts = [s for s in complete if s.parts]
    assert sum(s.duration for s in with_parts[1:]) < 3 * playlist.target_duration  # only the last few
    if len(complete) > len(with_parts):  # older segments are listed without parts
        assert sum(s.duration for s in with_parts) >= 3 * playlist.target_duration
    in_progress = [s for s in playlist.segments if not s.uri]
    assert [p.uri for s in in_progress for p in s.parts] == [p.uri for p in feed.run.open_parts]
    assert max(s.duration for s in complete) <= playlist.target_duration if complete else True
    assert "#EXT-X-ENDLIST" not in text


def test_every_live_version_follows_the_rules_and_keeps_its_numbering() -> None:
    track = RenditionTrack()
    feed = Feed(track)
    seen: dict[str, int] = {}
    for number in range(PARTS_PER_SEGMENT * 12 + 2):
        feed.part(independent=number % PARTS_PER_SEGMENT == 0)
        text, playlist = _live(track, Window(dvr_s=0))
        _check_rules(text, playlist, feed)
        for offset, segment in enumerate(s for s in playlist.segments if s.uri):
            assert seen.setdefault(segment.uri, playlist.media_sequence + offset) == (
                playlist.media_sequence + offset
            )
    assert len(seen) == 12 and playlist.media_sequence > 0  # the window slid, the numbers stayed


def test_uneven_parts_make_segments_as_long_as_their_parts() -> None:
    track = RenditionTrack()
    feed = Feed(track)
    durations = [0.52, 0.48, 0.52, 0.48, 0.52, 0.48, 0.52]  # 25 fps: 13 and 12 frames
    for index, duration in enumerate(durations * 3):
        feed.part(independent=index % 7 == 0, duration_s=duration)
    lowest = LowLatency(part_target_s=part_target(PART_S, [25.0]))
    playlist = m3u8.loads(render_media(track, target_s=2, ended=False, low_latency=lowest))
    assert all(p.duration <= playlist.part_inf.part_target for s in playlist.segments for p in s.parts)
    for segment in (s for s in playlist.segments if s.uri and s.parts):
        assert sum(p.duration for p in segment.parts) == pytest.approx(segment.duration)
    assert playlist.target_duration == 4  # 3.52 s segments: the target covers the longest


def test_a_new_run_without_a_complete_segment_lists_its_parts_after_a_discontinuity() -> None:
    track = RenditionTrack()
    first = Feed(track, "r1")
    for number in range(9):
        first.part(independent=number % PARTS_PER_SEGMENT == 0)
    first.close()
    first.run.hint_uri = None
    second = Feed(track, "r2")
    second.part(independent=True)
    text, playlist = _live(track, Window(dvr_s=60))
    tail = text.split("r1/a/seg_00002.m4s\n", 1)[1].splitlines()
    assert tail[:2] == ["#EXT-X-DISCONTINUITY", '#EXT-X-MAP:URI="r2/a/init.mp4"']
    assert playlist.preload_hint.uri == "r2/a/part_00001.m4s"
    assert playlist.segments[-1].uri is None
    assert [p.uri for p in playlist.segments[-1].parts] == ["r2/a/part_00000.m4s"]


def test_the_vod_at_the_end_is_the_standard_one() -> None:
    track = RenditionTrack()
    feed = Feed(track)
    for number in range(10):
        feed.part(independent=number % PARTS_PER_SEGMENT == 0)
    feed.close()
    vod = render_media(track, target_s=2, ended=True, low_latency=LL)
    assert vod == render_media(track, target_s=2, ended=True)
    assert "EXT-X-PART" not in vod and "PRELOAD-HINT" not in vod and vod.endswith("#EXT-X-ENDLIST\n")


def test_rendition_reports_name_the_last_part_of_the_segment_in_progress() -> None:
    track = RenditionTrack()
    assert track.report("a.m3u8") is None
    feed = Feed(track)
    for number in range(6):
        feed.part(independent=number % PARTS_PER_SEGMENT == 0)
    assert track.report("a.m3u8") == RenditionReport(uri="a.m3u8", last_msn=1, last_part=1)
    feed.close()
    assert track.report("a.m3u8") == RenditionReport(uri="a.m3u8", last_msn=1, last_part=1)


def test_part_targets_cover_a_part_of_whole_frames() -> None:
    assert part_target(0.5, [30.0]) == 0.501  # 15 frames, plus a millisecond of timestamp rounding
    assert part_target(0.5, [25.0, 30.0]) == 0.521  # 13 frames at 25 fps
    assert part_target(0.25, [30.0]) == 0.268  # 8 frames
    assert part_target(1.0, []) == 1.001


def _position(parts_done: int) -> str:
    track = RenditionTrack()
    feed = Feed(track)
    for number in range(parts_done):
        feed.part(independent=number % PARTS_PER_SEGMENT == 0)
    return render_media(track, target_s=2, ended=False, low_latency=LL)


def test_the_position_of_a_playlist_is_its_segment_and_part_in_progress() -> None:
    position = position_of(_position(10))  # segments 0 and 1 complete, parts 0-1 of segment 2
    assert (position.complete_msn, position.last_msn, position.last_part) == (1, 2, 1)
    assert position.part_target_s == PART_TARGET and position.target_s == 2 and not position.ended
    position = position_of(_position(0))
    assert (position.complete_msn, position.last_msn, position.last_part) == (-1, -1, -1)


@pytest.mark.parametrize(
    ("msn", "part", "answer"),
    [
        (None, None, Answer.NOW),  # an ordinary reload
        (1, None, Answer.NOW),  # segment 1 is complete
        (2, None, Answer.WAIT),  # segment 2 is in progress
        (2, 1, Answer.NOW),  # its part 1 is there
        (2, 2, Answer.WAIT),  # the next part: held
        (1, 3, Answer.NOW),  # a part of a complete segment
        (1, 7, Answer.NOW),  # past the last part of segment 1: segment 2 has begun
        (3, 0, Answer.WAIT),  # the next segment's first part
        (4, None, Answer.WAIT),  # two segments ahead: allowed
        (5, 0, Answer.BAD_REQUEST),  # more than the last segment plus two
        (2, 1 + advance_part_limit(PART_TARGET), Answer.WAIT),
        (2, 2 + advance_part_limit(PART_TARGET), Answer.BAD_REQUEST),  # beyond the advance part limit
    ],
)
def test_blocking_reload_decisions(msn: int | None, part: int | None, answer: Answer) -> None:
    assert decide(position_of(_position(10)), Request(msn, part)) is answer


def test_an_ended_playlist_answers_any_request_at_once() -> None:
    track = RenditionTrack()
    Feed(track).part(independent=True)
    track.runs[0].open_parts.clear()
    ended = position_of(render_media(track, target_s=2, ended=True, low_latency=LL))
    assert decide(ended, Request(50, 0)) is Answer.NOW


def test_blocking_parameters_are_parsed_strictly() -> None:
    assert parse_request({}) == Request()
    assert parse_request({"_HLS_msn": "4", "_HLS_part": "2"}) == Request(4, 2)
    assert parse_request({"_HLS_msn": "4"}) == Request(4, None)
    assert parse_request({"_HLS_part": "2"}) is None  # a part without its segment: 400
    assert parse_request({"_HLS_msn": "-1"}) is None and parse_request({"_HLS_msn": "x"}) is None


def test_low_latency_ffmpeg_writes_parts_cut_on_time_with_keyframes_every_segment() -> None:
    rung = Rung(name="144p30", width=256, height=144, fps=30, video_kbps=250, audio_kbps=96)
    output = FfmpegOutput(rung=rung, directory=Path("/x/144p30"))
    argv = transcode_command(["-i", "rtmp://x"], [output], segment_s=2, part_s=0.5)
    assert argv[argv.index("-hls_time") + 1] == "0.5"
    assert argv[argv.index("-hls_segment_filename") + 1] == "/x/144p30/part_%05d.m4s"
    assert "split_by_time" in argv[argv.index("-hls_flags") + 1]
    assert "prev_forced_t+2-0.001" in argv[argv.index("-force_key_frames") + 1]  # still every segment
    standard = transcode_command(["-i", "rtmp://x"], [output], segment_s=2)
    assert "split_by_time" not in " ".join(standard) and "seg_%05d.m4s" in " ".join(standard)


def test_parts_must_divide_segments() -> None:
    assert IngestSettings(low_latency=True, segment_s=2, part_s=0.5).part_s == 0.5
    assert IngestSettings(low_latency=True, segment_s=1, part_s=0.25).part_s == 0.25
    with pytest.raises(pydantic.ValidationError):
        IngestSettings(low_latency=True, segment_s=2, part_s=0.3)
    with pytest.raises(pydantic.ValidationError):
        IngestSettings(low_latency=True, segment_s=1, part_s=2)


def _long(track: RenditionTrack, feed: Feed, segments: int) -> None:
    for number in range(segments * PARTS_PER_SEGMENT + 2):
        feed.part(independent=number % PARTS_PER_SEGMENT == 0)


def test_a_delta_update_skips_what_ends_before_the_skip_boundary_and_keeps_the_rest() -> None:
    track = RenditionTrack()
    feed = Feed(track)
    _long(track, feed, 120)  # 4 minutes of 2 s segments, in a 2-hour DVR window
    full_text, full = _live(track, Window(dvr_s=7200))
    until = full.server_control.can_skip_until
    assert until == 6 * full.target_duration  # at least six target durations (RFC 8216bis 4.4.3.8)
    delta_text = delta_update(full_text)
    delta = m3u8.loads(delta_text)
    skipped = delta.skip.skipped_segments
    assert delta.version == 9 and full.version < 9  # EXT-X-SKIP needs version 9
    assert delta.media_sequence == full.media_sequence
    complete = [s for s in full.segments if s.uri]
    end = sum(s.duration for s in complete) + sum(
        p.duration for s in full.segments if not s.uri for p in s.parts
    )
    assert sum(s.duration for s in complete[:skipped]) <= end - until  # all before the boundary ...
    assert sum(s.duration for s in complete[: skipped + 1]) > end - until  # ... and no more
    assert [s.uri for s in delta.segments] == [s.uri for s in full.segments[skipped:]]
    assert delta.segments[0].init_section.uri == "r1/a/init.mp4"  # the map in effect, repeated
    assert delta_text.split("#EXT-X-PRELOAD-HINT", 1)[1] == full_text.split("#EXT-X-PRELOAD-HINT", 1)[1]
    assert len(delta_text) < len(full_text) / 3


def test_a_delta_update_never_skips_across_a_discontinuity() -> None:
    track = RenditionTrack()
    first = Feed(track, "r1")
    _long(track, first, 3)
    first.close()
    first.run.hint_uri = None
    second = Feed(track, "r2")
    _long(track, second, 20)
    full_text, full = _live(track, Window(dvr_s=7200))
    delta = m3u8.loads(delta_update(full_text))
    assert delta.skip.skipped_segments == 4  # the first run only
    assert (
        delta.segments[0].discontinuity and delta.discontinuity_sequence == full.discontinuity_sequence == 0
    )
    assert delta_update(full_text).count("#EXT-X-MAP:") == 1  # the second run's, not the skipped one's


def test_a_playlist_that_allows_no_skipping_or_is_short_is_its_own_delta() -> None:
    track = RenditionTrack()
    feed = Feed(track)
    _long(track, feed, 30)
    standard = render_media(track, target_s=2, ended=False)
    assert delta_update(standard) == standard
    short = RenditionTrack()
    _long(short, Feed(short), 3)
    text, _ = _live(short)
    assert delta_update(text) == text
