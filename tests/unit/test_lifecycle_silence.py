"""The silence rule: a live stream whose serving ingest session stopped reporting ends (ingest_timeout).

The pure side (:func:`decide` with ``silence``, :func:`expire`), the sweep of the lifecycle processor
with fakes, and the sweep's clock per partition (:class:`ReadPositions`).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from events.codec import EventCodec
from events.ids import IdSpace
from events.ingest import IngestConnected, IngestDisconnected, IngestHealthReported, IngestProtocol
from events.streams import (
    StreamCreated,
    StreamEnded,
    StreamEndReason,
    StreamTransitionRejected,
    StreamUpdated,
    StreamWentLive,
)
from schemas import SCHEMAS_DIR
from stream_processors.lifecycle.agent import LifecycleProcessor
from stream_processors.lifecycle.decisions import (
    SignOfLife,
    StreamLifecycle,
    StreamState,
    decide,
    expire,
    stream_id_of,
)
from stream_processors.lifecycle.silence import ReadPositions
from stream_processors.metrics import ProcessorMetrics

T0 = datetime(2025, 6, 1, 18, 0, tzinfo=UTC)
SILENCE = timedelta(seconds=30)
SID = "stream-1"
CODEC = EventCodec.load(SCHEMAS_DIR)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def connected(session: str, node: str, seconds: float) -> IngestConnected:
    return IngestConnected(
        stream_id=SID, session_id=session, protocol=IngestProtocol.RTMP, node=node, occurred_at=at(seconds)
    )


def report(session: str, seconds: float, **kw: Any) -> IngestHealthReported:
    return IngestHealthReported(
        stream_id=SID,
        session_id=session,
        input_bitrate_kbps=2500.0,
        fps=30.0,
        encoder_speed=1.0,
        dropped_frames=0,
        restarts=0,
        occurred_at=at(seconds),
        **kw,
    )


CREATED = StreamLifecycle(stream_id=SID, state=StreamState.CREATED, channel_id="chan-1")


def live_on_a() -> tuple[StreamLifecycle, IngestConnected]:
    """Live from node A's session "a", connected at 0 s."""
    connect = connected("a", "node-a:1935", 0)
    state, [went] = decide(CREATED, connect, SILENCE)
    assert isinstance(went, StreamWentLive)
    return state, connect


def fold(state: StreamLifecycle, *events: Any) -> tuple[StreamLifecycle, list[Any]]:
    decided: list[Any] = []
    for event in events:
        state, decisions = decide(state, event, SILENCE)
        decided.extend(decisions)
    return state, decided


def test_going_live_hears_the_connect_of_the_serving_node() -> None:
    state, connect = live_on_a()
    assert (state.session_id, state.node) == ("a", "node-a:1935")
    assert state.heard == SignOfLife(event_id=str(connect.event_id), occurred_at=at(0), trace_id="")


def test_a_silent_stream_ends_at_the_timer_once_the_silence_is_over() -> None:
    state, _ = live_on_a()
    last = report("a", 10, trace_id="t-10")
    state, none = fold(state, report("a", 5), last)
    assert none == [] and state.heard is not None and state.heard.event_id == str(last.event_id)
    assert expire(state, at(40), SILENCE) == (state, [])  # 30 s after the last report: not yet
    ended, [end] = expire(state, at(40.5), SILENCE)
    assert isinstance(end, StreamEnded) and end.reason is StreamEndReason.INGEST_TIMEOUT
    assert end.event_id == uuid.uuid5(IdSpace.LIFECYCLE.value, f"{last.event_id}:StreamEnded")
    assert (end.causation_id, end.trace_id) == (str(last.event_id), "t-10")
    assert (end.ended_at, end.occurred_at, end.duration_ms) == (at(10), at(10), 10_000)
    assert (ended.state, ended.ended_at, ended.ended_cause) == (StreamState.ENDED, at(10), str(last.event_id))
    assert expire(ended, at(99), SILENCE) == (ended, [])  # ended once
    assert expire(state, at(400), SILENCE) == (ended, [end])  # however late the timer: the same end


def test_reports_of_the_serving_session_keep_the_stream_live() -> None:
    state, _ = live_on_a()
    state, decided = fold(state, *(report("a", s) for s in range(5, 300, 5)))
    assert decided == [] and state.state is StreamState.LIVE
    assert expire(state, at(325), SILENCE) == (state, [])
    assert expire(state, at(326), SILENCE)[0].state is StreamState.ENDED


def test_the_event_path_and_the_timer_decide_the_identical_end() -> None:
    state, _ = live_on_a()
    state, _ = fold(state, report("a", 10))
    _, by_timer = expire(state, at(45), SILENCE)
    late = report("a", 45)  # a node frozen for 35 s that reports again: too late, on the event path
    after, by_event = decide(state, late, SILENCE)
    assert by_event == by_timer and after.state is StreamState.ENDED
    assert decide(after, late, SILENCE) == (after, [])  # redelivered: nothing more


def test_only_ingest_events_are_clocks_for_the_event_path() -> None:
    state, _ = live_on_a()
    # `streams` is read interleaved with `ingest`, ahead of it: its times say nothing of the reports
    update = StreamUpdated(stream_id=SID, updated_by="u", title="x", occurred_at=at(500))
    still, none = decide(state, update, SILENCE)
    assert none == [] and still.state is StreamState.LIVE
    ended, [end, refused] = decide(still, connected("c", "node-c:1937", 500), SILENCE)
    assert isinstance(end, StreamEnded) and end.reason is StreamEndReason.INGEST_TIMEOUT
    assert isinstance(refused, StreamTransitionRejected) and refused.current_state == "ended"
    assert ended.state is StreamState.ENDED


def test_a_reconnect_on_another_node_goes_on_and_the_silence_follows_it() -> None:
    state, _ = live_on_a()
    state, _ = fold(state, report("a", 5))
    # node A dies silently at ~6 s; the publisher reconnects to node B at 12 s
    b_connect = connected("b", "node-b:1936", 12)
    on_b, none = decide(state, b_connect, SILENCE)
    assert none == [] and on_b.state is StreamState.LIVE
    assert (on_b.session_id, on_b.node, on_b.live_since) == ("b", "node-b:1936", at(0))
    assert on_b.heard is not None and on_b.heard.event_id == str(b_connect.event_id)
    assert expire(on_b, at(40), SILENCE) == (on_b, [])  # A's last report is 35 s old: B counts now
    on_b, decided = fold(on_b, report("b", 17), report("b", 22))
    assert decided == [] and expire(on_b, at(52), SILENCE) == (on_b, [])
    # A's session reporting still (a node cut off, not dead) keeps nothing alive
    zombie, nothing = fold(on_b, report("a", 30), report("a", 50))
    assert nothing == [] and zombie == on_b
    ended, [end] = expire(zombie, at(52.5), SILENCE)
    assert isinstance(end, StreamEnded) and end.ended_at == at(22) and ended.state is StreamState.ENDED
    # a late disconnect of A's replaced session never ends B's stream
    assert decide(on_b, IngestDisconnected(stream_id=SID, session_id="a", occurred_at=at(30)), SILENCE) == (
        on_b,
        [],
    )


def test_reports_are_not_remembered_as_causes_and_redeliveries_change_nothing() -> None:
    state, connect = live_on_a()
    first = report("a", 5)
    heard, _ = decide(state, first, SILENCE)
    assert heard.recent_causes == state.recent_causes and heard != state
    assert decide(heard, first, SILENCE) == (heard, [])
    assert decide(heard, report("a", 4), SILENCE) == (heard, [])  # older than what was heard
    # the live session's connect redelivered (out of the recent window) does not hear it again
    forgetful = replace(heard, recent_causes=())
    assert decide(forgetful, connect, SILENCE) == (forgetful, [])


def test_without_a_silence_nothing_ends_by_silence() -> None:
    state, _ = live_on_a()
    late = connected("b", "node-b:1936", 3600)
    assert decide(state, late)[1] == []
    assert decide(state, report("a", 3600))[0].state is StreamState.LIVE


def test_reports_read_before_the_creation_count_once_the_stream_goes_live() -> None:
    early = connected("a", "node-a:1935", 0)
    state, decided = fold(StreamLifecycle(stream_id=SID), early, report("a", 5), report("other", 6))
    assert decided == [] and state.state is StreamState.UNKNOWN
    creation = StreamCreated(stream_id=SID, channel_id="chan-1", owner_id="u", title="t", occurred_at=at(-1))
    live, [went] = decide(state, creation, SILENCE)
    assert isinstance(went, StreamWentLive) and went.causation_id == str(early.event_id)
    assert live.heard is not None and live.heard.occurred_at == at(5) and live.node == "node-a:1935"
    assert expire(live, at(35), SILENCE) == (live, [])


def test_the_state_with_its_sign_of_life_survives_its_json_form_and_older_states_read() -> None:
    state, _ = live_on_a()
    assert StreamLifecycle.from_json(json.loads(json.dumps(state.to_json()))) == state
    stored = state.to_json()
    del stored["heard"], stored["node"]
    older = StreamLifecycle.from_json(stored)
    assert older == replace(state, heard=None, node="")
    assert expire(older, at(3600), SILENCE) == (older, [])  # waits for its next report
    assert decide(older, report("a", 3600), SILENCE)[0].heard is not None


def test_health_reports_are_read_and_the_end_encodes_with_its_schema() -> None:
    assert stream_id_of(report("a", 1)) == SID
    state, _ = live_on_a()
    _, [end] = expire(state, at(31), SILENCE)
    assert CODEC.decode(CODEC.encode(end)) == end


# ---------------------------------------------------------------------------- the processor's sweep


class FakeTable(dict[bytes, Any]):
    """A dict with what a sweep uses of a Faust table outside an event: .data and send_changelog."""

    def __init__(self) -> None:
        super().__init__()
        self.changelog: list[tuple[int, bytes, Any]] = []

    @property
    def data(self) -> FakeTable:
        return self

    def send_changelog(self, partition: int, key: bytes, value: Any) -> None:
        self.changelog.append((partition, key, value))


class FakePublishing:
    def __init__(self) -> None:
        self.published: list[Any] = []
        self.publisher = self

    async def publish_many(self, events: list[Any]) -> None:
        self.published.extend(events)


def sweeper() -> tuple[LifecycleProcessor, FakePublishing, FakeTable]:
    table, publishing = FakeTable(), FakePublishing()
    processor = LifecycleProcessor(
        CODEC,
        publishing,  # type: ignore[arg-type]
        table,
        ProcessorMetrics(),
        silence=SILENCE,
        partitions=1,
    )
    return processor, publishing, table


async def test_a_sweep_ends_the_silent_live_streams_of_its_partitions_and_stores_them() -> None:
    processor, publishing, table = sweeper()
    state, _ = live_on_a()
    table[SID.encode()] = state.to_json()
    table[b"created"] = replace(CREATED, stream_id="created").to_json()
    await processor.sweep({0: at(20)})
    assert publishing.published == [] and table.changelog == []
    await processor.sweep({1: at(60)})  # a partition this table does not hold: nothing
    assert publishing.published == []
    await processor.sweep({0: at(60)})
    [end] = publishing.published
    assert isinstance(end, StreamEnded) and end.reason is StreamEndReason.INGEST_TIMEOUT
    assert StreamLifecycle.from_json(table[SID.encode()]).state is StreamState.ENDED
    assert [(p, k) for p, k, _ in table.changelog] == [(0, SID.encode())]
    await processor.sweep({0: at(90)})
    assert len(publishing.published) == 1  # ended once


def message(topic: str, partition: int, offset: int, timestamp: float) -> SimpleNamespace:
    return SimpleNamespace(topic=topic, partition=partition, offset=offset, timestamp=timestamp)


@pytest.mark.parametrize(
    ("read", "end", "committed", "want"),
    [
        (None, None, None, None),  # no fetch yet: the end is unknown
        (None, 0, None, 1000.0),  # an empty partition is read to its end
        (None, 10, 10, 1000.0),  # everything committed: read to its end (a quiet partition)
        (None, 10, 4, None),  # behind, and nothing read yet: no clock
        ((9, 500.0), 10, 4, 1000.0),  # the last record read: at the end
        ((5, 500.0), 10, 4, 500.0),  # behind: as far as the last record read
    ],
)
def test_a_partition_clock_is_the_wall_clock_at_its_end_else_its_last_record(
    read: tuple[int, float] | None, end: int | None, committed: int | None, want: float | None
) -> None:
    positions = ReadPositions()
    if read is not None:
        positions.handled(message("ingest", 0, read[0], read[1]))
    assert positions.clock(TP("ingest", 0), end, committed, 1000.0) == want
    positions.forget()
    assert positions.clock(TP("ingest", 0), 10, 4, 1000.0) is None
