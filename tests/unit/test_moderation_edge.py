"""What the moderation outcomes become on the edge's wire (pure): who is told, and what they see."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from edge_ws.messages import Route, delivery_for
from edge_ws.protocol import LogPosition
from events.base import Event
from events.chat import (
    ChatCleared,
    ChatMessageAccepted,
    ChatMessageHeld,
    ChatMessageRejected,
    ChatMessageRestored,
    ChatSettingsChanged,
    LinkPolicy,
    RejectionReason,
    UserUnbanned,
)

SENT = datetime(2025, 6, 1, 18, 0, 1, tzinfo=UTC)
POS = LogPosition(0, 42)


def wire(event: Event) -> tuple[Route, str, dict[str, Any]]:
    delivery = delivery_for(event, POS)
    assert delivery is not None
    return delivery.route, delivery.target, json.loads(delivery.payload)


def test_a_held_message_is_told_to_its_author_only_without_its_signals() -> None:
    held = ChatMessageHeld(
        message_id="m1",
        stream_id="s",
        user_id="u-1",
        display_name="Ana",
        text="check this",
        score=0.9,
        reasons=("link", "evasion"),
    )
    route, target, payload = wire(held)
    assert (route, target) == (Route.DIRECT, "u-1")
    assert payload == {"type": "notice", "code": "held", "pos": "0:42", "stream": "s", "id": "m1"}


def test_a_denial_is_a_rejection_with_the_moderators_reason() -> None:
    denied = ChatMessageRejected(
        message_id="m1",
        stream_id="s",
        user_id="u-1",
        reason=RejectionReason.DENIED,
        detail="rude",
        denied_by="mod",
    )
    route, target, payload = wire(denied)
    assert (route, target) == (Route.DIRECT, "u-1")
    assert (payload["code"], payload["reason"], payload["detail"]) == ("rejected", "denied", "rude")
    assert "denied_by" not in payload  # moderators stay anonymous to the author


def test_a_restored_message_is_chat_again_with_its_own_time() -> None:
    restored = ChatMessageRestored(
        message_id="m1",
        stream_id="s",
        user_id="u-1",
        display_name="Ana",
        text="gg",
        sent_at=SENT,
        restored_by="mod",
        media_time_ms=1234,
    )
    route, target, payload = wire(restored)
    accepted = ChatMessageAccepted(
        message_id="m1",
        stream_id="s",
        user_id="u-1",
        display_name="Ana",
        text="gg",
        occurred_at=SENT,
        media_time_ms=1234,
    )
    _, _, original = wire(accepted)
    assert (route, target) == (Route.HISTORY, "s")
    assert payload == {**original, "restored": True}
    assert payload["at"] == int(SENT.timestamp() * 1000) and payload["pos"] == "0:42"


def test_settings_tell_the_rules_but_never_the_blocked_terms() -> None:
    settings = ChatSettingsChanged(
        stream_id="s",
        actor_id="mod",
        blocked_terms=("secret",),
        blocked_terms_added=("secret",),
        link_policy=LinkPolicy.ALLOWLIST,
        link_allowlist=("twitch.tv",),
        unique_chat=True,
    )
    route, _, payload = wire(settings)
    assert route is Route.HISTORY and "secret" not in json.dumps(payload)
    assert (payload["link_policy"], payload["link_allowlist"], payload["unique_chat"]) == (
        "allowlist",
        ["twitch.tv"],
        True,
    )
    assert wire(ChatSettingsChanged(stream_id="s", actor_id="mod"))[2]["link_policy"] is None


def test_unban_and_clear_carry_their_reason() -> None:
    assert (
        wire(UserUnbanned(stream_id="s", user_id="u", actor_id="m", reason="appeal"))[2]["reason"] == "appeal"
    )
    clear = ChatCleared(stream_id="s", actor_id="m", cleared_before=SENT, reason="raid")
    assert wire(clear)[2]["reason"] == "raid"
