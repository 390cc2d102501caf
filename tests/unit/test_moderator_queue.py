"""The moderators' held queue: its projection plan, the edge's moderator route, and moderator passes."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from edge_ws.auth import InvalidToken, TokenCheck
from edge_ws.fanout import FanoutHub
from edge_ws.messages import Route, delivery_for, moderator_delivery_for
from edge_ws.metrics import Metrics
from edge_ws.protocol import LogPosition, ProtocolError, WatchHeld, parse
from edge_ws.reader import pump
from events.chat import (
    ChatChannelSynced,
    ChatMessageAccepted,
    ChatMessageHeld,
    ChatMessageRejected,
    RejectionReason,
)
from infra.kafka import ConsumedEvent, Position
from infra.moderator_passes import ModeratorPasses
from infra.settings import AuthSettings
from infra.tokens import AccessTokens
from projections.held_queue import plan_held
from tests.unit.edge_peers import Peer

SECRET = "s" * 40
NOW = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)


def held(message_id: str = "m-1", at: datetime | None = None) -> ChatMessageHeld:
    return ChatMessageHeld(
        message_id=message_id,
        stream_id="s-1",
        user_id="u-7",
        display_name="Ana",
        text="spoi ler",
        score=0.7,
        reasons=("obfuscated_term",),
        occurred_at=at or datetime.now(UTC),
    )


def approved(message_id: str = "m-1", by: str | None = "mod") -> ChatMessageAccepted:
    return ChatMessageAccepted(
        message_id=message_id, stream_id="s-1", user_id="u-7", display_name="Ana", text="x", approved_by=by
    )


def denied(message_id: str = "m-1") -> ChatMessageRejected:
    return ChatMessageRejected(
        message_id=message_id,
        stream_id="s-1",
        user_id="u-7",
        reason=RejectionReason.DENIED,
        detail="no spoilers",
        denied_by="owner",
    )


def test_plan_keeps_holds_and_the_first_resolution_of_each_message() -> None:
    holds, resolutions = plan_held([held("m-1"), held("m-1"), approved("m-1"), denied("m-1"), denied("m-2")])
    assert [h.message_id for h in holds] == ["m-1"]
    assert [(r[0], r[3], r[4], r[6]) for r in resolutions] == [
        ("m-1", "approved", "mod", ""),
        ("m-2", "denied", "owner", "no spoilers"),
    ]


def test_plan_ignores_what_is_not_a_hold_or_a_moderators_decision() -> None:
    rule_rejection = ChatMessageRejected(
        message_id="m-3", stream_id="s-1", user_id="u-7", reason=RejectionReason.SPAM
    )
    assert plan_held([approved("m-3", by=None), rule_rejection]) == ([], [])


async def test_held_messages_reach_the_streams_moderators_and_never_its_viewers() -> None:
    hub = FanoutHub(Metrics(), history_per_stream=10, backfill=5)
    moderator, viewer, author, other_stream_mod = Peer(), Peer(), Peer(), Peer()
    hub.identify(author, "u-7")
    for peer in (moderator, viewer, author):
        hub.subscribe(peer, "s-1", None)
    hub.watch_held(moderator, "s-1")
    hub.watch_held(other_stream_mod, "s-2")
    before = {id(p): len(p.frames) for p in (moderator, viewer, author, other_stream_mod)}
    events = [(held(), 1), (approved(), 2)]
    deliveries = [
        d
        for e, o in events
        for d in (delivery_for(e, LogPosition(0, o)), moderator_delivery_for(e, LogPosition(0, o)))
        if d
    ]
    await hub.apply_batch(deliveries)

    def new(peer: Peer) -> list[dict[str, Any]]:
        return peer.messages()[before[id(peer)] :]

    assert [(m["type"], m["id"]) for m in new(moderator)] == [
        ("held", "m-1"),
        ("resolved", "m-1"),
        ("chat", "m-1"),
    ]
    assert new(moderator)[0]["text"] == "spoi ler" and new(moderator)[0]["reasons"] == ["obfuscated_term"]
    assert new(moderator)[1]["outcome"] == "approved" and new(moderator)[1]["by"] == "mod"
    assert [m["type"] for m in new(viewer)] == ["chat"]  # the approved message, never the held one
    assert [(m["type"], m.get("code")) for m in new(author)] == [("notice", "held"), ("chat", None)]
    assert "spoi ler" not in json.dumps(new(author)[0])
    assert new(other_stream_mod) == []


async def test_a_moderator_who_leaves_gets_no_more_held_messages() -> None:
    hub = FanoutHub(Metrics(), history_per_stream=10, backfill=5)
    moderator = Peer()
    hub.watch_held(moderator, "s-1")
    hub.leave(moderator, [])
    delivery = moderator_delivery_for(held(), LogPosition(0, 1))
    assert delivery is not None and delivery.route is Route.MODERATORS
    await hub.apply_batch([delivery])
    assert moderator.frames == [] and hub.moderators == {}


async def test_what_was_held_before_the_node_started_is_not_pushed() -> None:
    hub = FanoutHub(Metrics(), history_per_stream=10, backfill=5, started_ms=int(NOW.timestamp() * 1000))
    moderator = Peer()
    hub.watch_held(moderator, "s-1")
    old = moderator_delivery_for(held("m-old", NOW - timedelta(hours=1)), LogPosition(0, 1))
    assert old is not None
    await hub.apply_batch([old])
    assert moderator.frames == []


def test_a_denial_reaches_moderators_with_its_reason() -> None:
    delivery = moderator_delivery_for(denied(), LogPosition(2, 5))
    assert delivery is not None
    message = json.loads(delivery.payload)
    assert (message["type"], message["outcome"], message["by"], message["reason"]) == (
        "resolved",
        "denied",
        "owner",
        "no spoilers",
    )


def test_a_moderator_pass_verifies_for_its_user_and_stream_only() -> None:
    auth = AuthSettings(jwt_secret=SECRET)
    passes = ModeratorPasses(SECRET, issuer=auth.jwt_issuer, audience=auth.jwt_audience)
    check = TokenCheck(auth)
    granted = check.verify_pass(passes.issue("u-9", "s-1"))
    assert (granted.user_id, granted.stream_id) == ("u-9", "s-1")
    access = AccessTokens(SECRET, issuer=auth.jwt_issuer, audience=auth.jwt_audience, ttl_s=60)
    with pytest.raises(InvalidToken):
        check.verify_pass(access.issue("u-9", "admin"))  # an access token is not a pass
    with pytest.raises(InvalidToken):
        check.verify(passes.issue("u-9", "s-1"))  # nor a pass an access token
    with pytest.raises(InvalidToken):
        check.verify_pass(passes.issue("u-9", "s-1", now=0))  # expired
    forged = ModeratorPasses("f" * 40, issuer=auth.jwt_issuer, audience=auth.jwt_audience)
    with pytest.raises(InvalidToken):
        check.verify_pass(forged.issue("u-9", "s-1"))


def test_the_moderate_frame_needs_a_stream_and_a_pass() -> None:
    command = parse('{"type": "moderate", "stream": "s-1", "pass": "abc", "nonce": "n1"}', max_text=500)
    assert command == WatchHeld("s-1", "abc", "n1")
    with pytest.raises(ProtocolError):
        parse('{"type": "moderate", "stream": "s-1"}', max_text=500)


class _Reader:
    """Stands in for the edge's Kafka reader: one batch, then the end."""

    def __init__(self, events: list[Any]) -> None:
        self._events = events

    async def batches(self, timeout_ms: int) -> Any:
        yield [
            ConsumedEvent(e, Position("chat.messages", 0, n), None, [], int(time.time() * 1000))
            for n, e in enumerate(self._events)
        ]


async def test_the_reader_hands_one_event_to_its_author_moderators_and_viewers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub = FanoutHub(Metrics(), history_per_stream=10, backfill=5)
    moderator, author, viewer = Peer(), Peer(), Peer()
    hub.identify(author, "u-7")
    hub.subscribe(viewer, "s-1", None)
    hub.watch_held(moderator, "s-1")
    nothing_to_deliver = ChatChannelSynced(stream_id="s-1", user_id="u-7")
    await pump(_Reader([held(), nothing_to_deliver, approved()]), hub, Metrics())  # type: ignore[arg-type]
    hub.write_pending()
    assert "failed" not in caplog.text
    assert [m["type"] for m in moderator.messages()] == ["held", "resolved"]
    assert [(m["type"], m.get("code")) for m in author.messages()] == [("notice", "held")]
    assert [m["type"] for m in viewer.messages()][-1] == "chat"
