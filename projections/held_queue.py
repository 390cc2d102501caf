"""The moderators' held-message queue (``held_messages``), written by the ``pg.chat`` projector.

A :class:`~events.chat.ChatMessageHeld` becomes a pending row; the approval
(:class:`~events.chat.ChatMessageAccepted` with ``approved_by``) or the denial
(:class:`~events.chat.ChatMessageRejected` with reason ``denied``) resolves it. Both sides upsert by
``message_id`` and touch only their own columns, so the queue is the same whichever order a replay
applies them in, and applying an event twice changes nothing. Pure planning (:func:`plan_held`),
then one statement per side (:func:`apply_held`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from events.base import Event
from events.chat import ChatMessageAccepted, ChatMessageHeld, ChatMessageRejected, RejectionReason
from projections.projector import Cursor

__all__ = ["Resolution", "apply_held", "plan_held"]

# (message_id, stream_id, user_id, status, resolved_by, resolved_at, reason)
Resolution = tuple[str, str, str, str, str, datetime, str]

UPSERT_HELD = """
INSERT INTO held_messages (message_id, stream_id, user_id, display_name, text, score, reasons, badges,
                           media_time_ms, reply_to_message_id, held_at)
SELECT h.id, h.stream, h.author, h.name, h.text, h.score, string_to_array(h.reasons, ','),
       string_to_array(h.badges, ','), h.media, h.reply, h.at
FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::float8[], %b::text[],
            %b::text[], %b::bigint[], %b::text[], %b::timestamptz[])
     AS h(id, stream, author, name, text, score, reasons, badges, media, reply, at)
ON CONFLICT (message_id) DO UPDATE SET
    display_name = EXCLUDED.display_name, text = EXCLUDED.text, score = EXCLUDED.score,
    reasons = EXCLUDED.reasons, badges = EXCLUDED.badges, media_time_ms = EXCLUDED.media_time_ms,
    reply_to_message_id = EXCLUDED.reply_to_message_id, held_at = EXCLUDED.held_at
WHERE held_messages.held_at IS NULL
"""
# The first resolution of a message wins (the agent decides a held message once).
UPSERT_RESOLUTIONS = """
INSERT INTO held_messages (message_id, stream_id, user_id, status, resolved_by, resolved_at,
                           resolution_reason)
SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::timestamptz[],
                     %b::text[])
ON CONFLICT (message_id) DO UPDATE SET
    status = EXCLUDED.status, resolved_by = EXCLUDED.resolved_by, resolved_at = EXCLUDED.resolved_at,
    resolution_reason = EXCLUDED.resolution_reason
WHERE held_messages.status = 'pending'
"""


def plan_held(events: Iterable[Event]) -> tuple[list[ChatMessageHeld], list[Resolution]]:
    """The holds and the resolutions among ``events``, the first of each message kept (pure)."""
    holds: dict[str, ChatMessageHeld] = {}
    resolutions: dict[str, Resolution] = {}
    for e in events:
        match e:
            case ChatMessageHeld():
                holds.setdefault(e.message_id, e)
            case ChatMessageAccepted(approved_by=str(moderator)):
                resolutions.setdefault(e.message_id, _resolution(e, "approved", moderator, ""))
            case ChatMessageRejected(reason=RejectionReason.DENIED):
                resolutions.setdefault(e.message_id, _resolution(e, "denied", e.denied_by or "", e.detail))
    return list(holds.values()), list(resolutions.values())


def _resolution(
    e: ChatMessageAccepted | ChatMessageRejected, status: str, by: str, reason: str
) -> Resolution:
    return (e.message_id, e.stream_id, e.user_id, status, by, e.occurred_at, reason)


async def apply_held(cur: Cursor, events: Sequence[Event]) -> None:
    """Write the batch's holds and resolutions (two statements at most, whatever the batch size)."""
    holds, resolutions = plan_held(events)
    if holds:
        await cur.execute(UPSERT_HELD, _columns(_hold_row(e) for e in holds))
    if resolutions:
        await cur.execute(UPSERT_RESOLUTIONS, _columns(resolutions))


def _hold_row(e: ChatMessageHeld) -> tuple[Any, ...]:
    # Reasons and badges are short tokens without commas (rule names, badge names): joined for unnest.
    return (
        e.message_id,
        e.stream_id,
        e.user_id,
        e.display_name,
        e.text,
        e.score,
        ",".join(e.reasons),
        ",".join(e.badges),
        e.media_time_ms,
        e.reply_to_message_id,
        e.occurred_at,
    )


def _columns(rows: Iterable[tuple[Any, ...]]) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)]
