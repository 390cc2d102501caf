"""Chat events, in three topics keyed by ``stream_id``.

``chat.submitted`` holds raw input from the edges, ``chat.moderation`` the moderators' commands,
and ``chat.messages`` the moderation processor's decisions, which are what viewers see.
Chat text is data, never HTML.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from events.base import Event

__all__ = [
    "ChatCleared",
    "ChatMessageAccepted",
    "ChatMessageDeleted",
    "ChatMessageRejected",
    "ChatMessageSubmitted",
    "ChatSettingsChanged",
    "ModerationAction",
    "ModerationActionRequested",
    "RejectionReason",
    "UserBanned",
    "UserTimedOut",
    "UserUnbanned",
]


class ModerationAction(enum.StrEnum):
    """What a moderator asks for.

    ``unknown`` is never produced: it is the Avro default a reader sees for an action added after
    its schema, and processors ignore it rather than guess.
    """

    UNKNOWN = "unknown"
    BAN = "ban"
    TIMEOUT = "timeout"
    UNBAN = "unban"
    DELETE = "delete"
    SLOW_MODE = "slow_mode"  # duration_s = minimum interval between messages; 0 turns it off
    FOLLOWERS_ONLY = "followers_only"  # duration_s = minimum follow age; None turns it off
    CLEAR = "clear"


class RejectionReason(enum.StrEnum):
    """Why a submitted message was not accepted. Avro default ``other``."""

    OTHER = "other"
    BANNED = "banned"
    TIMED_OUT = "timed_out"
    SLOW_MODE = "slow_mode"
    FOLLOWERS_ONLY = "followers_only"
    TOO_LONG = "too_long"
    RATE_LIMITED = "rate_limited"
    BLOCKED_TERM = "blocked_term"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatMessageSubmitted(Event):
    """A viewer sent a message through an edge node; not yet moderated.

    v2 added ``reply_to_message_id``.
    """

    message_id: str  # assigned by the edge; stays the same through acceptance or deletion
    stream_id: str
    user_id: str
    display_name: str
    text: str
    edge_id: str
    nonce: str = ""  # the client's, echoed back so it can match its optimistic copy
    badges: tuple[str, ...] = ()
    media_time_ms: int | None = None  # player position when sent, for replay sync
    reply_to_message_id: str | None = None  # v2


@dataclass(frozen=True, slots=True, kw_only=True)
class ModerationActionRequested(Event):
    """A moderator's command; the moderation processor checks the actor's rights and decides."""

    stream_id: str
    action: ModerationAction
    actor_id: str
    target_user_id: str | None = None
    target_message_id: str | None = None
    reason: str = ""
    duration_s: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatMessageAccepted(Event):
    """A message passed moderation and is shown to viewers."""

    message_id: str
    stream_id: str
    user_id: str
    display_name: str
    text: str
    badges: tuple[str, ...] = ()
    media_time_ms: int | None = None
    reply_to_message_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatMessageRejected(Event):
    """A message failed moderation; only its author is told."""

    message_id: str
    stream_id: str
    user_id: str
    reason: RejectionReason
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatMessageDeleted(Event):
    """An accepted message was removed by a moderator."""

    message_id: str
    stream_id: str
    deleted_by: str
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class UserTimedOut(Event):
    """A user may not chat in the stream until ``until``."""

    stream_id: str
    user_id: str
    actor_id: str
    duration_s: int
    until: datetime
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class UserBanned(Event):
    """A user may not chat in the stream until unbanned."""

    stream_id: str
    user_id: str
    actor_id: str
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class UserUnbanned(Event):
    """A ban or time-out was lifted."""

    stream_id: str
    user_id: str
    actor_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatSettingsChanged(Event):
    """The stream's chat settings, in full (replace, not patch: redelivery changes nothing)."""

    stream_id: str
    actor_id: str
    slow_mode_s: int = 0  # 0 = off
    followers_only_min_s: int | None = None  # None = off; 0 = any follower


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatCleared(Event):
    """A moderator cleared the chat: clients drop every message before this event."""

    stream_id: str
    actor_id: str
    cleared_before: datetime
