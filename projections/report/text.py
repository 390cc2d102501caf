"""The reports as text for people (pure: a report dict in, lines out)."""

from __future__ import annotations

from typing import Any

__all__ = ["duration", "number", "render_text", "retention_sample"]

Report = dict[str, Any]
RETENTION_LINES = 11  # the retention curve in text: this many minutes, evenly spread


def number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def duration(seconds: float | None) -> str:
    """``1h 02m 03s``, ``2m 03s``, ``4.5s`` or ``-``."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def retention_sample(points: list[dict[str, Any]], lines: int = RETENTION_LINES) -> list[dict[str, Any]]:
    """At most ``lines`` points of the curve, evenly spread from the first minute to the last."""
    if len(points) <= lines:
        return points
    last = len(points) - 1
    return [points[round(i * last / (lines - 1))] for i in range(lines)]


def render_text(report: Report) -> str:
    """Any report (match, stream or channel) for people."""
    render = {"match": _match, "stream": _stream, "channel": _channel}[report.get("report", "match")]
    return "\n".join(render(report))


def _match(report: Report) -> list[str]:
    m = report["match"]
    lines = [
        f"Match {m['match_id']}: {' vs '.join(m['teams']) or '?'}"
        f" ({m['tournament'] or m['tournament_id']}{', ' + m['round_name'] if m['round_name'] else ''})",
        f"  state {m['state']}, started {m['started_at'] or '-'}, ended {m['ended_at'] or '-'},"
        f" winner {m['winner'] or '-'}",
        f"  audience (all streams, distinct sessions): peak {number(report['audience']['peak_viewers'])},"
        f" average {number(report['audience']['avg_viewers'])}",
        "",
        "Streams",
        f"  {'stream':<24} {'role':<9} {'state':<9} {'peak':>7} {'avg':>9} {'chat':>7} {'per min':>8}",
    ]
    for s in report["streams"]:
        lines.append(
            f"  {s['stream_id']:<24} {s['role']:<9} {s['state']:<9} {number(s['peak_viewers']):>7}"
            f" {number(s['avg_viewers']):>9} {number(s['messages'] or 0):>7} {number(s['per_minute_avg']):>8}"
        )
    return lines + _common(report)


def _stream(report: Report) -> list[str]:
    s = report["stream"]
    channel = s["channel"] or s["channel_id"]
    game = f", {s['game']}" if s["game"] else ""
    lines = [
        f"Stream {s['stream_id']}: {s['title'] or '-'} (channel {channel}{game})",
        f"  state {s['state']}, started {s['started_at'] or '-'}, ended {s['ended_at'] or '-'},"
        f" live {duration(s['duration_s'])}",
    ]
    return lines + _audience(report) + _common(report)


def _channel(report: Report) -> list[str]:
    c = report["channel"]
    lines = [
        f"Channel {c['slug']}: {c['display_name']}",
        f"  {len(report['streams'])} streams live from {report['from']} to {report['to']}",
        "",
        "Streams",
        f"  {'stream':<24} {'started':<26} {'live':>12} {'peak':>7} {'avg':>9} {'unique':>7}"
        f" {'watch time':>14} {'chat':>7}",
    ]
    for s in report["streams"]:
        lines.append(
            f"  {s['stream_id']:<24} {s['started_at'] or '-':<26} {duration(s['duration_s']):>12}"
            f" {number(s['peak_viewers']):>7} {number(s['avg_viewers']):>9} {number(s['unique_viewers']):>7}"
            f" {duration(s['watch_time_s']):>14} {number(s['messages']):>7}"
        )
    return lines + _audience(report) + _common(report)


def _audience(report: Report) -> list[str]:
    a = report["audience"]
    retention = report["retention"]
    lines = [
        "",
        f"Audience: peak {number(a['peak_viewers'])} concurrent, average {number(a['avg_viewers'])}",
        f"  unique viewers {number(a['unique_viewers'])} ({number(a['signed_in_viewers'])} signed in,"
        f" {number(a['anonymous_viewers'])} anonymous), {number(a['views'])} views"
        f" ({number(a['open_views'])} still open)",
        f"  watch time {duration(a['watch_time_s'])}, average view {duration(a['avg_view_duration_s'])},"
        f" per viewer {duration(a['watch_per_viewer_s'])}",
        "",
        f"Retention (share of {number(retention['base'])} viewers who watched at least so long)"
        if retention["points"]
        else "Retention: no ended sessions",
    ]
    for point in retention_sample(retention["points"]):
        percent = f" ({point['percent']:.0f}% of the stream)" if point["percent"] is not None else ""
        lines.append(
            f"  {point['minute']:>5} min{percent:<22} {point['share']:>7.1%}  {number(point['viewers']):>7}"
        )
    referrers = report.get("referrers") or []
    lines += ["", "Where viewers came from (unique viewers, views)" if referrers else "Referrers: none"]
    lines += [f"  {r['referrer']:<32} {number(r['viewers']):>7} {number(r['views']):>7}" for r in referrers]
    return lines


def _common(report: Report) -> list[str]:
    chat = report["chat"]
    live = f", {number(chat['per_live_minute'])} per minute live" if chat.get("per_live_minute") else ""
    chatters = (  # not in reports saved before chatters were counted
        f" from {number(chat['chatters'])} chatters ({number(chat['per_chatter'])} each)"
        if "chatters" in chat
        else ""
    )
    lines = [
        "",
        f"Chat: {number(chat['messages'])} messages{chatters}"
        f" over {chat['active_minutes']} minutes with chat,"
        f" {number(chat['per_minute_avg'])} per minute on average{live},"
        f" busiest {chat['peak_minute'] or '-'} with {number(chat['per_minute_peak'])}",
        "",
        "Moderation actions: "
        + (", ".join(f"{kind} {count}" for kind, count in report["moderation"].items()) or "none"),
        "",
        "Polls" if report["polls"] else "Polls: none",
    ]
    for poll in report["polls"]:
        final = ", final" if poll["final"] else ""
        lines.append(f"  {poll['question']} ({poll['status']}{final}, {poll['total']} votes)")
        for option in poll["options"]:
            share = f"{option['share']:.0%}" if option["share"] is not None else "-"
            lines.append(f"    {option['option']:<20} {option['votes']:>6} {share:>5}")
    predictions = report.get("predictions", [])
    lines += ["", "Predictions" if predictions else "Predictions: none"]
    for p in predictions:
        winner = f", winner {p['winner']}" if p["winner"] else ""
        lines.append(f"  {p['title']} ({p['status']}{winner}, {number(p['points'])} points)")
        for outcome in p["outcomes"]:
            lines.append(
                f"    {outcome['outcome']:<20} {number(outcome['points']):>9} points"
                f" {number(outcome['stakers']):>6} viewers"
            )
    return lines
