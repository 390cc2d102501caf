"""Who watched a set of streams (one stream, a channel's streams in a range), and for how long.

Concurrent viewers come from the 10 s counts (``viewer_counts``, through ``viewer_count_spans``):
the peak, the time-weighted average, and a series of the highest count per minute (summed over the
streams). Unique viewers, views, watch time, view durations and the retention curve come from the
viewing sessions (``viewing_sessions`` and its views in migration 0018, which define each figure):

- a **viewer** is a signed-in user, or an anonymous session; over several streams a viewer counts
  once for the unique viewers;
- **watch time** adds up the ended sessions (first to last heartbeat); the **average view duration**
  divides it by the ended sessions (views), the **watch time per viewer** by the viewers with one;
- the **retention curve** gives, at each minute *m*, the share of viewers who watched a stream for
  at least *m* minutes in all (``stream_retention``); over several streams, the share of (stream,
  viewer) pairs, so a stream of the channel weighs as much as it had viewers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from projections.report.sections import Cur, Row, fetch_all, fetch_one

__all__ = ["audience_figures", "audience_sections", "combined_retention"]

CONCURRENCY = """
SELECT max(peak) AS peak_viewers, round(sum(viewers * span_s) / nullif(sum(span_s), 0), 1) AS avg_viewers
FROM viewer_count_spans WHERE stream_id = ANY(%s)
"""
CONCURRENT_SERIES = """
SELECT minute AS at, sum(viewers)::int AS viewers
FROM (
    SELECT stream_id, date_trunc('minute', bucket) AS minute, max(viewers) AS viewers
    FROM viewer_counts WHERE stream_id = ANY(%s) GROUP BY stream_id, date_trunc('minute', bucket)
) AS per_stream
GROUP BY minute ORDER BY minute
"""
STREAM_AUDIENCE = """
SELECT stream_id, unique_viewers, views, ended_views, open_views, watch_ms, watched_viewers
FROM stream_audience WHERE stream_id = ANY(%s)
"""
UNIQUE_VIEWERS = """
SELECT count(DISTINCT viewer)::int AS unique_viewers,
       count(DISTINCT viewer) FILTER (WHERE user_id IS NOT NULL)::int AS signed_in_viewers
FROM viewing_sessions WHERE stream_id = ANY(%s)
"""
REFERRERS = """
SELECT coalesce(referrer, 'unknown') AS referrer, count(DISTINCT viewer)::int AS viewers,
       count(*)::int AS views
FROM viewing_sessions WHERE stream_id = ANY(%s)
GROUP BY 1 ORDER BY viewers DESC, referrer
"""
RETENTION = """
SELECT stream_id, minute, viewers, base, percent FROM stream_retention WHERE stream_id = ANY(%s)
ORDER BY minute, stream_id
"""


async def audience_sections(cur: Cur, streams: Sequence[str]) -> dict[str, Any]:
    """``audience`` (figures), ``concurrent`` (viewers per minute), ``retention`` and ``referrers`` (unique
    viewers and views per referrer) over ``streams``."""
    ids = (list(streams),)
    concurrency = await fetch_one(cur, CONCURRENCY, ids) or {}
    per_stream = await fetch_all(cur, STREAM_AUDIENCE, ids)
    unique = await fetch_one(cur, UNIQUE_VIEWERS, ids) or {}
    return {
        "audience": audience_figures(concurrency, per_stream, unique),
        "concurrent": await fetch_all(cur, CONCURRENT_SERIES, ids),
        "retention": combined_retention(await fetch_all(cur, RETENTION, ids)),
        # where viewers came from (the referrer their player knew on their first visit to a stream:
        # a host, site or direct; unknown from players and edges that did not say)
        "referrers": await fetch_all(cur, REFERRERS, ids),
    }


def audience_figures(concurrency: Row, per_stream: Sequence[Row], unique: Row) -> Row:
    """The audience over some streams from their concurrency, their ``stream_audience`` rows and their
    distinct viewers (pure). Times in seconds (exact to the millisecond; averages to 0.1 s)."""
    views = sum(row["views"] for row in per_stream)
    ended = sum(row["ended_views"] for row in per_stream)
    watch_ms = sum(row["watch_ms"] for row in per_stream)
    watched = sum(row["watched_viewers"] for row in per_stream)
    unique_viewers = unique.get("unique_viewers") or 0
    signed_in = unique.get("signed_in_viewers") or 0
    return {
        "peak_viewers": concurrency.get("peak_viewers"),
        "avg_viewers": concurrency.get("avg_viewers"),
        "unique_viewers": unique_viewers,
        "signed_in_viewers": signed_in,
        "anonymous_viewers": unique_viewers - signed_in,
        "views": views,
        "open_views": views - ended,
        "watch_time_s": watch_ms / 1000,
        "avg_view_duration_s": round(watch_ms / ended / 1000, 1) if ended else None,
        "watch_per_viewer_s": round(watch_ms / watched / 1000, 1) if watched else None,
    }


def combined_retention(rows: Sequence[Row]) -> Row:
    """One retention curve from the ``stream_retention`` rows of some streams (pure): at each minute,
    the viewers who watched at least that long, over all the streams' viewers with an ended session
    (``base``). ``percent`` (of the stream's duration) only for one stream."""
    bases = {row["stream_id"]: row["base"] for row in rows}
    base = sum(bases.values())
    viewers: dict[int, int] = {}
    percent: dict[int, Any] = {}
    for row in rows:
        viewers[row["minute"]] = viewers.get(row["minute"], 0) + row["viewers"]
        percent[row["minute"]] = row["percent"] if len(bases) == 1 else None
    points = [
        {"minute": m, "viewers": n, "share": round(n / base, 4), "percent": percent[m]}
        for m, n in sorted(viewers.items())
    ]
    return {"base": base, "points": points}
