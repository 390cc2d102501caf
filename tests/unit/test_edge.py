"""The edge's pure parts: protocol parsing, framing, history windows, the hub with fake peers, limits,
and the presence batches heartbeats are published in."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from edge_ws.commands import MAX_BEATS, PRODUCER, HeartbeatBatch, Presence, presence_batches
from edge_ws.fanout import FanoutHub
from edge_ws.history import StreamHistory, resume_without_history
from edge_ws.limits import AddressCap, TokenBucket
from edge_ws.messages import Route, delivery_for
from edge_ws.metrics import Metrics
from edge_ws.protocol import LogPosition, Moderate, ProtocolError, SendChat, Subscribe, parse, text_frame
from events.base import Event
from events.chat import ChatMessageAccepted, ChatMessageRejected, RejectionReason
from events.viewers import ViewerCountChanged, ViewerPresenceBatch
from infra.kafka import Position, partition_of_key


def p(offset: int, partition: int = 0) -> LogPosition:
    return LogPosition(partition, offset)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{nope", "bad_request"),
        ("[1]", "bad_request"),
        ('{"type": "dance"}', "bad_request"),
        ('{"type": "subscribe"}', "bad_request"),
        ('{"type": "subscribe", "stream": "a b"}', "bad_request"),
        ('{"type": "subscribe", "stream": "s", "since": "x"}', "bad_request"),
        ('{"type": "chat", "stream": "s", "text": "  ", "nonce": "n"}', "invalid_message"),
        ('{"type": "chat", "stream": "s", "text": "' + "x" * 11 + '", "nonce": "n"}', "too_long"),
        ('{"type": "chat", "stream": "s", "text": "hi"}', "bad_request"),
        ('{"type": "vote", "stream": "s", "poll": "p"}', "bad_request"),
        ('{"type": "mod", "stream": "s", "action": "nuke"}', "bad_request"),
    ],
)
def test_bad_frames_are_protocol_errors(frame: str, code: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        parse(frame, max_text=10)
    assert raised.value.code == code


def test_good_frames_parse() -> None:
    assert parse('{"type": "subscribe", "stream": "s-1", "since": "2:40"}', max_text=10) == Subscribe(
        "s-1", p(40, 2)
    )
    chat = parse('{"type": "chat", "stream": "s", "text": "hi", "nonce": "n1"}', max_text=10)
    assert chat == SendChat("s", "hi", "n1")
    referred = parse('{"type": "subscribe", "stream": "s-1", "referrer": "twitter.com"}', max_text=10)
    assert referred == Subscribe("s-1", None, "twitter.com")


@pytest.mark.parametrize("referrer", ["https://twitter.com/x", "Twitter.com", "", "a b", 5, "x" * 200])
def test_a_referrer_is_a_host_name_or_nothing(referrer: object) -> None:
    with pytest.raises(ProtocolError) as raised:
        parse(json.dumps({"type": "subscribe", "stream": "s-1", "referrer": referrer}), max_text=10)
    assert raised.value.code == "bad_request"


def test_a_subscribe_says_whether_its_page_hides_results() -> None:
    def subscribe(**fields: object) -> object:
        return parse(json.dumps({"type": "subscribe", "stream": "s-1", **fields}), max_text=10)

    assert subscribe(spoilers="hide") == Subscribe("s-1", None, spoilers_hidden=True)
    assert subscribe(spoilers="show") == subscribe() == Subscribe("s-1", None, spoilers_hidden=False)
    for wrong in ("HIDE", "", True, None):
        with pytest.raises(ProtocolError, match="spoilers must be hide or show"):
            subscribe(spoilers=wrong)


LINKS = {"action": "link_policy", "link_policy": "allowlist"}


@pytest.mark.parametrize(
    "frame",
    [
        {"action": "block_term"},
        {"action": "block_term", "term": 5},
        {"action": "ban", "user": "u", "term": "x"},
        {"action": "link_policy", "link_policy": "some"},
        LINKS,
        {"action": "link_policy", "link_policy": "deny", "link_allowlist": ["a.io"]},
        {**LINKS, "link_allowlist": "a.io"},
        {**LINKS, "link_allowlist": ["-a"]},
        {**LINKS, "link_allowlist": ["a.io"] * 51},
        {"action": "unique_chat"},
        {"action": "unique_chat", "enabled": 1},
        {"action": "clear", "enabled": True},
    ],
)
def test_rule_fields_must_fit_the_action(frame: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as raised:
        parse(json.dumps({"type": "mod", "stream": "s", **frame}), max_text=10)
    assert raised.value.code == "bad_request"


def test_rule_actions_parse_with_their_fields() -> None:
    def mod(**frame: Any) -> object:
        return parse(json.dumps({"type": "mod", "stream": "s", **frame}), max_text=10)

    assert mod(action="block_term", term="gg ez", nonce="n") == Moderate("s", "block_term", "n", term="gg ez")
    assert mod(**LINKS, link_allowlist=[" Clips.Twitch.TV "]) == Moderate(
        "s", "link_policy", link_policy="allowlist", link_allowlist=("clips.twitch.tv",)
    )
    assert mod(action="unique_chat", enabled=False) == Moderate("s", "unique_chat", enabled=False)


def test_error_keeps_the_nonce() -> None:
    with pytest.raises(ProtocolError) as raised:
        parse('{"type": "chat", "stream": "s", "text": "", "nonce": "n9"}', max_text=10)
    assert raised.value.nonce == "n9"


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_text_frame_header(size: int) -> None:
    frame = text_frame(b"a" * size)
    assert frame[0] == 0x81 and frame.endswith(b"a" * size)
    length = frame[1] & 0x7F
    header = {126: 4, 127: 10}.get(length, 2)
    assert len(frame) == header + size


def test_history_resumes_exactly_and_reloads_when_evicted() -> None:
    history = StreamHistory(3, floor=p(9))
    for offset in (10, 12, 15, 20):
        assert history.append(p(offset), str(offset).encode())
    assert not history.append(p(20), b"again")  # redelivery
    assert history.floor == p(10)
    assert history.since(p(12)).missed == (b"15", b"20")
    assert history.since(p(10)).missed == (b"12", b"15", b"20")
    assert history.since(p(9)).reload
    assert history.since(p(12, partition=1)).reload
    assert history.since(p(25)).missed == ()
    assert history.recent(2) == [b"15", b"20"]


def test_resume_without_history_uses_the_partition_start() -> None:
    assert not resume_without_history(p(99), {0: 100}).reload
    assert resume_without_history(p(50), {0: 100}).reload
    assert resume_without_history(p(50, partition=3), {0: 100}).reload


@dataclass(eq=False)
class FakePeer:
    user_id: str | None = None
    open: bool = True
    frames: list[bytes] = field(default_factory=list)

    @property
    def ws(self) -> Any:
        raise NotImplementedError

    def fits(self) -> bool:
        return self.open

    def write_frame(self, frame: bytes) -> None:
        self.frames.append(frame)

    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(f[4:] if f[1] == 126 else f[2:]) for f in self.frames]


AT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def chat(offset: int, stream: str = "s") -> Any:
    # A fixed occurred_at: the same message built twice must encode to the same bytes (with the
    # clock's default, a millisecond passing between two builds made the comparison flaky).
    event = ChatMessageAccepted(
        message_id=f"m{offset}", stream_id=stream, user_id="u", display_name="u", text="t", occurred_at=AT
    )
    return delivery_for(event, p(offset))


async def test_hub_backfills_then_delivers_each_message_once_with_one_frame() -> None:
    metrics = Metrics()
    hub = FanoutHub(metrics, history_per_stream=10, backfill=2)
    hub.partition_starts = {0: 0}
    for offset in (1, 2, 3):
        await hub.apply(chat(offset))
    await hub.apply(delivery_for(ViewerCountChanged(stream_id="s", count=5, peak=9), p(7)))
    peers = [FakePeer(), FakePeer()]
    for peer in peers:
        hub.subscribe(peer, "s", None)
    await hub.apply(chat(4))
    for peer in peers:
        kinds = [(m["type"], m.get("id")) for m in peer.messages()]
        assert kinds == [("count", None), ("chat", "m2"), ("chat", "m3"), ("state", None), ("chat", "m4")]
    assert peers[0].frames[-1] is peers[1].frames[-1]  # framed once, the same bytes for both
    assert metrics.deliveries == 2


async def test_hub_skips_what_a_client_from_a_faster_node_already_has() -> None:
    hub = FanoutHub(Metrics(), history_per_stream=10, backfill=5)
    hub.partition_starts = {0: 0}
    await hub.apply(chat(1))
    peer = FakePeer()
    hub.subscribe(peer, "s", p(3))  # it saw offset 3 elsewhere; this node has read only 1
    for offset in (2, 3, 4):
        await hub.apply(chat(offset))
    assert [m.get("id") for m in peer.messages() if m["type"] == "chat"] == ["m4"]


async def test_direct_deliveries_reach_only_that_user() -> None:
    hub = FanoutHub(Metrics(), history_per_stream=10, backfill=5)
    author, other = FakePeer(), FakePeer()
    hub.identify(author, "u-1")
    hub.identify(other, "u-2")
    rejected = ChatMessageRejected(
        message_id="m", stream_id="s", user_id="u-1", reason=RejectionReason.BANNED
    )
    delivery = delivery_for(rejected, p(3))
    assert delivery is not None and delivery.route is Route.DIRECT
    await hub.apply(delivery)
    assert [m["code"] for m in author.messages()] == ["rejected"] and other.frames == []


def test_token_bucket_and_address_cap() -> None:
    bucket = TokenBucket(rate=1.0, burst=2, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [True, True, False]
    assert bucket.take(1.0)
    cap = AddressCap(1)
    cap.opened("1.2.3.4")
    assert cap.full("1.2.3.4") and not cap.full("5.6.7.8")
    cap.closed("1.2.3.4")
    assert not cap.full("1.2.3.4")


def test_metrics_exposition() -> None:
    metrics = Metrics(deliveries=7)
    metrics.delivered([int(time.time() * 1000) - 30])  # published 30 ms ago
    metrics.command_duration.labels("chat").observe(0.004)
    text = metrics.prometheus('node"1')
    assert 'esports_edge_deliveries_total{node="node\\"1"} 7.0' in text
    assert "# TYPE esports_edge_connections gauge" in text
    assert 'esports_edge_delivery_latency_seconds_bucket{le="0.025",node="node\\"1"} 0.0' in text
    assert 'esports_edge_delivery_latency_seconds_bucket{le="1.0",node="node\\"1"} 1.0' in text
    assert (
        'esports_edge_command_duration_seconds_bucket{command="chat",le="0.005",node="node\\"1"} 1.0' in text
    )
    assert metrics.as_dict()["deliveries"] == 7 and "registry" not in metrics.as_dict()


async def test_a_batch_is_one_write_per_subscriber_in_log_order() -> None:
    metrics = Metrics()
    hub = FanoutHub(metrics, history_per_stream=10, backfill=0)
    hub.partition_starts = {0: 0}
    peer = FakePeer()
    hub.subscribe(peer, "s", None)
    await hub.apply_batch([chat(1), chat(2), chat(3)])
    assert len(peer.frames) == 2  # the subscribed marker, then one write with three frames
    assert peer.frames[1] == b"".join(text_frame(chat(i).payload) for i in (1, 2, 3))
    assert metrics.deliveries == 3


def presence(sessions: int, streams: int = 1) -> dict[tuple[str, str], tuple[str | None, str | None]]:
    """``sessions`` sessions each watching ``streams`` streams; every third one signed in (and from
    twitter.com)."""
    return {
        (f"stream-{s}", f"session-{n}"): (f"u-{n}", "twitter.com") if n % 3 == 0 else (None, None)
        for n in range(sessions)
        for s in range(streams)
    }


def beats_of(
    batches: Sequence[ViewerPresenceBatch],
) -> Counter[tuple[str, str, tuple[str | None, str | None]]]:
    return Counter(
        (b.stream_id, b.session_id, (b.user_id, b.referrer)) for batch in batches for b in batch.beats
    )


def on_one_partition(batch: ViewerPresenceBatch, partitions: int) -> bool:
    home = partition_of_key(batch.shard_key.encode(), partitions)
    return all(partition_of_key(b.session_id.encode(), partitions) == home for b in batch.beats)


@pytest.mark.parametrize(("sessions", "streams", "partitions"), [(1, 1, 3), (40, 2, 3), (2600, 1, 6)])
def test_presence_batches_lose_nothing_and_sit_on_their_sessions_partition(
    sessions: int, streams: int, partitions: int
) -> None:
    seen = presence(sessions, streams)
    batches = presence_batches(seen, partitions, edge_id="edge-1", seen_at=AT)
    assert beats_of(batches) == Counter((stream, session, user) for (stream, session), user in seen.items())
    assert all(on_one_partition(batch, partitions) for batch in batches)
    assert all(batch.shard_key == batch.beats[0].session_id for batch in batches)
    assert all(0 < len(batch.beats) <= MAX_BEATS for batch in batches)
    assert {(b.edge_id, b.producer, b.occurred_at) for b in batches} == {("edge-1", PRODUCER, AT)}


def test_presence_batches_are_one_per_partition_until_max_beats() -> None:
    seen = presence(2600)
    batches = presence_batches(seen, 3, edge_id="edge-1", seen_at=AT)
    per_partition = Counter(partition_of_key(s.encode(), 3) for _, s in seen)
    records = Counter(partition_of_key(b.shard_key.encode(), 3) for b in batches)
    assert records == {p: -(-n // MAX_BEATS) for p, n in per_partition.items()}  # ceil(n / MAX_BEATS)


@pytest.mark.parametrize(
    ("sessions", "sizes"), [(0, []), (500, [500]), (501, [500, 1]), (1000, [500, 500]), (1001, [500, 500, 1])]
)
def test_presence_batches_split_at_max_beats(sessions: int, sizes: list[int]) -> None:
    batches = presence_batches(presence(sessions), 1, edge_id="edge-1", seen_at=AT)
    assert [len(b.beats) for b in batches] == sizes


def test_presence_batches_honour_a_smaller_max() -> None:
    batches = presence_batches(presence(10), 1, edge_id="e", seen_at=AT, max_beats=4)
    assert [len(b.beats) for b in batches] == [4, 4, 2]
    assert [b.shard_key for b in batches] == ["session-0", "session-4", "session-8"]


class PresencePublisher:
    """Stands in for the broker: a topic of ``partitions`` partitions, every publish_many call kept."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.calls: list[list[Event]] = []

    async def partitions_of(self, event_type: type[Event]) -> int:
        assert event_type is ViewerPresenceBatch
        return self.partitions

    async def publish_many(self, events: Sequence[Event]) -> list[Position]:
        self.calls.append(list(events))
        return [Position("viewers.presence", 0, n) for n, _ in enumerate(events)]


async def test_a_flush_publishes_every_batch_in_one_call_and_counts_beats() -> None:
    publisher, metrics = PresencePublisher(3), Metrics()
    fake: Any = publisher
    heartbeats = HeartbeatBatch(fake, "edge-1", metrics, interval_s=5.0)
    seen: Presence = presence(1200, streams=2)
    for (stream, session), (user, referrer) in seen.items():
        heartbeats.record(stream, session, "stale-user")
        heartbeats.record(stream, session, user, referrer)  # the last heartbeat of an interval wins
    assert await heartbeats.flush() == 2400 and metrics.published == 2400
    [published] = publisher.calls
    batches = [e for e in published if isinstance(e, ViewerPresenceBatch)]
    assert len(batches) == len(published)
    assert beats_of(batches) == Counter((stream, session, user) for (stream, session), user in seen.items())
    assert len({b.occurred_at for b in batches}) == 1  # one flush, one moment every beat was seen at
    assert await heartbeats.flush() == 0 and len(publisher.calls) == 1  # nothing seen: nothing sent
