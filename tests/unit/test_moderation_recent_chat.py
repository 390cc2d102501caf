"""The recent-chat window (pure): visibility follows deletes, undeletes, bans, unbans and clears; replays
are no-ops."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from events.base import Event
from events.chat import (
    ChatCleared,
    ChatMessageAccepted,
    ChatMessageDeleted,
    ChatMessageRestored,
    UserBanned,
    UserUnbanned,
)
from infra.kafka import ConsumedEvent, Position
from projections.chat_recent import RECENT, WINDOW, Window, empty_window, next_window, recent

T0 = datetime(2025, 6, 1, 18, 0, tzinfo=UTC)


def consumed(event: Event, offset: int) -> ConsumedEvent:
    return ConsumedEvent(event, Position("chat.messages", 0, offset), b"s1", [], 0)


def accepted(i: int, user: str = "u") -> ChatMessageAccepted:
    return ChatMessageAccepted(
        message_id=f"m{i}",
        stream_id="s1",
        user_id=user,
        display_name=user,
        text=f"t{i}",
        occurred_at=T0 + timedelta(seconds=i),
    )


def apply(*events: Event) -> Window:
    window = empty_window()
    for offset, event in enumerate(events):
        window = next_window(window, consumed(event, offset))
    return window


def ids(window: Window) -> list[str]:
    return [m["message_id"] for m in recent(window)]


def test_visibility_is_reversible() -> None:
    msgs = [accepted(1, "a"), accepted(2, "b"), accepted(3, "a")]
    ban = UserBanned(stream_id="s1", user_id="a", actor_id="mod")
    unban = UserUnbanned(stream_id="s1", user_id="a", actor_id="mod")
    assert ids(apply(*msgs)) == ["m1", "m2", "m3"]
    assert ids(apply(*msgs, ban)) == ["m2"]
    assert ids(apply(*msgs, ban, unban)) == ["m1", "m2", "m3"]
    deleted = ChatMessageDeleted(message_id="m2", stream_id="s1", deleted_by="mod")
    assert ids(apply(*msgs, deleted, ban, unban)) == ["m1", "m3"]
    clear = ChatCleared(
        stream_id="s1", actor_id="mod", cleared_before=T0 + timedelta(seconds=2, milliseconds=500)
    )
    assert ids(apply(*msgs, clear)) == ["m3"]


def test_replays_change_nothing_and_positions_are_kept() -> None:
    once = apply(accepted(1))
    assert next_window(once, consumed(accepted(1), 7)) == once
    assert recent(once)[0]["position"] == "chat.messages:0:0"


def test_the_list_and_window_are_bounded() -> None:
    window = apply(*(accepted(i) for i in range(WINDOW + 50)))
    assert len(window["messages"]) == WINDOW and len(recent(window)) == RECENT
    assert recent(window)[-1]["message_id"] == f"m{WINDOW + 49}"


def restored(i: int, user: str = "u") -> ChatMessageRestored:
    return ChatMessageRestored(
        message_id=f"m{i}",
        stream_id="s1",
        user_id=user,
        display_name=user,
        text=f"t{i}",
        sent_at=T0 + timedelta(seconds=i),
        restored_by="mod",
    )


def test_an_undelete_puts_the_message_back_in_its_place() -> None:
    msgs = [accepted(1), accepted(2), accepted(3)]
    deleted = ChatMessageDeleted(message_id="m2", stream_id="s1", deleted_by="mod")
    window = apply(*msgs, deleted, restored(2))
    assert ids(window) == ["m1", "m2", "m3"]
    assert recent(window)[1]["position"] == "chat.messages:0:1"  # the original, not the restore's
    ban = UserBanned(stream_id="s1", user_id="a", actor_id="mod")
    assert (
        ids(
            apply(
                accepted(1, "a"),
                ChatMessageDeleted(message_id="m1", stream_id="s1", deleted_by="m"),
                ban,
                restored(1, "a"),
            )
        )
        == []
    )  # still banned
    assert ids(apply(*msgs, restored(9))) == ["m1", "m2", "m3"]  # older than the window: stays out


def test_next_window_never_changes_the_window_it_was_given() -> None:
    # The projector keeps the stored window when a batch fails; a shallow copy is only safe if no
    # event kind edits a list or record in place.
    events: list[Event] = [
        accepted(1, "a"),
        accepted(2, "b"),
        ChatMessageDeleted(message_id="m1", stream_id="s1", deleted_by="mod"),
        ChatMessageRestored(
            message_id="m1",
            stream_id="s1",
            user_id="a",
            display_name="a",
            text="t1",
            sent_at=T0 + timedelta(seconds=1),
            restored_by="mod",
        ),
        UserBanned(stream_id="s1", user_id="b", actor_id="mod"),
        UserUnbanned(stream_id="s1", user_id="b", actor_id="mod"),
        ChatCleared(stream_id="s1", actor_id="mod", cleared_before=T0 + timedelta(seconds=1)),
        accepted(3, "a"),
    ]
    window = empty_window()
    for offset, event in enumerate(events):
        before = json.dumps(window, sort_keys=True)
        after = next_window(window, consumed(event, offset))
        assert json.dumps(window, sort_keys=True) == before, type(event).__name__
        assert after is not window
        window = after
