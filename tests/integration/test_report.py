"""The analytics views and ``esports report match ID`` against the real stack: after the scripted
match session goes through the projector service, every figure of the report equals the same
figure recomputed here from the published events (an independent recomputation, not the SQL)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import datetime

import pytest

from events.base import Event
from events.chat import (
    ChatCleared,
    ChatMessageAccepted,
    ChatMessageDeleted,
    ChatMessageRestored,
    ChatSettingsChanged,
    UserBanned,
    UserTimedOut,
    UserUnbanned,
)
from events.codec import EventCodec
from events.polls import PollOpened, PollTallyUpdated
from events.viewers import MatchAudienceChanged, ViewerCountChanged
from infra.kafka import EventPublisher
from infra.settings import REPO_ROOT, Settings
from projections.report.command import match_report, render_text
from projections.viewer_counts import bucket_of
from tests.integration.projections_support import read_model, redis_space, running_service, unique_schema
from tests.integration.test_rebuild_support import MATCH, STREAMS, match_session, wait_applied

pytestmark = pytest.mark.integration

ACTIONS = {
    UserBanned: "ban",
    UserUnbanned: "unban",
    UserTimedOut: "timeout",
    ChatMessageDeleted: "delete",
    ChatMessageRestored: "undelete",
    ChatSettingsChanged: "settings",
    ChatCleared: "clear",
}


def time_weighted(counts: list[tuple[datetime, int, int]]) -> tuple[int, float]:
    """(peak, average) of a 10 s series built from (occurred_at, count, peak) the way the
    projector buckets it: highest count per bucket, each bucket holding until the next one."""
    buckets: dict[datetime, int] = {}
    for at, count, _ in counts:
        buckets[bucket_of(at)] = max(buckets.get(bucket_of(at), 0), count)
    starts = sorted(buckets)
    spans = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)] + [10.0]
    average = sum(buckets[s] * span for s, span in zip(starts, spans, strict=True)) / sum(spans)
    return max(max(c, p) for _, c, p in counts), round(average, 1)


def _run_blocking(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)


async def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(_run_blocking, command, env)


def expected(events: list[Event]) -> dict[str, object]:
    chat = [e for e in events if isinstance(e, ChatMessageAccepted)]
    per_minute = Counter(e.occurred_at.replace(second=0, microsecond=0) for e in chat)
    viewers: dict[str, list[tuple[datetime, int, int]]] = defaultdict(list)
    for e in events:
        if isinstance(e, ViewerCountChanged):
            viewers[e.stream_id].append((e.occurred_at, e.count, e.peak))
    audience = [(e.occurred_at, e.count, e.peak) for e in events if isinstance(e, MatchAudienceChanged)]
    tally = [e for e in events if isinstance(e, PollTallyUpdated)][-1]
    opened = next(e for e in events if isinstance(e, PollOpened))
    return {
        "messages": {s: sum(1 for e in chat if e.stream_id == s) for s in STREAMS},
        "per_minute_peak": max(per_minute.values()),
        "active_minutes": len(per_minute),
        "moderation": dict(Counter(ACTIONS[type(e)] for e in events if type(e) in ACTIONS)),
        "viewers": {s: time_weighted(v) for s, v in viewers.items()},
        "audience": time_weighted(audience),
        "poll": (opened.question, list(opened.options), list(tally.counts), tally.total, tally.final),
    }


async def test_report_figures_equal_a_recomputation_from_the_events(
    namespace: Settings, codec: EventCodec
) -> None:
    events = match_session(chat_per_stream=60)
    want = expected(events)
    schema = unique_schema()
    async with (
        EventPublisher(namespace.kafka, codec, producer="tests.report") as publisher,
        read_model(namespace, schema) as pool,
        redis_space(namespace) as (client, prefix),
        running_service(namespace, schema, prefix),
    ):
        positions = await publisher.publish_many(events)
        await wait_applied(pool, client, schema=schema, prefix=prefix, positions=positions)
        report = await match_report(pool, MATCH)

        env = {**os.environ, "ESPORTS_KAFKA__TOPIC_PREFIX": namespace.kafka.topic_prefix}
        command = [sys.executable, "-m", "infra.cli", "report", "match", MATCH, "--schema", schema]
        as_json = await _run([*command, "--format", "json"], env)
        as_text = await _run(command, env)
        missing = await _run([*command[:5], "nope", "--schema", schema], env)

    assert report["match"]["teams"] == ["T1", "G2"] and report["match"]["state"] == "ended"
    streams = {s["stream_id"]: s for s in report["streams"]}
    assert set(streams) == set(STREAMS) and report["streams"][0]["stream_id"] == STREAMS[0]  # main first
    for stream_id, stream in streams.items():
        assert stream["messages"] == want["messages"][stream_id]  # type: ignore[index]
        assert (stream["peak_viewers"], stream["avg_viewers"]) == want["viewers"][stream_id]  # type: ignore[index]
    assert report["chat"]["messages"] == sum(want["messages"].values())  # type: ignore[attr-defined]
    assert report["chat"]["per_minute_peak"] == want["per_minute_peak"]
    assert report["chat"]["active_minutes"] == want["active_minutes"]
    assert report["moderation"] == want["moderation"]
    audience = report["audience"]
    assert (audience["peak_viewers"], audience["avg_viewers"]) == want["audience"]
    [poll] = report["polls"]
    options = [o["option"] for o in poll["options"]]
    votes = [o["votes"] for o in poll["options"]]
    assert (poll["question"], options, votes, poll["total"], poll["final"]) == want["poll"]
    assert poll["status"] == "closed"

    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == report
    assert as_text.returncode == 0, as_text.stderr
    assert as_text.stdout.strip() == render_text(report)
    assert "Who wins?" in as_text.stdout and f"Match {MATCH}: T1 vs G2" in as_text.stdout
    assert missing.returncode == 1 and "no match 'nope'" in missing.stderr
