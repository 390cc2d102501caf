"""The pure rules of clip cutting: which rendition, where each segment sits on the timeline, the plan."""

from __future__ import annotations

import pytest

from ingest_workers.clips import ClipRefused, parse_timeline, plan_clip, top_rendition

MASTER = """#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=868146,RESOLUTION=640x360
360p30.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2955594,RESOLUTION=1280x720
source.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=1456193,RESOLUTION=854x480
480p30.m3u8
"""


def playlist(durations: list[float], *, sequence: int = 0, ended: bool = True, restart_at: int = -1) -> str:
    lines = [
        "#EXTM3U",
        "#EXT-X-TARGETDURATION:2",
        f"#EXT-X-MEDIA-SEQUENCE:{sequence}",
        '#EXT-X-MAP:URI="a/init.mp4"',
    ]
    for i, duration in enumerate(durations):
        if i == restart_at:
            lines += ["#EXT-X-DISCONTINUITY", '#EXT-X-MAP:URI="b/init.mp4"']
        lines += [f"#EXTINF:{duration:.6f},", f"{'b' if 0 <= restart_at <= i else 'a'}/seg_{i:05d}.m4s"]
    lines += ['#EXT-X-PART:DURATION=0.5,URI="a/part.m4s"'] + (["#EXT-X-ENDLIST"] if ended else [])
    return "\n".join(lines) + "\n"


def test_the_top_rendition_is_the_highest_bandwidth() -> None:
    assert top_rendition(MASTER) == "source.m3u8"
    assert top_rendition("#EXTM3U\n") is None


def test_the_timeline_places_segments_end_to_end_and_knows_the_end() -> None:
    segments, ended = parse_timeline(playlist([2.0, 2.0, 1.5]))
    assert [(s.start_ms, s.duration_ms) for s in segments] == [(0, 2000), (2000, 2000), (4000, 1500)]
    assert ended and segments[0].init == "a/init.mp4"
    live, ended = parse_timeline(playlist([2.0], sequence=10, ended=False))
    assert live[0].start_ms == 20_000 and not ended  # the segments that slid out, at the target each


def test_a_start_on_a_boundary_copies_and_one_inside_reencodes_the_head() -> None:
    segments, _ = parse_timeline(playlist([2.0] * 20))
    on = plan_clip(segments, 4000, 30_000)
    assert on.copy and on.offset_ms == 0
    assert [s.uri for s in on.segments] == [f"a/seg_{i:05d}.m4s" for i in range(2, 17)]
    near = plan_clip(segments, 4010, 5000)  # within a frame: on the boundary
    assert near.copy and near.segments[0].uri == "a/seg_00002.m4s"
    inside = plan_clip(segments, 4500, 5000)
    assert not inside.copy and inside.offset_ms == 500
    assert [s.uri for s in inside.segments] == [f"a/seg_{i:05d}.m4s" for i in (2, 3, 4)]


@pytest.mark.parametrize(("start_ms", "duration_ms"), [(36_000, 5000), (0, 41_000)])
def test_a_range_past_the_segments_is_refused(start_ms: int, duration_ms: int) -> None:
    segments, _ = parse_timeline(playlist([2.0] * 20))
    with pytest.raises(ClipRefused, match="outside"):
        plan_clip(segments, start_ms, duration_ms)


def test_a_range_across_a_restart_is_refused() -> None:
    segments, _ = parse_timeline(playlist([2.0] * 10, restart_at=5))
    assert segments[5].init == "b/init.mp4"
    assert plan_clip(segments, 10_000, 6000).init == "b/init.mp4"
    with pytest.raises(ClipRefused, match="restart"):
        plan_clip(segments, 6000, 6000)
    with pytest.raises(ClipRefused, match="no segments"):
        plan_clip([], 0, 5000)
