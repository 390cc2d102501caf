"""A publisher back at another size or codec: what the new ladder keeps, adds and drops."""

from __future__ import annotations

from dataclasses import replace

from ingest_workers.ladder import Rung, SourceInfo, compare_ladders, parse_ladder, plan_ladder

LADDER = parse_ladder(["720p:2800", "480p30:1200", "240p30:400"])


def plan(
    width: int, height: int, codec: str = "h264", *, fps: float = 30.0, audio: bool = True, kbps: int = 0
) -> tuple[Rung, ...]:
    source = SourceInfo(codec=codec, width=width, height=height, fps=fps, has_audio=audio, bitrate_kbps=kbps)
    return plan_ladder(LADDER, source)


def test_the_same_source_is_the_same_plan_whatever_bitrate_the_probe_reads() -> None:
    assert compare_ladders(plan(1280, 720, kbps=2500), plan(1280, 720, kbps=3100)) is None
    assert compare_ladders(plan(640, 360), plan(640, 360)) is None


def test_a_smaller_source_drops_the_rungs_taller_than_it_and_resizes_the_passthrough() -> None:
    change = compare_ladders(plan(1280, 720), plan(640, 360))
    assert change is not None
    assert [(r.name, r.width, r.height) for r in change.kept] == [("source", 640, 360), ("240p30", 426, 240)]
    assert [r.name for r in change.dropped] == ["480p30"]
    assert change.added == () and change.donors == {}


def test_a_taller_source_adds_rungs_whose_earlier_runs_come_from_the_nearest_old_rung() -> None:
    change = compare_ladders(plan(640, 360), plan(1280, 720))
    assert change is not None
    assert [r.name for r in change.added] == ["480p30"]
    assert change.donors == {"480p30": "source"}  # the 360-line source is nearer 480 than 240p30
    assert [(r.name, r.height) for r in change.kept] == [("source", 720), ("240p30", 240)]
    assert change.dropped == ()
    tall = compare_ladders(plan(1280, 720), plan(1920, 1080))
    assert tall is not None and tall.donors == {"720p30": "source"}


def test_another_codec_reencodes_the_top_rung_instead_of_passing_it_through() -> None:
    change = compare_ladders(plan(1280, 720), plan(1280, 720, "hevc"))
    assert change is not None
    assert [r.name for r in change.dropped] == ["source"]
    assert [(r.name, r.copy) for r in change.added] == [("720p30", False)]
    assert change.donors == {"720p30": "source"}
    back = compare_ladders(plan(1280, 720, "hevc"), plan(1280, 720))
    assert back is not None and back.donors == {"source": "720p30"}


def test_another_frame_rate_renames_the_rungs_it_reaches() -> None:
    change = compare_ladders(plan(1280, 720), plan(1280, 720, fps=60.0))
    assert change is not None
    assert [r.name for r in change.kept] == ["source", "480p30", "240p30"]  # capped at 30 fps: same names
    assert change.added == change.dropped == ()
    uncapped = compare_ladders(
        plan_ladder(
            parse_ladder(["360p:700"]),
            SourceInfo(codec="h264", width=1280, height=720, fps=30, has_audio=True),
        ),
        plan_ladder(
            parse_ladder(["360p:700"]),
            SourceInfo(codec="h264", width=1280, height=720, fps=60, has_audio=True),
        ),
    )
    assert uncapped is not None
    assert ([r.name for r in uncapped.added], [r.name for r in uncapped.dropped]) == (["360p60"], ["360p30"])


def test_a_source_that_lost_its_audio_is_another_plan_with_the_same_rungs() -> None:
    change = compare_ladders(plan(1280, 720), plan(1280, 720, audio=False))
    assert change is not None
    assert [r.audio_kbps for r in change.kept] == [0, 0, 0]
    assert change.added == change.dropped == ()


def test_of_two_old_rungs_as_near_the_shorter_gives_its_runs() -> None:
    old = plan(1280, 720)  # source 720, 480p30, 240p30
    added = replace(old[2], name="360p30", height=360, width=640)
    change = compare_ladders(old, (*old, added))
    assert change is not None and change.donors == {"360p30": "240p30"}  # 480 and 240 both 120 away
