"""The reports' pure parts: combining the per-stream figures, the chat summary, the text helpers, the
arguments, and how the viewing-sessions projector folds a batch (no database)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events.viewers import ViewingSessionEnded, ViewingSessionStarted
from projections.report.audience import audience_figures, combined_retention
from projections.report.command import UsageError, check_usage
from projections.report.options import add_arguments, instant
from projections.report.sections import chat_summary
from projections.report.text import duration, retention_sample
from projections.viewing_sessions import ends_by_key, starts_by_key

T0 = datetime(2025, 6, 1, 18, 0, tzinfo=UTC)


def curve(stream: str, base: int, viewers: list[int], duration_s: int) -> list[dict[str, Any]]:
    return [
        {
            "stream_id": stream,
            "minute": m,
            "viewers": n,
            "base": base,
            "percent": round(100 * m * 60 / duration_s, 1),
        }
        for m, n in enumerate(viewers)
    ]


def test_one_streams_retention_is_its_own_curve_with_percents() -> None:
    combined = combined_retention(curve("a", 4, [4, 3, 1], 120))
    assert combined == {
        "base": 4,
        "points": [
            {"minute": 0, "viewers": 4, "share": 1.0, "percent": 0.0},
            {"minute": 1, "viewers": 3, "share": 0.75, "percent": 50.0},
            {"minute": 2, "viewers": 1, "share": 0.25, "percent": 100.0},
        ],
    }


def test_streams_retention_adds_viewers_per_minute_over_every_streams_viewers() -> None:
    rows = curve("a", 4, [4, 3, 1], 120) + curve("b", 2, [2, 2, 2, 1], 180)
    combined = combined_retention(sorted(rows, key=lambda r: (r["minute"], r["stream_id"])))
    assert combined["base"] == 6
    assert [(p["minute"], p["viewers"], p["share"]) for p in combined["points"]] == [
        (0, 6, 1.0),
        (1, 5, 0.8333),
        (2, 3, 0.5),
        (3, 1, 0.1667),  # stream a is over: its viewers still count in the base
    ]
    assert {p["percent"] for p in combined["points"]} == {None}  # no single duration to place it in
    assert combined_retention([]) == {"base": 0, "points": []}


def test_audience_over_streams_adds_their_sessions_and_counts_viewers_once() -> None:
    per_stream = [
        {"views": 5, "ended_views": 4, "watch_ms": 400_000, "watched_viewers": 3},
        {"views": 3, "ended_views": 3, "watch_ms": 200_500, "watched_viewers": 2},
    ]
    figures = audience_figures(
        {"peak_viewers": 9, "avg_viewers": 4.5}, per_stream, {"unique_viewers": 4, "signed_in_viewers": 1}
    )
    assert figures == {
        "peak_viewers": 9,
        "avg_viewers": 4.5,
        "unique_viewers": 4,
        "signed_in_viewers": 1,
        "anonymous_viewers": 3,
        "views": 8,
        "open_views": 1,
        "watch_time_s": 600.5,
        "avg_view_duration_s": 85.8,  # 600.5 s over 7 ended views
        "watch_per_viewer_s": 120.1,  # over 5 viewers with an ended session
    }
    empty = audience_figures({}, [], {})
    assert (
        empty["unique_viewers"] == 0
        and empty["avg_view_duration_s"] is None
        and empty["peak_viewers"] is None
    )


def test_the_chat_summary_takes_the_earliest_of_the_busiest_minutes() -> None:
    minutes = [{"minute": T0 + timedelta(minutes=m), "messages": n} for m, n in enumerate([2, 5, 1, 5])]
    chat = chat_summary(minutes, chatters=4, live_s=600)
    assert (chat["messages"], chat["per_chatter"], chat["per_minute_avg"], chat["per_live_minute"]) == (
        13,
        3.25,
        3.25,
        1.3,
    )
    assert (chat["peak_minute"], chat["per_minute_peak"]) == (T0 + timedelta(minutes=1), 5)
    assert [m["messages"] for m in chat["per_minute"]] == [2, 5, 1, 5]
    none = chat_summary([], chatters=0)
    assert (none["messages"], none["per_chatter"], none["peak_minute"], none["per_live_minute"]) == (
        0,
        0,
        None,
        None,
    )


def test_text_helpers() -> None:
    assert [duration(s) for s in (None, 4.54, 61, 3723.4)] == ["-", "4.5s", "1m 01s", "1h 02m 03s"]
    points = [{"minute": m} for m in range(101)]
    assert [p["minute"] for p in retention_sample(points)] == list(range(0, 101, 10))
    assert retention_sample(points[:5]) == points[:5]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_times_are_iso_8601_and_utc_without_an_offset() -> None:
    assert instant("2025-06-01") == datetime(2025, 6, 1, tzinfo=UTC)
    assert instant("2025-06-01T20:00+02:00") == datetime(2025, 6, 1, 18, tzinfo=UTC)
    with pytest.raises(argparse.ArgumentTypeError):
        instant("yesterday")


def test_a_channel_report_needs_a_range_and_only_it_takes_one() -> None:
    assert check_usage(parse("channel", "team", "--from", "2025-06-01", "--to", "2025-07-01")) == "public"
    for argv, message in [
        (("channel", "team"), "needs --from and --to"),
        (("channel", "team", "--from", "2025-07-01", "--to", "2025-06-01"), "before"),
        (("stream", "s-1", "--from", "2025-06-01"), "for channel reports"),
    ]:
        with pytest.raises(UsageError, match=message):
            check_usage(parse(*argv))
    assert parse("stream", "s-1", "--format", "html").format == "html"


def session(n: int, end_s: int | None = None) -> ViewingSessionStarted | ViewingSessionEnded:
    fields = {"session_id": f"v-{n}", "stream_id": "s", "started_at": T0, "edge_id": "e"}
    if end_s is None:
        return ViewingSessionStarted(**fields)  # type: ignore[arg-type]
    return ViewingSessionEnded(**fields, ended_at=T0 + timedelta(seconds=end_s), watch_ms=end_s * 1000)  # type: ignore[arg-type]


def test_a_batch_holds_each_session_once_with_its_latest_end() -> None:
    batch = [
        session(1),
        session(1, 30),
        session(1),
        session(1, 90),
        session(1, 60),
        session(2, 5),
        session(2),
    ]
    starts, ends = starts_by_key(batch), ends_by_key(batch)
    assert sorted(key[1] for key in starts) == ["v-1", "v-2"]
    assert {key[1]: e.watch_ms for key, e in ends.items()} == {"v-1": 90_000, "v-2": 5_000}
