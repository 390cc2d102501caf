"""``pg.chat`` gives the same tables whatever the batches: one event per batch, a few, or the whole
story in one batch, where each table's rows are written at once (``chat.apply_batch``: the last
delete or restore of a message decides, the first ban since the last unban names the actor) and the
hiding flag of banned authors is set once at the end (``settle`` of the projector)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from events.base import Event
from events.chat import (
    ChatCleared,
    ChatMessageAccepted,
    ChatMessageDeleted,
    ChatMessageHeld,
    ChatMessageRejected,
    ChatMessageRestored,
    ChatSettingsChanged,
    ModerationAction,
    ModerationActionRequested,
    RejectionReason,
    UserBanned,
    UserTimedOut,
    UserUnbanned,
    outcome_ids,
)
from infra.kafka import ConsumedEvent, Position
from infra.settings import Settings
from projections import chat
from tests.integration.projections_support import dump_tables, read_model, unique_schema
from tests.unit.event_samples import sample_event

T0 = datetime(2026, 5, 1, 18, 0, tzinfo=UTC)


def message(n: int, user: str) -> ChatMessageAccepted:
    return ChatMessageAccepted(
        message_id=f"m{n}",
        stream_id="s1",
        user_id=user,
        display_name=user,
        text=f"message {n}",
        occurred_at=T0 + timedelta(seconds=n),
        media_time_ms=n * 1000 if n % 2 else None,
    )


def ban_request(user: str, reason: str) -> ModerationActionRequested:
    request = sample_event(
        ModerationActionRequested,
        stream_id="s1",
        action=ModerationAction.BAN,
        actor_id="mod",
        reason=reason,
        target_user_id=user,
        target_message_id=None,
        duration_s=None,
    )
    assert isinstance(request, ModerationActionRequested)
    return request


def ban_decided(request: ModerationActionRequested) -> UserBanned:
    """The outcome the moderation agent decides on ``request`` (its id is derived from the request's)."""
    outcome_id = UUID(outcome_ids(str(request.event_id))[0])  # UserBanned comes first
    assert request.target_user_id is not None
    return UserBanned(event_id=outcome_id, stream_id="s1", user_id=request.target_user_id, actor_id="mod")


def story() -> list[Event]:
    """Runs of messages around bans, a time-out and unbans, with a message delivered twice, and runs
    of moderation requests whose outcome is logged before them or after them."""
    early, late, other = ban_request("dan", "flood"), ban_request("eve", "spam"), ban_request("fay", "")
    return [
        ban_decided(early),
        message(1, "ann"),
        message(2, "bob"),
        message(3, "ann"),
        UserBanned(stream_id="s1", user_id="ann", actor_id="mod", reason="spam"),
        message(4, "ann"),
        message(5, "bob"),
        message(2, "bob"),
        UserUnbanned(stream_id="s1", user_id="ann", actor_id="mod"),
        early,
        late,
        other,
        early,
        UserTimedOut(
            stream_id="s1", user_id="bob", actor_id="mod", duration_s=60, until=T0 + timedelta(minutes=1)
        ),
        UserBanned(stream_id="s1", user_id="ann", actor_id="mod", reason="again"),
        UserUnbanned(stream_id="s1", user_id="ann", actor_id="mod"),
        message(6, "bob"),
        message(7, "cat"),
        ban_decided(late),
    ]


def deleted(n: int, by: str) -> ChatMessageDeleted:
    return ChatMessageDeleted(message_id=f"m{n}", stream_id="s1", deleted_by=by, reason=f"by {by}")


def restored(n: int, user: str) -> ChatMessageRestored:
    sent = message(n, user)
    return ChatMessageRestored(
        message_id=sent.message_id,
        stream_id="s1",
        user_id=user,
        display_name=user,
        text=sent.text,
        sent_at=sent.occurred_at,
        restored_by="mod",
        media_time_ms=sent.media_time_ms,
    )


def moderation_story() -> list[Event]:
    """Deletions and restores in every order (a restore before the message it restores, two deletes,
    delete-restore-delete), a held message approved and one denied, settings and a clear between
    messages, and a ban of a banned author (its first actor stays)."""
    held = ChatMessageHeld(
        message_id="m20", stream_id="s1", user_id="gus", display_name="gus", text="x", score=0.7
    )
    approved = ChatMessageAccepted(
        message_id="m20", stream_id="s1", user_id="gus", display_name="gus", text="x", approved_by="mod2"
    )
    denied = ChatMessageRejected(
        message_id="m21",
        stream_id="s1",
        user_id="gus",
        reason=RejectionReason.DENIED,
        denied_by="mod",
        detail="no",
    )
    return [
        restored(11, "ann"),
        message(11, "ann"),
        message(12, "bob"),
        deleted(12, "mod"),
        deleted(12, "mod2"),
        message(13, "bob"),
        deleted(13, "mod"),
        restored(13, "bob"),
        deleted(13, "mod2"),
        deleted(14, "mod"),
        message(14, "cat"),
        message(15, "cat"),
        deleted(15, "mod"),
        restored(15, "cat"),
        held,
        approved,
        denied,
        ChatSettingsChanged(stream_id="s1", actor_id="mod", slow_mode_s=5, blocked_terms=("x",)),
        UserBanned(stream_id="s1", user_id="cat", actor_id="mod"),
        UserBanned(stream_id="s1", user_id="cat", actor_id="mod2"),
        ChatCleared(
            stream_id="s1", actor_id="mod", cleared_before=T0 + timedelta(seconds=12, milliseconds=500)
        ),
        message(16, "dan"),
        ChatSettingsChanged(stream_id="s1", actor_id="mod2", slow_mode_s=0),
    ]


def consumed(events: Sequence[Event]) -> list[ConsumedEvent]:
    return [
        ConsumedEvent(e, Position("chat.messages", 0, offset), None, [], 0) for offset, e in enumerate(events)
    ]


async def tables_after(
    settings: Settings, batches: list[list[ConsumedEvent]]
) -> dict[str, list[tuple[Any, ...]]]:
    schema = unique_schema()
    async with read_model(settings, schema) as pool:
        store = chat.chat_projector(pool, schema=schema)
        for batch in batches:
            await store.store(batch)
        tables = await dump_tables(pool, schema)
    return {name: rows for name, rows in tables.items() if name != "projection_offsets"}


async def test_one_batch_gives_the_tables_of_one_event_per_batch(settings: Settings) -> None:
    events = consumed(story())
    one_by_one = await tables_after(settings, [[c] for c in events])
    at_once = await tables_after(settings, [events])
    assert at_once == one_by_one
    hidden = {row[0]: row[9] for row in at_once["chat_messages"]}  # message_id -> suspended
    assert hidden == {"m1": False, "m2": True, "m3": False, "m4": False, "m5": True, "m6": True, "m7": False}
    requested = {"dan", "eve"}  # target -> (reason, linked to its request)
    log = at_once["moderation_log"]
    linked = {row[4]: (row[6], row[9] is not None) for row in log if row[4] in requested}
    assert linked == {"dan": ("flood", True), "eve": ("spam", True)}


async def test_deletions_restores_holds_settings_and_clears_in_any_batches(settings: Settings) -> None:
    events = consumed(story() + moderation_story())
    one_by_one = await tables_after(settings, [[c] for c in events])
    in_threes = await tables_after(settings, [events[i : i + 3] for i in range(0, len(events), 3)])
    at_once = await tables_after(settings, [events])
    assert at_once == one_by_one
    assert in_threes == one_by_one
    deletions = {row[0]: row[2] for row in at_once["chat_deletions"]}  # message_id -> deleted_by
    assert deletions == {"m12": "mod2", "m13": "mod2", "m14": "mod"}
    flags = {row[0]: (row[8], row[10]) for row in at_once["chat_messages"]}  # -> deleted, cleared
    assert {m: flags[m] for m in ("m11", "m12", "m13", "m14", "m15", "m16")} == {
        "m11": (False, True),
        "m12": (True, True),
        "m13": (True, False),
        "m14": (True, False),
        "m15": (False, False),
        "m16": (False, False),
    }
    assert {row[1]: row[2] for row in at_once["chat_suspensions"]}["cat"] == "mod"
    actions = sorted(row[3] for row in at_once["moderation_log"] if row[1] == "s1")
    assert actions.count("approve") == actions.count("deny") == actions.count("hold") == 1
    assert actions.count("settings") == 2 and actions.count("clear") == 1 and actions.count("undelete") == 3
