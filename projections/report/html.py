"""The reports as one self-contained HTML page (pure): the figures in tables, and the plots as inline
SVG (:mod:`projections.report.svg`): concurrent viewers over time, the retention curve, chat per
minute. No script, no external asset (styles inline), every value escaped."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

from projections.report.svg import Chart, bar_chart, line_chart
from projections.report.text import duration, number

__all__ = ["render_html"]

Report = dict[str, Any]
STREAM_GAP_S = 15 * 60  # a channel's concurrency line breaks where no count came for this long

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 760px; color: #1d1d1f; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
p.sub { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { padding: 2px 10px 2px 0; text-align: left; }
td.n, th.n { text-align: right; } th { border-bottom: 1px solid #ccc; font-weight: 600; }
svg { display: block; margin: 1em 0; font-size: 11px; fill: #444; }
svg .title { font-size: 13px; font-weight: 600; fill: #1d1d1f; }
svg .grid { stroke: #e5e5e5; } svg .axis { stroke: #888; }
svg .line { fill: none; stroke: #6441a5; stroke-width: 1.6; } svg .bar { fill: #6441a5; }
"""


def render_html(report: Report) -> str:
    """Any report (match, stream or channel) as an HTML page."""
    kind = report.get("report", "match")
    title, header = {"match": _match_header, "stream": _stream_header, "channel": _channel_header}[kind](
        report
    )
    body = [*header]
    if kind != "match":
        body += _audience(report)
    body += _chat(report) + _moderation(report) + _polls(report) + _predictions(report)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[bool] = ()) -> str:
    def cell(tag: str, value: Any, i: int) -> str:
        cls = ' class="n"' if i < len(numeric) and numeric[i] else ""
        return f"<{tag}{cls}>{escape(str(value))}</{tag}>"

    head = "".join(cell("th", h, i) for i, h in enumerate(headers))
    lines = ["<tr>" + "".join(cell("td", v, i) for i, v in enumerate(row)) + "</tr>" for row in rows]
    return f"<table><tr>{head}</tr>{''.join(lines)}</table>"


def _facts(pairs: Iterable[tuple[str, Any]]) -> str:
    return (
        "<table>"
        + "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in pairs)
        + "</table>"
    )


def _match_header(report: Report) -> tuple[str, list[str]]:
    m = report["match"]
    title = f"Match {m['match_id']}: {' vs '.join(m['teams']) or '?'}"
    a = report["audience"]
    streams = _table(
        ["stream", "role", "state", "peak", "average", "chat"],
        [
            [
                s["stream_id"],
                s["role"],
                s["state"],
                number(s["peak_viewers"]),
                number(s["avg_viewers"]),
                number(s["messages"] or 0),
            ]
            for s in report["streams"]
        ],
        [False, False, False, True, True, True],
    )
    return title, [
        f"<h1>{escape(title)}</h1>",
        f"<p class=sub>{escape(m['tournament'] or m['tournament_id'])}, {escape(m['state'])},"
        f" winner {escape(m['winner'] or '-')}</p>",
        _facts([("peak viewers", number(a["peak_viewers"])), ("average viewers", number(a["avg_viewers"]))]),
        "<h2>Streams</h2>",
        streams,
    ]


def _stream_header(report: Report) -> tuple[str, list[str]]:
    s = report["stream"]
    title = f"Stream {s['stream_id']}: {s['title'] or '-'}"
    sub = f"channel {s['channel'] or s['channel_id']}, {s['state']}, from {s['started_at'] or '-'}" + (
        f" to {s['ended_at']} ({duration(s['duration_s'])})" if s["ended_at"] else ""
    )
    return title, [f"<h1>{escape(title)}</h1>", f"<p class=sub>{escape(sub)}</p>"]


def _channel_header(report: Report) -> tuple[str, list[str]]:
    c = report["channel"]
    title = f"Channel {c['slug']}: {c['display_name']}"
    streams = _table(
        ["stream", "started", "live", "peak", "average", "unique", "watch time", "chat"],
        [
            [
                s["stream_id"],
                s["started_at"],
                duration(s["duration_s"]),
                number(s["peak_viewers"]),
                number(s["avg_viewers"]),
                number(s["unique_viewers"]),
                duration(s["watch_time_s"]),
                number(s["messages"]),
            ]
            for s in report["streams"]
        ],
        [False, False, True, True, True, True, True, True],
    )
    return title, [
        f"<h1>{escape(title)}</h1>",
        f"<p class=sub>{len(report['streams'])} streams live from {escape(report['from'])}"
        f" to {escape(report['to'])}</p>",
        "<h2>Streams</h2>",
        streams,
    ]


def _audience(report: Report) -> list[str]:
    a = report["audience"]
    facts = _facts(
        [
            ("peak concurrent viewers", number(a["peak_viewers"])),
            ("average concurrent viewers", number(a["avg_viewers"])),
            ("unique viewers", f"{number(a['unique_viewers'])} ({number(a['signed_in_viewers'])} signed in)"),
            ("views", f"{number(a['views'])} ({number(a['open_views'])} still open)"),
            ("watch time", duration(a["watch_time_s"])),
            ("average view duration", duration(a["avg_view_duration_s"])),
            ("watch time per viewer", duration(a["watch_per_viewer_s"])),
        ]
    )
    concurrent = [(_epoch(p["at"]), float(p["viewers"])) for p in report["concurrent"]]
    retention = [(float(p["minute"]), 100.0 * p["share"]) for p in report["retention"]["points"]]
    return [
        "<h2>Audience</h2>",
        facts,
        line_chart(
            concurrent,
            Chart(title="Concurrent viewers (highest per minute)", x_format=_clock(concurrent)),
            step=True,
            gap=STREAM_GAP_S,
        ),
        line_chart(
            retention,
            Chart(
                title=f"Retention: share of {number(report['retention']['base'])} viewers watching at least"
                " so many minutes",
                x_format=lambda m: f"{m:.0f} min",
                y_format=lambda y: f"{y:.0f}%",
                y_max=100.0,
            ),
        ),
        "<h3>Where viewers came from</h3>",
        _table(
            ["referrer", "unique viewers", "views"],
            [
                (r["referrer"], number(r["viewers"]), number(r["views"]))
                for r in report.get("referrers") or []
            ],
            [False, True, True],
        ),
    ]


def _chat(report: Report) -> list[str]:
    c = report["chat"]
    per_minute = [(_epoch(p["minute"]), float(p["messages"])) for p in c["per_minute"]]
    return [
        "<h2>Chat</h2>",
        _facts(
            [
                ("messages", number(c["messages"])),
                ("chatters", number(c["chatters"])),
                ("messages per chatter", number(c["per_chatter"])),
                ("per minute with chat", number(c["per_minute_avg"])),
                ("per minute live", number(c.get("per_live_minute"))),
                ("busiest minute", f"{c['peak_minute'] or '-'} ({number(c['per_minute_peak'])})"),
            ]
        ),
        bar_chart(
            per_minute, Chart(title="Chat messages per minute", x_format=_clock(per_minute)), bar_width=60
        ),
    ]


def _moderation(report: Report) -> list[str]:
    actions = report["moderation"]
    if not actions:
        return ["<h2>Moderation</h2>", "<p>No moderation actions.</p>"]
    return ["<h2>Moderation</h2>", _table(["action", "count"], actions.items(), [False, True])]


def _polls(report: Report) -> list[str]:
    out = ["<h2>Polls</h2>"] + ([] if report["polls"] else ["<p>No polls.</p>"])
    for poll in report["polls"]:
        final = ", final" if poll["final"] else ""
        out.append(
            f"<p>{escape(poll['question'])} ({escape(poll['status'])}{final}, {poll['total']} votes)</p>"
        )
        rows = [
            [o["option"], number(o["votes"]), f"{o['share']:.0%}" if o["share"] is not None else "-"]
            for o in poll["options"]
        ]
        out.append(_table(["option", "votes", "share"], rows, [False, True, True]))
    return out


def _predictions(report: Report) -> list[str]:
    predictions = report.get("predictions", [])
    out = ["<h2>Predictions</h2>"] + ([] if predictions else ["<p>No predictions.</p>"])
    for p in predictions:
        winner = f", winner {p['winner']}" if p["winner"] else ""
        out.append(
            f"<p>{escape(p['title'])} ({escape(p['status'])}{escape(winner)},"
            f" {number(p['points'])} points)</p>"
        )
        rows = [[o["outcome"], number(o["points"]), number(o["stakers"])] for o in p["outcomes"]]
        out.append(_table(["outcome", "points", "viewers"], rows, [False, True, True]))
    return out


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _clock(points: Sequence[tuple[float, float]]) -> Callable[[float], str]:
    """Times of day (UTC) for a span within a day, dates and times for a longer one."""
    span = points[-1][0] - points[0][0] if points else 0
    pattern = "%H:%M" if span <= 24 * 3600 else "%d %b %H:%M"
    return lambda x: datetime.fromtimestamp(x, tz=UTC).strftime(pattern)
