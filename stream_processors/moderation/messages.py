"""Message outcomes (pure): accepted, rejected, held, restored, and the copies the state keeps of them.

The agent keeps a copy of each held message (to accept it once approved) and of the last shown ones
(:data:`~stream_processors.moderation.state.MAX_SHOWN`), which a deletion moves aside (up to
:data:`~stream_processors.moderation.state.MAX_DELETED`) so that an undelete can show it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from events.base import Event
from events.chat import (
    ChatMessageAccepted,
    ChatMessageHeld,
    ChatMessageRejected,
    ChatMessageRestored,
    ChatMessageSubmitted,
    RejectionReason,
)
from stream_processors.moderation.state import (
    MAX_DELETED,
    MAX_HELD,
    MAX_SHOWN,
    ChatChannel,
    KeptMessage,
    head,
)

__all__ = [
    "accepted",
    "approved",
    "delete_shown",
    "held",
    "keep_held",
    "keep_shown",
    "media_time",
    "rejected",
    "restored",
]


def media_time(state: ChatChannel, e: ChatMessageSubmitted, at: datetime) -> int | None:
    """The stream's media clock at ``at`` (from the ingest), else what the edge reported."""
    if state.media_anchor_ms is None:
        return e.media_time_ms
    return max(0, int(at.timestamp() * 1000) - state.media_anchor_ms)


def rejected(
    state: ChatChannel, e: ChatMessageSubmitted, reason: RejectionReason, detail: str
) -> ChatMessageRejected:
    """The rejection of ``e``, told only to its sender."""
    return ChatMessageRejected(
        **head(e, ChatMessageRejected),
        message_id=e.message_id,
        stream_id=state.stream_id,
        user_id=e.user_id,
        reason=reason,
        detail=detail,
    )


def accepted(state: ChatChannel, e: ChatMessageSubmitted) -> ChatMessageAccepted:
    """``e`` as viewers see it, with the stream's media time."""
    return ChatMessageAccepted(
        **head(e, ChatMessageAccepted),
        message_id=e.message_id,
        stream_id=state.stream_id,
        user_id=e.user_id,
        display_name=e.display_name,
        text=e.text,
        badges=e.badges,
        media_time_ms=media_time(state, e, e.occurred_at),
        reply_to_message_id=e.reply_to_message_id,
    )


def held(
    state: ChatChannel, e: ChatMessageSubmitted, score: float, signals: Sequence[str]
) -> ChatMessageHeld:
    """``e`` held for review: its author is told, viewers see nothing until a moderator approves it."""
    return ChatMessageHeld(
        **head(e, ChatMessageHeld),
        message_id=e.message_id,
        stream_id=state.stream_id,
        user_id=e.user_id,
        display_name=e.display_name,
        text=e.text,
        score=score,
        reasons=tuple(signals),
        badges=e.badges,
        media_time_ms=media_time(state, e, e.occurred_at),  # the moment it was sent, not approved
        reply_to_message_id=e.reply_to_message_id,
    )


def approved(state: ChatChannel, cause: Event, actor_id: str, m: KeptMessage) -> ChatMessageAccepted:
    """The held message ``m`` accepted by ``actor_id``."""
    return ChatMessageAccepted(
        **head(cause, ChatMessageAccepted),
        message_id=m.message_id,
        stream_id=state.stream_id,
        user_id=m.user_id,
        display_name=m.display_name,
        text=m.text,
        badges=m.badges,
        media_time_ms=m.media_time_ms,
        reply_to_message_id=m.reply_to_message_id,
        approved_by=actor_id,
    )


def restored(
    state: ChatChannel, cause: Event, actor_id: str, reason: str, m: KeptMessage
) -> ChatMessageRestored:
    """The deleted message ``m`` shown again by ``actor_id``, where it was."""
    return ChatMessageRestored(
        **head(cause, ChatMessageRestored),
        message_id=m.message_id,
        stream_id=state.stream_id,
        user_id=m.user_id,
        display_name=m.display_name,
        text=m.text,
        sent_at=datetime.fromtimestamp(m.shown_at_ms / 1000, UTC),
        restored_by=actor_id,
        reason=reason,
        badges=m.badges,
        media_time_ms=m.media_time_ms,
        reply_to_message_id=m.reply_to_message_id,
    )


def _kept(
    e: ChatMessageAccepted | ChatMessageHeld | ChatMessageRestored,
    *,
    score: float = 0.0,
    shown_at_ms: int = 0,
) -> KeptMessage:
    return KeptMessage(
        message_id=e.message_id,
        user_id=e.user_id,
        display_name=e.display_name,
        text=e.text,
        badges=e.badges,
        media_time_ms=e.media_time_ms,
        reply_to_message_id=e.reply_to_message_id,
        score=score,
        shown_at_ms=shown_at_ms,
    )


def keep_held(state: ChatChannel, e: ChatMessageHeld) -> ChatChannel:
    """``state`` remembering the held message (the oldest is dropped, never shown, past MAX_HELD)."""
    held_ = {**state.held, e.message_id: _kept(e, score=e.score)}
    return replace(state, held=dict(list(held_.items())[-MAX_HELD:]))


def keep_shown(
    state: ChatChannel, e: ChatMessageAccepted | ChatMessageRestored, shown_at_ms: int
) -> ChatChannel:
    """``state`` remembering a shown message, so that it can be restored if it gets deleted."""
    shown = {k: v for k, v in state.shown.items() if k != e.message_id}
    shown[e.message_id] = _kept(e, shown_at_ms=shown_at_ms)
    deleted = {k: v for k, v in state.deleted.items() if k != e.message_id}
    return replace(state, shown=dict(list(shown.items())[-MAX_SHOWN:]), deleted=deleted)


def delete_shown(state: ChatChannel, message_id: str) -> ChatChannel:
    """``state`` with a shown message moved to the deleted ones (unchanged if it is not kept)."""
    kept = state.shown.get(message_id)
    if kept is None:
        return state
    shown = {k: v for k, v in state.shown.items() if k != message_id}
    deleted = {**state.deleted, message_id: kept}
    return replace(state, shown=shown, deleted=dict(list(deleted.items())[-MAX_DELETED:]))
