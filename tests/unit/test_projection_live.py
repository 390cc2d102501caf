"""The Redis live-state reducer: forward-only states, convergent whatever the topics' interleaving."""

from __future__ import annotations

import itertools
from datetime import timedelta

from events.base import Event
from events.streams import (
    StreamCreated,
    StreamEnded,
    StreamEndRequested,
    StreamScheduled,
    StreamUpdated,
    StreamWentLive,
)
from events.topics import topic_for
from projections import live
from projections.live import LiveKeys, next_hash
from tests.unit.event_samples import SAMPLE_TIME

T0 = SAMPLE_TIME
CREATED = StreamCreated(stream_id="s", channel_id="c", owner_id="o", title="Final", game="lol")
UPDATED = StreamUpdated(stream_id="s", updated_by="o", title="Grand final", game=None)
SCHEDULED = StreamScheduled(stream_id="s", channel_id="c", scheduled_start=T0)
LIVE = StreamWentLive(stream_id="s", channel_id="c", started_at=T0 + timedelta(minutes=1))
ENDED = StreamEnded(stream_id="s", channel_id="c", ended_at=T0 + timedelta(hours=1))


def fold(events: list[Event]) -> dict[str, str]:
    stream: dict[str, str] = {}
    for event in events:
        stream = next_hash(stream, event)
    return stream


def test_a_whole_broadcast() -> None:
    assert fold([CREATED, UPDATED, SCHEDULED, LIVE, ENDED]) == {
        "state": "ended",
        "title": "Grand final",
        "game": "lol",
        "channel_id": "c",
        "started_at": "2025-06-01T18:31:15.123+00:00",
        "ended_at": "2025-06-01T19:30:15.123+00:00",
        "viewers": "0",
    }


def test_every_interleaving_of_the_two_topics_gives_the_same_hash() -> None:
    requests, decisions = [CREATED, UPDATED, SCHEDULED], [LIVE, ENDED]
    expected = fold(requests + decisions)
    for slots in itertools.combinations(range(5), len(decisions)):
        merged, r, d = [], iter(requests), iter(decisions)
        merged = [next(d) if i in slots else next(r) for i in range(5)]
        assert fold(merged) == expected, merged


def test_redelivered_decisions_change_nothing_even_after_the_end() -> None:
    ended = fold([CREATED, LIVE, ENDED])
    assert fold([CREATED, LIVE, ENDED, LIVE, ENDED]) == ended
    assert fold([CREATED, LIVE, LIVE]) == fold([CREATED, LIVE])


def test_a_reschedule_keeps_the_state_scheduled_and_requests_change_nothing() -> None:
    assert fold([CREATED, SCHEDULED, SCHEDULED])["state"] == "scheduled"
    before = fold([CREATED, LIVE])
    assert next_hash(before, StreamEndRequested(stream_id="s", channel_id="c", requested_by="o")) == before


def test_keys_and_topics() -> None:
    keys = LiveKeys("ns:")
    assert (keys.live, keys.stream("s1"), keys.offsets) == (
        "ns:{redis.live}live:streams",
        "ns:{redis.live}stream:s1",
        "ns:{redis.live}offsets:redis.live",
    )
    assert all(topic_for(event_type).name in live.TOPICS for event_type in live.CHANGES)
