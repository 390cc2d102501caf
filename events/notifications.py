"""Notifications for users (topic ``notifications``, keyed by ``user_id``)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from events.base import Event

__all__ = ["NotificationIssued", "NotificationKind"]


class NotificationKind(enum.StrEnum):
    """What a notification is about. Avro default ``system`` (shown plainly)."""

    SYSTEM = "system"
    STREAM_LIVE = "stream_live"
    STREAM_SCHEDULED = "stream_scheduled"
    MATCH_STARTING = "match_starting"
    MATCH_ENDED = "match_ended"
    MENTION = "mention"


@dataclass(frozen=True, slots=True, kw_only=True)
class NotificationIssued(Event):
    """A notification for one user. ``(user_id, kind, causation_id)`` identifies it for dedupe:
    ``causation_id`` is the id of the event that caused it, so a redelivered cause issues nothing new.

    v2 moved ``cause_id`` into the head as ``causation_id``.
    """

    notification_id: str
    user_id: str
    kind: NotificationKind
    title: str
    url: str = ""
    body: str = ""
