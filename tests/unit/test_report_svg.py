"""The reports' plots (inline SVG) and HTML page, from made-up reports (no database)."""

from __future__ import annotations

import re
from collections import Counter
from html.parser import HTMLParser

import pytest

from projections.report.audience import audience_figures, combined_retention
from projections.report.html import render_html
from projections.report.sections import chat_summary
from projections.report.svg import MAX_POINTS, Chart, axis_top, bar_chart, downsample, line_chart
from projections.report.text import render_text


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: Counter[str] = Counter()
        self.attributes: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        self.attributes += attrs

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(markup: str) -> Tags:
    tags = Tags()
    tags.feed(markup)
    tags.close()
    return tags


def moves(svg: str) -> list[str]:
    """The path's commands: each M starts a new line."""
    [path] = re.findall(r'<path d="([^"]*)"', svg)
    return re.findall(r"[MLHV]", path)


@pytest.mark.parametrize(
    ("value", "top"), [(0, 4), (1, 4), (4, 4), (5, 8), (13, 16), (41, 60), (289, 320), (1000, 1000)]
)
def test_the_axis_top_is_a_round_figure_with_whole_ticks(value: float, top: float) -> None:
    assert axis_top(value) == top
    assert (axis_top(value) / 4).is_integer() and axis_top(value) >= value


def test_downsampling_keeps_each_groups_highest_value() -> None:
    points = [(float(x), float(x % 7)) for x in range(1000)]
    thinned = downsample(points, 100)
    assert len(thinned) == 100
    assert [x for x, _ in thinned] == [float(x) for x in range(0, 1000, 10)]
    assert max(y for _, y in thinned) == 6.0  # the peaks survive
    assert downsample(points[:50], 100) == points[:50]


def test_a_line_breaks_where_the_x_values_jump_by_more_than_the_gap() -> None:
    points = [(0.0, 1.0), (60.0, 2.0), (120.0, 3.0), (5000.0, 4.0), (5060.0, 1.0)]
    joined = line_chart(points, Chart(title="t"))
    broken = line_chart(points, Chart(title="t"), gap=900)
    stepped = line_chart(points, Chart(title="t"), step=True, gap=900)
    assert moves(joined).count("M") == 1 and moves(broken).count("M") == 2
    assert moves(stepped) == ["M", "H", "V", "H", "V", "M", "H", "V"]


def test_a_chart_places_its_points_inside_the_frame_and_labels_its_axes() -> None:
    chart = Chart(title="Viewers <live>", x_format=lambda x: f"t{x:.0f}", width=400, height=200)
    svg = line_chart([(0.0, 0.0), (10.0, 100.0)], chart)
    tags = parsed(svg)
    assert tags.tags["svg"] == 1 and tags.tags["title"] == 1
    assert "Viewers &lt;live&gt;" in svg and "<live>" not in svg  # escaped
    assert {"t0", "t10", "0", "100"} <= {t.strip() for t in tags.text}
    numbers = [float(n) for n in re.findall(r"[ML](-?[\d.]+) (-?[\d.]+)", svg)[0]]
    assert 0 <= numbers[0] <= 400 and 0 <= numbers[1] <= 200
    assert "http" not in svg  # not even the SVG namespace: inline SVG in HTML needs none


def test_bars_one_per_point_and_empty_charts_say_so() -> None:
    svg = bar_chart([(0.0, 1.0), (60.0, 4.0), (180.0, 2.0)], Chart(title="chat"))
    assert parsed(svg).tags["rect"] == 3
    heights = [float(h) for h in re.findall(r'height="([\d.]+)" class="bar"', svg)]
    assert heights[1] == max(heights) and heights[0] == pytest.approx(heights[1] / 4, abs=0.1)
    assert "no data" in line_chart([], Chart(title="x")) and "no data" in bar_chart([], Chart(title="x"))
    assert (
        parsed(bar_chart([(float(x), 1.0) for x in range(5000)], Chart(title="x"))).tags["rect"] <= MAX_POINTS
    )


def stream_report() -> dict[str, object]:
    point = {"minute": 0, "viewers": 3, "share": 1.0, "percent": 0.0}
    return {
        "report": "stream",
        "stream": {
            "stream_id": "s-1",
            "channel_id": "c-1",
            "channel": "<b>team</b>",
            "channel_name": "Team",
            "title": "Finals <script>alert(1)</script>",
            "game": "val",
            "state": "ended",
            "role": "main",
            "match_id": None,
            "started_at": "2025-06-01T18:00:00+00:00",
            "ended_at": "2025-06-01T18:10:00+00:00",
            "duration_s": 600.0,
        },
        "audience": {
            "peak_viewers": 12,
            "avg_viewers": 8.5,
            "unique_viewers": 3,
            "signed_in_viewers": 1,
            "anonymous_viewers": 2,
            "views": 4,
            "open_views": 1,
            "watch_time_s": 900.0,
            "avg_view_duration_s": 300.0,
            "watch_per_viewer_s": 300.0,
        },
        "concurrent": [
            {"at": "2025-06-01T18:00:00+00:00", "viewers": 5},
            {"at": "2025-06-01T18:01:00+00:00", "viewers": 12},
        ],
        "retention": {"base": 3, "points": [point, {**point, "minute": 1, "viewers": 1, "share": 0.3333}]},
        "chat": {
            "messages": 3,
            "chatters": 2,
            "per_chatter": 1.5,
            "active_minutes": 2,
            "per_minute_avg": 1.5,
            "per_live_minute": 0.3,
            "peak_minute": "2025-06-01T18:00:00+00:00",
            "per_minute_peak": 2,
            "per_minute": [
                {"minute": "2025-06-01T18:00:00+00:00", "messages": 2},
                {"minute": "2025-06-01T18:03:00+00:00", "messages": 1},
            ],
        },
        "moderation": {"ban": 1},
        "polls": [],
        "predictions": [],
    }


def test_the_html_page_is_self_contained_with_three_plots_and_escaped_text() -> None:
    page = render_html(stream_report())
    tags = parsed(page)
    assert tags.tags["svg"] == 3 and tags.tags["script"] == 0 and tags.tags["link"] == 0
    assert "<script>" not in page and "Finals &lt;script&gt;" in page and "&lt;b&gt;team" in page
    assert not [value for _, value in tags.attributes if value and re.search(r"https?:|//", value)]
    assert not re.search(r"https?:|url\(|@import", page)
    assert tags.tags["rect"] == 2 and "No polls." in page and "No predictions." in page


def test_a_match_report_has_a_page_too() -> None:
    report = stream_report()
    chat, polls = (
        report["chat"],
        [
            {
                "poll_id": "p",
                "stream_id": "s-1",
                "question": "Who wins?",
                "status": "closed",
                "final": True,
                "total": 4,
                "opened_at": None,
                "closed_at": None,
                "options": [
                    {"option": "T1", "votes": 3, "share": 0.75},
                    {"option": "G2", "votes": 1, "share": 0.25},
                ],
            }
        ],
    )
    match = {
        "report": "match",
        "match": {
            "match_id": "m-1",
            "tournament_id": "t",
            "tournament": "Worlds",
            "teams": ["T1", "G2"],
            "state": "ended",
            "winner": "T1",
        },
        "audience": {"peak_viewers": 10, "avg_viewers": 5.5, "buckets": 3},
        "streams": [
            {
                "stream_id": "s-1",
                "role": "main",
                "state": "ended",
                "peak_viewers": 10,
                "avg_viewers": 5.5,
                "messages": None,
            }
        ],
        "chat": chat,
        "moderation": {},
        "polls": polls,
        "predictions": [],
    }
    page = render_html(match)
    tags = parsed(page)
    assert "Match m-1: T1 vs G2" in page and tags.tags["svg"] == 1 and "No moderation actions." in page
    assert "Who wins?" in page and "75%" in page and tags.tags["script"] == 0


def test_a_stream_nobody_watched_still_has_a_page_and_a_text() -> None:
    report = stream_report() | {
        "audience": audience_figures({"peak_viewers": None, "avg_viewers": None}, [], {}),
        "concurrent": [],
        "retention": combined_retention([]),
        "chat": chat_summary([], 0),
        "moderation": {},
    }
    page = render_html(report)
    assert parsed(page).tags["svg"] == 3 and page.count("no data") == 3
    assert "Retention: no ended sessions" in render_text(report)
