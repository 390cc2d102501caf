"""A match's combined audience (pure), and the ack-after-store batcher the merge agents use."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from edge_ws.messages import delivery_for
from edge_ws.protocol import LogPosition
from events.ids import IdSpace
from events.viewers import ViewerCountChanged
from stream_processors.batching import Batcher
from stream_processors.viewers.counts import ViewerPresence, count_id, epoch_ms, observe_partial
from stream_processors.viewers.match_audience import settle_match

T0 = epoch_ms(datetime(2026, 1, 1, tzinfo=UTC))


def test_a_match_audience_is_decided_from_its_partials_with_its_own_ids() -> None:
    state = observe_partial(observe_partial(ViewerPresence(audience_id="m1"), 0, 2, T0), 1, 1, T0)
    state, audience = settle_match(state, 0)
    assert audience is not None
    assert (audience.match_id, audience.count, audience.peak, audience.average) == ("m1", 3, 3, 3.0)
    assert audience.event_id == count_id("m1", T0, IdSpace.MATCH_AUDIENCE)
    assert audience.event_id != count_id("m1", T0, IdSpace.VIEWER_COUNT)  # never a stream count's id
    assert settle_match(observe_partial(state, 0, 2, T0), 0)[1] is None  # reported again: nothing new
    state, fallen = settle_match(observe_partial(state, 0, 0, T0 + 30_000), 0)
    assert fallen is not None and (fallen.count, fallen.peak) == (1, 3)


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
