"""``esports report stream`` and ``esports report channel`` against the real stack: a channel's two
streams (and one outside the range) with viewing sessions (duplicates, ends before starts, a session
ended twice, sessions still open), viewer counts, chat, moderation, polls and a prediction go through
the projector service; every figure of both reports equals the same figure recomputed here from the
published events (not from the SQL); ``esports rebuild`` changes nothing; the three formats print
what the report functions return."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import os
import random
import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from html.parser import HTMLParser
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from events.base import Event
from events.channels import ChannelCreated
from events.chat import ChatMessageAccepted, ChatMessageDeleted, UserBanned, UserTimedOut
from events.codec import EventCodec
from events.points import PredictionOpened, PredictionUpdated
from events.polls import PollOpened, PollTallyUpdated
from events.streams import StreamCreated, StreamEnded, StreamWentLive
from events.viewers import ViewerCountChanged, ViewingSessionEnded, ViewingSessionStarted
from infra.kafka import EventPublisher
from infra.settings import REPO_ROOT, Settings
from projections.rebuild.command import Options, rebuild
from projections.rebuild.progress import Progress
from projections.report.command import channel_report, render_text, stream_report
from projections.viewer_counts import bucket_of
from tests.integration.projections_support import read_model, redis_space, running_service, unique_schema
from tests.integration.test_rebuild_support import wait_applied

pytestmark = pytest.mark.integration

T0 = datetime(2025, 6, 1, 18, 0, tzinfo=UTC)
IDS = uuid.UUID("0b6f3c52-7d0e-4a57-8f7e-1d2c3b4a5f60")
ACTIONS = {UserBanned: "ban", UserTimedOut: "timeout", ChatMessageDeleted: "delete"}


def ms(at: datetime, offset_ms: int) -> datetime:
    return at + timedelta(milliseconds=offset_ms)


@dataclass
class Day:
    """The scripted events, and what the test knows about the streams."""

    run: str
    channel: str = ""
    slug: str = ""
    spans: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)  # stream -> live span
    events: list[Event] = field(default_factory=list)

    @property
    def streams(self) -> list[str]:
        return [f"{self.run}-s1", f"{self.run}-s2"]

    @property
    def outside(self) -> str:
        return f"{self.run}-old"


def scripted_day(seed: int = 21) -> Day:
    rng = random.Random(seed)
    day = Day(run=uuid.uuid4().hex[:8])
    day.channel, day.slug = f"ch-{day.run}", f"team-{day.run}"
    day.events.append(
        ChannelCreated(channel_id=day.channel, owner_id="owner", slug=day.slug, display_name="Team Liquid")
    )
    starts = {
        day.streams[0]: (T0, 40),
        day.streams[1]: (T0 + timedelta(hours=2), 25),
        day.outside: (T0 - timedelta(days=2), 20),
    }
    for stream, (start, minutes) in starts.items():
        end = start + timedelta(minutes=minutes)
        day.spans[stream] = (start, end)
        day.events += [
            StreamCreated(
                stream_id=stream, channel_id=day.channel, owner_id="owner", title=f"Title {stream}"
            ),
            StreamWentLive(stream_id=stream, channel_id=day.channel, started_at=start, causation_id="i"),
        ]
        day.events += _sessions(rng, stream, start, end)
        day.events += _counts(rng, stream, start, end)
        day.events += _chat(rng, stream, start, end)
        day.events.append(StreamEnded(stream_id=stream, channel_id=day.channel, ended_at=end))
    day.events += _poll_and_prediction(day)
    return day


def _id(*parts: object) -> uuid.UUID:
    return uuid.uuid5(IDS, "|".join(map(str, parts)))


def _sessions(rng: random.Random, stream: str, start: datetime, end: datetime) -> list[Event]:
    """Sessions of 12 signed-in users (some with several) and anonymous ones; some left and came back
    with the same session id, some still open. On the log: some starts and ends twice (the same event),
    some ends before their starts, one session ended twice (the later end is the one that counts)."""
    users = [f"user-{n}" for n in range(12)]
    length_ms = int((end - start).total_seconds() * 1000)
    out: list[Event] = []
    for n in range(45):
        session = f"{stream}-session-{n}"
        user = rng.choice(users) if rng.random() < 0.6 else None
        begin = rng.randrange(0, int(length_ms * 0.8))
        rounds = 2 if n % 9 == 0 else 1  # left and came back (a new row)
        for visit in range(rounds):
            first = ms(start, begin)
            watch = rng.randrange(0, length_ms - begin)
            started = ViewingSessionStarted(
                event_id=_id(stream, session, first, "started"),
                session_id=session,
                stream_id=stream,
                started_at=first,
                edge_id=f"edge-{n % 2}",
                user_id=user,
                occurred_at=first,
            )
            ended = ViewingSessionEnded(
                event_id=_id(stream, session, first, "ended"),
                session_id=session,
                stream_id=stream,
                started_at=first,
                ended_at=ms(first, watch),
                watch_ms=watch,
                edge_id=f"edge-{n % 2}",
                user_id=user,
                occurred_at=ms(first, watch),
            )
            roll = rng.random()
            if n % 11 == 5 and visit == rounds - 1:
                out += [started, started]  # still watching (its start twice)
            elif roll < 0.1:
                out += [ended, started]  # the end first
            elif roll < 0.25:
                out += [started, ended, ended]
            elif roll < 0.35:
                out += [started, started, ended]
            elif n % 13 == 3:  # ended twice: an earlier end, then the one a takeover decided later
                early = replace(ended, ended_at=ms(first, watch // 2), watch_ms=watch // 2)
                out += [started, early, ended, early]
            else:
                out += [started, ended]
            begin = min(begin + watch + rng.randrange(1_000, 60_000), length_ms - 2)
    return out


def _counts(rng: random.Random, stream: str, start: datetime, end: datetime) -> list[Event]:
    out: list[Event] = []
    peak, at = 0, start
    while at < end:
        count = rng.randrange(5, 300)
        peak = max(peak, count)
        out.append(ViewerCountChanged(stream_id=stream, count=count, peak=peak, occurred_at=at))
        at += timedelta(seconds=rng.randrange(5, 90))
    return out


def _chat(rng: random.Random, stream: str, start: datetime, end: datetime) -> list[Event]:
    chatters = [f"chatter-{n}" for n in range(7)]
    length_ms = int((end - start).total_seconds() * 1000)
    out: list[Event] = []
    for n in range(rng.randrange(30, 60)):
        message = ChatMessageAccepted(
            message_id=f"{stream}-m{n}",
            stream_id=stream,
            user_id=rng.choice(chatters),
            display_name="Chatter",
            text=f"gg {n}",
            occurred_at=ms(start, rng.randrange(0, length_ms)),
        )
        out.append(message)
        if n % 10 == 3:
            out.append(ChatMessageDeleted(message_id=message.message_id, stream_id=stream, deleted_by="mod"))
        if n % 15 == 7:
            until = message.occurred_at + timedelta(seconds=60)
            timeout = UserTimedOut(
                stream_id=stream, user_id=message.user_id, actor_id="mod", duration_s=60, until=until
            )
            out.append(timeout)
        if n % 25 == 9:
            out.append(UserBanned(stream_id=stream, user_id=message.user_id, actor_id="mod", reason="spam"))
    return out


def _poll_and_prediction(day: Day) -> list[Event]:
    s1, s2 = day.streams
    return [
        PollOpened(
            poll_id=f"{day.run}-poll",
            stream_id=s1,
            question="Best map?",
            options=("Ascent", "Bind"),
            opened_by="mod",
            closes_at=T0 + timedelta(minutes=10),
            occurred_at=T0 + timedelta(minutes=5),
        ),
        PollTallyUpdated(poll_id=f"{day.run}-poll", stream_id=s1, counts=(7, 5), total=12, final=True),
        PredictionOpened(
            prediction_id=f"{day.run}-pred",
            stream_id=s2,
            channel_id=day.channel,
            title="Who wins round 1?",
            outcomes=("Blue", "Red"),
            locks_at=T0 + timedelta(hours=2, minutes=5),
            opened_by="owner",
        ),
        PredictionUpdated(
            prediction_id=f"{day.run}-pred",
            stream_id=s2,
            status="resolved",
            pools=(1500, 700),
            stakers=(9, 4),
            winning_outcome=0,
            settled=True,
        ),
    ]


# --- the independent recomputation ---------------------------------------------------------------


def sessions_of(events: list[Event], streams: list[str]) -> dict[tuple[str, str, datetime], dict[str, Any]]:
    """Every session row: its viewer, and its watch time from the latest of its ends (None: open)."""
    rows: dict[tuple[str, str, datetime], dict[str, Any]] = {}
    for e in events:
        if isinstance(e, ViewingSessionStarted | ViewingSessionEnded) and e.stream_id in streams:
            row = rows.setdefault(
                (e.stream_id, e.session_id, e.started_at),
                {
                    "viewer": ("u", e.user_id) if e.user_id else ("s", e.session_id),
                    "end": None,
                    "watch": None,
                },
            )
            if isinstance(e, ViewingSessionEnded) and (row["end"] is None or e.ended_at > row["end"]):
                row["end"], row["watch"] = e.ended_at, e.watch_ms
    return rows


def half_up(value: float | Decimal, places: int) -> float:
    return float(Decimal(value).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def expected_audience(day: Day, streams: list[str]) -> dict[str, Any]:
    rows = sessions_of(day.events, streams)
    viewers = {(s, r["viewer"]) for (s, _, _), r in rows.items()}
    unique = {v for _, v in viewers}
    ended = [r for r in rows.values() if r["end"] is not None]
    watch = sum(r["watch"] for r in ended)
    watched = {(s, r["viewer"]) for (s, _, _), r in rows.items() if r["end"] is not None}
    buckets = {s: buckets_of(day.events, s) for s in streams}
    spans = [(v, span) for s in streams for v, span in spans_of(buckets[s])]
    return {
        "peak_viewers": max(max(peak for _, peak in b.values()) for b in buckets.values()),
        "avg_viewers": half_up(
            Decimal(sum(v * span for v, span in spans)) / sum(span for _, span in spans), 1
        ),
        "unique_viewers": len(unique),
        "signed_in_viewers": sum(1 for kind, _ in unique if kind == "u"),
        "anonymous_viewers": sum(1 for kind, _ in unique if kind == "s"),
        "views": len(rows),
        "open_views": len(rows) - len(ended),
        "watch_time_s": watch / 1000,
        "avg_view_duration_s": round(watch / len(ended) / 1000, 1),
        "watch_per_viewer_s": round(watch / len(watched) / 1000, 1),
    }


def buckets_of(events: list[Event], stream: str) -> dict[datetime, tuple[int, int]]:
    """The 10 s buckets of the stream's counts: (highest count, highest peak) of each."""
    out: dict[datetime, tuple[int, int]] = {}
    for e in events:
        if isinstance(e, ViewerCountChanged) and e.stream_id == stream:
            held = out.get(bucket_of(e.occurred_at), (0, 0))
            out[bucket_of(e.occurred_at)] = (max(held[0], e.count), max(held[1], e.peak, e.count))
    return out


def spans_of(buckets: dict[datetime, tuple[int, int]]) -> list[tuple[int, int]]:
    """(viewers, seconds held) of each bucket: until the next one, the last for 10 s."""
    starts = sorted(buckets)
    spans = [int((b - a).total_seconds()) for a, b in itertools.pairwise(starts)] + [10]
    return [(buckets[s][0], span) for s, span in zip(starts, spans, strict=True)]


def expected_concurrent(day: Day, streams: list[str]) -> list[dict[str, Any]]:
    per_minute: Counter[datetime] = Counter()
    for s in streams:
        highest: dict[datetime, int] = {}
        for bucket, (viewers, _) in buckets_of(day.events, s).items():
            minute = bucket.replace(second=0)
            highest[minute] = max(highest.get(minute, 0), viewers)
        per_minute.update(highest)
    return [{"at": m, "viewers": n} for m, n in sorted(per_minute.items())]


def expected_retention(day: Day, streams: list[str]) -> dict[str, Any]:
    """Per stream: each viewer's watch time over their ended sessions; at minute m, the viewers with at
    least m minutes (a watch longer than the stream counts as the stream); shares over all streams."""
    counts: Counter[int] = Counter()
    base = 0
    percents: dict[int, float] = {}
    for s in streams:
        start, end = day.spans[s]
        seconds = (end - start).total_seconds()
        minutes = int(seconds // 60)
        watch: dict[Any, int] = defaultdict(int)
        for row in sessions_of(day.events, [s]).values():
            if row["end"] is not None:
                watch[row["viewer"]] += row["watch"]
        base += len(watch)
        for m in range(minutes + 1):
            counts[m] += sum(1 for w in watch.values() if min(w // 60_000, minutes) >= m)
            percents[m] = half_up(Decimal(100 * m * 60) / Decimal(seconds), 1)
    return {
        "base": base,
        "points": [
            {
                "minute": m,
                "viewers": counts[m],
                "share": round(counts[m] / base, 4),
                "percent": percents[m] if len(streams) == 1 else None,
            }
            for m in sorted(counts)
        ],
    }


def expected_chat(day: Day, streams: list[str]) -> dict[str, Any]:
    chat = [e for e in day.events if isinstance(e, ChatMessageAccepted) and e.stream_id in streams]
    per_minute = Counter(e.occurred_at.replace(second=0, microsecond=0) for e in chat)
    chatters = {e.user_id for e in chat}
    live_s = sum((day.spans[s][1] - day.spans[s][0]).total_seconds() for s in streams)
    peak = max(sorted(per_minute), key=lambda m: per_minute[m])
    return {
        "messages": len(chat),
        "chatters": len(chatters),
        "per_chatter": round(len(chat) / len(chatters), 2),
        "active_minutes": len(per_minute),
        "per_minute_avg": round(len(chat) / len(per_minute), 2),
        "per_live_minute": round(len(chat) / (live_s / 60), 2),
        "peak_minute": peak,
        "per_minute_peak": per_minute[peak],
        "per_minute": [{"minute": m, "messages": n} for m, n in sorted(per_minute.items())],
    }


def expected_moderation(day: Day, streams: list[str]) -> dict[str, int]:
    kinds = (
        ACTIONS[type(e)] for e in day.events if type(e) in ACTIONS and getattr(e, "stream_id", "") in streams
    )
    return dict(Counter(kinds))


def with_times(value: Any) -> Any:
    """The report with its ISO times parsed back (a time zone shown either way compares equal)."""
    if isinstance(value, dict):
        return {k: with_times(v) for k, v in value.items()}
    if isinstance(value, list):
        return [with_times(v) for v in value]
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] == "T":
        return datetime.fromisoformat(value)
    return value


def covered(day: Day) -> None:
    """The script has what the projector must get right: the same event twice, an end before its
    start, two different ends of one session, open sessions, viewers with several sessions."""
    sessions = [e for e in day.events if isinstance(e, ViewingSessionStarted | ViewingSessionEnded)]
    ids = Counter(e.event_id for e in sessions)
    assert sum(1 for n in ids.values() if n > 1) > 10
    assert len({e for e in sessions if isinstance(e, ViewingSessionEnded)}) > len(
        {e.event_id for e in sessions if isinstance(e, ViewingSessionEnded)}
    )
    seen: set[uuid.UUID] = set()
    for e in sessions:
        seen.add(e.event_id)
        if (
            isinstance(e, ViewingSessionEnded)
            and _id(e.stream_id, e.session_id, e.started_at, "started") not in seen
        ):
            break
    else:
        raise AssertionError("no end before its start")
    rows = sessions_of(day.events, day.streams)
    assert any(r["end"] is None for r in rows.values())
    per_viewer = Counter((stream, r["viewer"]) for (stream, _, _), r in rows.items())
    assert any(n > 1 and viewer[0] == "u" for (_, viewer), n in per_viewer.items())
    assert any(n > 1 and viewer[0] == "s" for (_, viewer), n in per_viewer.items())  # came back


def check(report: dict[str, Any], day: Day, streams: list[str]) -> None:
    parsed = with_times(report)
    assert parsed["audience"] == expected_audience(day, streams)
    assert parsed["concurrent"] == expected_concurrent(day, streams)
    assert parsed["retention"] == expected_retention(day, streams)
    assert parsed["chat"] == expected_chat(day, streams)
    assert parsed["moderation"] == expected_moderation(day, streams)


# --- the formats ---------------------------------------------------------------------------------


class Page(HTMLParser):
    """What an HTML page holds: its tags, and every attribute value."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: Counter[str] = Counter()
        self.attributes: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        self.attributes += [f"{name}={value}" for name, value in attrs]


def check_page(text: str, title: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    assert page.tags["html"] == 1 and page.tags["svg"] == 3 and page.tags["path"] >= 2
    assert title in text
    assert page.tags["script"] == 0 and page.tags["link"] == 0 and page.tags["img"] == 0
    lowered = text.lower()
    for external in ("http:", "https:", "//", "url(", "src=", "href=", "@import"):
        assert external not in lowered, external
    return page


def _run_blocking(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)


async def esports_report(schema: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "infra.cli", "report", *args, "--schema", schema]
    return await asyncio.to_thread(_run_blocking, command, dict(os.environ))


async def rows_of(pool: AsyncConnectionPool) -> list[tuple[Any, ...]]:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT * FROM viewing_sessions ORDER BY stream_id, session_id, started_at")
        return await cur.fetchall()


@pytest.mark.timeout(180)
async def test_stream_and_channel_reports_equal_a_recomputation_from_the_events(
    namespace: Settings, codec: EventCodec
) -> None:
    day = scripted_day()
    schema = unique_schema()
    start, end = (T0 - timedelta(hours=1)).isoformat(), "2025-06-02"
    async with (
        EventPublisher(namespace.kafka, codec, producer="tests.reports") as publisher,
        read_model(namespace, schema) as pool,
        redis_space(namespace) as (client, prefix),
        running_service(namespace, schema, prefix),
    ):
        positions = await publisher.publish_many(day.events)
        await wait_applied(pool, client, schema=schema, prefix=prefix, positions=positions)
        first = await stream_report(pool, day.streams[0])
        second = await stream_report(pool, day.streams[1])
        channel = await channel_report(
            pool, day.slug, T0 - timedelta(hours=1), datetime(2025, 6, 2, tzinfo=UTC)
        )
        rows = await rows_of(pool)

        options = Options(names=("postgres",), schema=schema, redis_prefix=prefix, batch_size=7, processes=1)
        await rebuild(namespace, options, Progress(io.StringIO(), quiet=True))
        assert await rows_of(pool) == rows
        assert await stream_report(pool, day.streams[0]) == first
        assert (
            await channel_report(pool, day.slug, T0 - timedelta(hours=1), datetime(2025, 6, 2, tzinfo=UTC))
            == channel
        )

        channel_args = ["channel", day.slug, "--from", start, "--to", end]
        as_json = await esports_report(schema, "stream", day.streams[0], "--format", "json")
        as_text = await esports_report(schema, "stream", day.streams[0])
        as_html = await esports_report(schema, "stream", day.streams[0], "--format", "html")
        channel_json = await esports_report(schema, *channel_args, "--format", "json")
        channel_text = await esports_report(schema, *channel_args)
        channel_html = await esports_report(schema, *channel_args, "--format", "html")
        no_stream = await esports_report(schema, "stream", "nope")
        no_channel = await esports_report(schema, "channel", "nope", "--from", start, "--to", end)
        no_range = await esports_report(schema, "channel", day.slug)
        bad_time = await esports_report(schema, "channel", day.slug, "--from", "yesterday", "--to", end)

    assert len(rows) == len(sessions_of(day.events, [*day.streams, day.outside]))
    covered(day)
    for report, stream in ((first, day.streams[0]), (second, day.streams[1])):
        assert report["report"] == "stream" and report["stream"]["channel"] == day.slug
        assert report["stream"]["duration_s"] == (day.spans[stream][1] - day.spans[stream][0]).total_seconds()
        check(report, day, [stream])
    assert first["polls"][0]["question"] == "Best map?" and [
        o["votes"] for o in first["polls"][0]["options"]
    ] == [7, 5]
    [prediction] = second["predictions"]
    assert (prediction["winner"], prediction["points"], prediction["status"]) == ("Blue", 2200, "resolved")
    assert [o["stakers"] for o in prediction["outcomes"]] == [9, 4]

    assert [s["stream_id"] for s in channel["streams"]] == day.streams  # not the one outside the range
    check(channel, day, day.streams)
    assert [p["poll_id"] for p in channel["polls"]] == [f"{day.run}-poll"]
    assert [p["prediction_id"] for p in channel["predictions"]] == [f"{day.run}-pred"]
    for row, single in zip(channel["streams"], (first, second), strict=True):
        assert row["unique_viewers"] == single["audience"]["unique_viewers"]
        assert row["watch_time_s"] == single["audience"]["watch_time_s"]
        assert row["peak_viewers"] == single["audience"]["peak_viewers"]
        assert row["messages"] == single["chat"]["messages"]
    # A viewer of both streams is one unique viewer of the channel.
    both = expected_audience(day, day.streams)["unique_viewers"]
    assert both < first["audience"]["unique_viewers"] + second["audience"]["unique_viewers"]

    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == first
    assert as_text.returncode == 0 and as_text.stdout.strip() == render_text(first)
    assert f"Stream {day.streams[0]}" in as_text.stdout and "Retention" in as_text.stdout
    assert as_html.returncode == 0, as_html.stderr
    check_page(as_html.stdout, f"Stream {day.streams[0]}")
    assert channel_json.returncode == 0 and json.loads(channel_json.stdout) == channel
    assert channel_text.returncode == 0 and channel_text.stdout.strip() == render_text(channel)
    assert channel_html.returncode == 0
    page = check_page(channel_html.stdout, f"Channel {day.slug}")
    assert page.tags["rect"] == len(channel["chat"]["per_minute"])  # a bar per minute with chat

    assert no_stream.returncode == 1 and "no stream 'nope'" in no_stream.stderr and not no_stream.stdout
    assert no_channel.returncode == 1 and "no channel 'nope'" in no_channel.stderr
    assert no_range.returncode == 2 and "--from and --to" in no_range.stderr
    assert bad_time.returncode == 2 and "not an ISO 8601" in bad_time.stderr
