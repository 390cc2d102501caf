"""A match's combined audience (pure), and the ack-after-store batcher both count agents use."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from edge_ws.messages import delivery_for
from edge_ws.protocol import LogPosition
from events.viewers import ViewerCountChanged, ViewerHeartbeat
from stream_processors.batching import Batcher
from stream_processors.viewers.counts import (
    NAMESPACE,
    WINDOW_MS,
    ViewerPresence,
    count_id,
    epoch_ms,
    observe,
    settle,
)
from stream_processors.viewers.match_audience import MATCH_NAMESPACE, observe_match, settle_match

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def beat(stream: str, session: str, at_s: float = 0.0) -> ViewerHeartbeat:
    return ViewerHeartbeat(
        stream_id=stream, session_id=session, edge_id="edge-a", occurred_at=T0 + timedelta(seconds=at_s)
    )


def test_a_viewer_of_two_streams_of_a_match_counts_once_in_the_match_and_once_in_each() -> None:
    beats = [beat("main", "alice"), beat("pov", "alice"), beat("main", "bob"), beat("pov", "carol")]
    _, main = settle(observe(ViewerPresence(audience_id="main"), beats), 0)
    _, pov = settle(observe(ViewerPresence(audience_id="pov"), beats), 0)
    match, audience = settle_match(observe_match(ViewerPresence(audience_id="m1"), beats), 0)
    assert main is not None and pov is not None and audience is not None
    assert (main.count, pov.count, audience.count) == (2, 2, 3)
    assert (audience.match_id, audience.peak, audience.average) == ("m1", 3, 3.0)
    assert audience.event_id == count_id("m1", epoch_ms(T0), MATCH_NAMESPACE)
    assert audience.event_id != count_id("m1", epoch_ms(T0), NAMESPACE)  # never a stream count's id
    assert settle_match(observe_match(match, beats), 0)[1] is None  # forwarded again: nothing new


def test_the_match_audience_falls_after_the_window() -> None:
    state = observe_match(ViewerPresence(audience_id="m1"), [beat("main", "a"), beat("pov", "b", 20)])
    state, _ = settle_match(state, 0)
    state, fallen = settle_match(state, epoch_ms(T0) + WINDOW_MS + 1)
    assert fallen is not None and (fallen.count, fallen.peak) == (1, 2)
    state, empty = settle_match(state, epoch_ms(T0) + 20_000 + WINDOW_MS + 1_000)
    assert empty is not None and empty.count == 0 and set(state.sessions) == set()


@dataclass
class Event:
    message: int


class FakeStream:
    """Records acks (Faust's stream.ack) in order."""

    def __init__(self) -> None:
        self.acked: list[int] = []

    async def ack(self, event: Event) -> None:
        self.acked.append(event.message)


class Recorder:
    def __init__(self, stream: FakeStream) -> None:
        self.stream = stream
        self.batches: list[list[int]] = []
        self.acked_before: list[int] = []

    async def handle_batch(self, messages: Sequence[Any]) -> None:
        self.acked_before.append(len(self.stream.acked))
        await asyncio.sleep(0)  # a publish in between
        self.batches.append(list(messages))


async def test_a_full_batch_is_processed_then_acked_in_log_order() -> None:
    stream = FakeStream()
    recorder = Recorder(stream)
    batcher = Batcher(recorder, max_records=3, within_s=60)
    for offset in range(7):
        await batcher.add(stream, Event(offset))
    assert recorder.batches == [[0, 1, 2], [3, 4, 5]]
    assert recorder.acked_before == [0, 3]  # nothing of a batch is acked before it was processed
    assert stream.acked == [0, 1, 2, 3, 4, 5]


async def test_the_last_records_of_a_burst_are_processed_without_any_timer() -> None:
    """The batcher flushes a due batch itself: a Faust timer does not fire while the consumer
    waits for acks on shutdown, and the worker hung there."""
    stream = FakeStream()
    recorder = Recorder(stream)
    batcher = Batcher(recorder, max_records=100, within_s=0.01)
    for offset in range(3):
        await batcher.add(stream, Event(offset))
    assert stream.acked == []
    for _ in range(500):
        if stream.acked == [0, 1, 2]:
            break
        await asyncio.sleep(0.01)
    assert recorder.batches == [[0, 1, 2]] and stream.acked == [0, 1, 2]


def test_the_edge_count_frame_carries_the_average() -> None:
    changed = ViewerCountChanged(stream_id="s-42", count=1204, peak=1730, average=987.5)
    delivery = delivery_for(changed, LogPosition(1, 880))
    assert delivery is not None
    frame = json.loads(delivery.payload)
    assert (frame["type"], frame["stream"], frame["pos"]) == ("count", "s-42", "1:880")
    assert (frame["count"], frame["peak"], frame["average"]) == (1204, 1730, 987.5)
