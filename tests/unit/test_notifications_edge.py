"""The edge pushes a notification once per node, even when the agent publishes it again."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from edge_ws import fanout
from edge_ws.fanout import FanoutHub
from edge_ws.messages import Route, delivery_for
from edge_ws.metrics import Metrics
from edge_ws.protocol import LogPosition
from events.chat import ChatMessageRejected, RejectionReason
from events.notifications import NotificationIssued, NotificationKind
from tests.unit.edge_peers import Peer


def issued(notification_id: str, user_id: str = "u-1") -> NotificationIssued:
    return NotificationIssued(
        notification_id=notification_id,
        user_id=user_id,
        kind=NotificationKind.STREAM_LIVE,
        causation_id="c",
        title="LEC is live",
        url="/live/s-1",
        body="Final",
    )


def hub_with(*users: str) -> tuple[FanoutHub, dict[str, Peer]]:
    hub = FanoutHub(Metrics(), history_per_stream=10, backfill=5)
    peers = {user: Peer() for user in users}
    for user, peer in peers.items():
        hub.identify(peer, user)
    return hub, peers


async def test_a_republished_notification_is_pushed_once() -> None:
    hub, peers = hub_with("u-1", "u-2")
    for offset in (3, 9):  # the same notification at two offsets: an agent restart republished it
        delivery = delivery_for(issued("n-1"), LogPosition(0, offset))
        assert delivery is not None and delivery.route is Route.DIRECT
        await hub.apply(delivery)
    await hub.apply_batch([d for d in [delivery_for(issued("n-1"), LogPosition(0, 12))] if d])
    messages = peers["u-1"].messages()
    assert [(m["code"], m["id"], m["pos"]) for m in messages] == [("notification", "n-1", "0:3")]
    assert messages[0]["title"] == "LEC is live" and messages[0]["url"] == "/live/s-1"
    assert peers["u-2"].frames == [] and hub.duplicates_dropped == 2


async def test_distinct_notifications_and_other_direct_messages_all_arrive() -> None:
    hub, peers = hub_with("u-1")
    for n, notification in enumerate(("n-1", "n-2")):
        delivery = delivery_for(issued(notification), LogPosition(0, n))
        assert delivery is not None
        await hub.apply(delivery)
    rejected = ChatMessageRejected(
        message_id="m", stream_id="s", user_id="u-1", reason=RejectionReason.BANNED
    )
    for offset in (5, 6):  # no once key: every direct chat message is sent (they differ by position)
        delivery = delivery_for(rejected, LogPosition(1, offset))
        assert delivery is not None
        await hub.apply(delivery)
    assert [m.get("id") or m["code"] for m in peers["u-1"].messages()] == ["n-1", "n-2", "m", "m"]


async def test_the_once_keys_are_bounded(monkeypatch: Any) -> None:
    monkeypatch.setattr(fanout, "RECENT_ONCE_KEYS", 3)
    hub, peers = hub_with("u-1")
    for n in range(5):  # n-0 and n-1 fall out of the window
        delivery = delivery_for(issued(f"n-{n}"), LogPosition(0, n))
        assert delivery is not None
        await hub.apply(delivery)
    again = [delivery_for(issued(f"n-{n}"), LogPosition(0, 10 + n)) for n in (0, 4)]
    for delivery in again:
        assert delivery is not None
        await hub.apply(delivery)
    ids = [m["id"] for m in peers["u-1"].messages()]
    assert ids == ["n-0", "n-1", "n-2", "n-3", "n-4", "n-0"]


async def test_a_fresh_node_does_not_push_the_backlog_it_warm_starts_with() -> None:
    started = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
    hub = FanoutHub(Metrics(), history_per_stream=10, backfill=5, started_ms=int(started.timestamp() * 1000))
    peer = Peer()
    hub.identify(peer, "u-1")
    grace = timedelta(milliseconds=fanout.BACKLOG_GRACE_MS)
    for n, at in enumerate((started - grace - timedelta(seconds=1), started - grace, started + grace)):
        delivery = delivery_for(replace(issued(f"n-{n}"), occurred_at=at), LogPosition(0, n))
        assert delivery is not None
        await hub.apply(delivery)
    assert [m["id"] for m in peer.messages()] == ["n-1", "n-2"]  # n-0 was its old node's to push
