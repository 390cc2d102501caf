"""Chat events: three topics keyed by ``stream_id`` and one keyed by the sender.

``chat.sent`` holds the viewers' messages keyed by sender (``ChatMessageSent``), so that one stream's
chat spreads over every partition, with the markers the stream's moderation sends to where its
senders' messages are decided (``ChatChannelSynced``, ``ChatActionRouted``). ``chat.submitted`` holds
chat commands (and every message from edges older than ``chat.sent``), ``chat.moderation`` the
moderators' requests, and ``chat.messages`` the moderation's decisions, which are what viewers see.
Chat text is data, never HTML.

Every decision names the event it was decided on in its head (``causation_id``): the outcomes of
a moderator's request name the request or chat command behind them. Their ids are derived from that
cause (:func:`outcome_ids`), so the moderation log links a request to its outcomes without guessing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from events.base import Event
from events.ids import IdSpace, decision_id

__all__ = [
    "REQUEST_OUTCOMES",
    "ChatActionRouted",
    "ChatChannelSynced",
    "ChatCleared",
    "ChatMessageAccepted",
    "ChatMessageDeleted",
    "ChatMessageHeld",
    "ChatMessageRejected",
    "ChatMessageRestored",
    "ChatMessageSent",
    "ChatMessageSubmitted",
    "ChatSettingsChanged",
    "LinkPolicy",
    "ModerationAction",
    "ModerationActionRequested",
    "RejectionReason",
    "UserBanned",
    "UserTimedOut",
    "UserUnbanned",
    "outcome_ids",
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
    APPROVE = "approve"  # target_message_id = a held message: it is accepted (ChatMessageAccepted)
    DENY = "deny"  # target_message_id = a held message: it is rejected (reason ``denied``)
    UNDELETE = "undelete"  # target_message_id = a deleted message: ChatMessageRestored
    # The channel's rules (v4 of ModerationActionRequested), each answered by ChatSettingsChanged:
    UNIQUE_CHAT = "unique_chat"  # enabled = on (True) or off (False)
    LINK_POLICY = "link_policy"  # link_policy, with link_allowlist for ``allowlist``
    BLOCK_TERM = "block_term"  # term = the term to refuse in chat
    UNBLOCK_TERM = "unblock_term"  # term = a blocked term to allow again


class RejectionReason(enum.StrEnum):
    """Why a submitted message was not accepted. Avro default ``other``: a reader older than a
    reason reads ``other`` (and still has ``detail``)."""

    OTHER = "other"
    BANNED = "banned"
    TIMED_OUT = "timed_out"
    SLOW_MODE = "slow_mode"
    FOLLOWERS_ONLY = "followers_only"
    TOO_LONG = "too_long"
    RATE_LIMITED = "rate_limited"
    BLOCKED_TERM = "blocked_term"
    DUPLICATE = "duplicate"  # the sender sent the same shortly before
    LINK = "link"  # a link the channel's link policy does not allow
    SPAM = "spam"  # formatting: too many capitals, repeated characters or words, combining marks
    UNIQUE_CHAT = "unique_chat"  # unique-chat mode: someone sent the same shortly before
    DENIED = "denied"  # a held message a moderator denied (``detail``: the moderator's reason)


class LinkPolicy(enum.StrEnum):
    """Links in chat: all allowed (risky ones are scored), none, or only allow-listed domains.

    Avro default ``allow``: what a reader older than a newer policy falls back to.
    """

    ALLOW = "allow"
    DENY = "deny"
    ALLOWLIST = "allowlist"


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
class ChatMessageSent(ChatMessageSubmitted):
    """The same message as :class:`ChatMessageSubmitted`, on ``chat.sent`` keyed by its sender: the
    per-user rules run where a sender's messages land, so one stream's chat spreads over every
    partition. Edges send chat commands (text starting with ``/``) as ``ChatMessageSubmitted``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatChannelSynced(Event):
    """What the per-sender moderation needs of a stream, in full (replace, not patch), written by the
    stream's moderation to *every* partition of ``chat.sent`` whenever it changes: the channel and its
    owner (rights, followers-only), the media clock (replay sync) and the channel's rules."""

    stream_id: str
    user_id: str  # the record key: a key hashing to the partition this copy is written to
    channel_id: str = ""
    owner_id: str = ""
    media_anchor_ms: int | None = None  # epoch ms at which the stream's media clock read 0
    slow_mode_s: int = 0
    followers_only_min_s: int | None = None
    blocked_terms: tuple[str, ...] = ()
    link_policy: LinkPolicy | None = None
    link_allowlist: tuple[str, ...] = ()
    unique_chat: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatActionRouted(Event):
    """A moderator's action the stream's moderation authorised, routed to where it takes effect on
    ``chat.sent``: a ban, time-out or unban to the partition of the target user (``user_id``), an
    approve, deny, delete or undelete to every partition (whichever keeps the message acts on it).
    Decisions on it are derived from the cause (``causation_id``, whose ``occurred_at`` it has too),
    as if the cause were decided there.

    v2 moved ``cause_event_id`` into the head as ``causation_id``.
    """

    stream_id: str
    user_id: str  # the record key: the target user, or a key hashing to the partition of this copy
    action: ModerationAction
    actor_id: str
    target_user_id: str | None = None
    target_message_id: str | None = None
    until: datetime | None = None  # a time-out's end
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModerationActionRequested(Event):
    """A moderator's command; the moderation processor checks the actor's rights and decides.

    v4 added the channel-rule actions (``unique_chat``, ``link_policy``, ``block_term``,
    ``unblock_term``) and their fields ``term``, ``link_policy``, ``link_allowlist`` and ``enabled``.
    """

    stream_id: str
    action: ModerationAction
    actor_id: str
    target_user_id: str | None = None
    target_message_id: str | None = None
    reason: str = ""
    duration_s: int | None = None
    term: str = ""  # v4: block_term, unblock_term
    link_policy: LinkPolicy | None = None  # v4: link_policy
    link_allowlist: tuple[str, ...] = ()  # v4: link_policy allowlist: domains
    enabled: bool | None = None  # v4: unique_chat on or off


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatMessageAccepted(Event):
    """A message passed moderation and is shown to viewers.

    v2 added ``approved_by``.
    """

    message_id: str
    stream_id: str
    user_id: str
    display_name: str
    text: str
    badges: tuple[str, ...] = ()
    media_time_ms: int | None = None
    reply_to_message_id: str | None = None
    approved_by: str | None = None  # v2: the moderator who approved it when it was held; None = the rules


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatMessageRejected(Event):
    """A message failed moderation; only its author is told.

    v2 added the reasons ``link``, ``spam``, ``unique_chat``, ``denied`` and ``denied_by``.
    """

    message_id: str
    stream_id: str
    user_id: str
    reason: RejectionReason
    detail: str = ""
    denied_by: str | None = None  # v2: with reason ``denied``, the moderator who denied the held message


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatMessageHeld(Event):
    """A message broke no rule but looks risky: it waits, unseen, for a moderator to approve or deny it.

    Only its author is told. It carries what is needed to show it once approved; ``reasons`` are the
    risk signals that add up to ``score`` (0-1).

    v2 moved ``cause_event_id`` (the message's submission) into the head as ``causation_id``.
    """

    message_id: str
    stream_id: str
    user_id: str
    display_name: str
    text: str
    score: float
    reasons: tuple[str, ...] = ()  # e.g. "link", "obfuscated_term", "evasion"
    badges: tuple[str, ...] = ()
    media_time_ms: int | None = None
    reply_to_message_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatMessageDeleted(Event):
    """An accepted message was removed by a moderator."""

    message_id: str
    stream_id: str
    deleted_by: str
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatMessageRestored(Event):
    """A moderator undid a deletion: the message is shown again where it was (``sent_at``).

    It carries the message, so a reader that dropped it can show it again; other hiding (a ban of its
    author, a clear) still applies.

    v2 moved ``cause_event_id`` (the request or chat command) into the head as ``causation_id``.
    """

    message_id: str
    stream_id: str
    user_id: str
    display_name: str
    text: str
    sent_at: datetime  # when it was first accepted (the ChatMessageAccepted's occurred_at)
    restored_by: str
    reason: str = ""
    badges: tuple[str, ...] = ()
    media_time_ms: int | None = None
    reply_to_message_id: str | None = None


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
    """A ban or time-out was lifted.

    v2 added ``reason`` and ``cause_event_id``, which v3 moved into the head as ``causation_id``.
    """

    stream_id: str
    user_id: str
    actor_id: str
    reason: str = ""  # v2


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatSettingsChanged(Event):
    """The stream's chat settings and channel rules, in full (replace, not patch: redelivery changes
    nothing).

    v2 added ``reason``, ``cause_event_id`` and the channel's rules: blocked terms (in full, and which
    this change added or removed), link policy and allow-list, unique-chat. A v1 event read today has
    the defaults: no channel rules, which is what a v1 reader knew of them. v3 moved
    ``cause_event_id`` into the head as ``causation_id``.
    """

    stream_id: str
    actor_id: str
    slow_mode_s: int = 0  # 0 = off
    followers_only_min_s: int | None = None  # None = off; 0 = any follower
    reason: str = ""  # v2
    blocked_terms: tuple[str, ...] = ()  # v2: the channel's own, normalised (not the deployment's)
    blocked_terms_added: tuple[str, ...] = ()  # v2
    blocked_terms_removed: tuple[str, ...] = ()  # v2
    link_policy: LinkPolicy | None = None  # v2: None = the deployment's
    link_allowlist: tuple[str, ...] = ()  # v2: domains, with the allowlist policy
    unique_chat: bool = False  # v2


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatCleared(Event):
    """A moderator cleared the chat: clients drop every message before this event.

    v2 added ``reason`` and ``cause_event_id``, which v3 moved into the head as ``causation_id``.
    """

    stream_id: str
    actor_id: str
    cleared_before: datetime
    reason: str = ""  # v2


# What the stream's moderation can decide on a moderator's request or chat command.
REQUEST_OUTCOMES: tuple[type[Event], ...] = (
    UserBanned,
    UserTimedOut,
    UserUnbanned,
    ChatMessageDeleted,
    ChatSettingsChanged,
    ChatCleared,
    ChatMessageAccepted,
    ChatMessageRejected,
    ChatMessageRestored,
)


def outcome_ids(causation_id: str) -> list[str]:
    """Every id the moderation's decision on the request or chat command ``causation_id`` can have."""
    return [
        str(decision_id(IdSpace.MODERATION, causation_id, kind.event_type())) for kind in REQUEST_OUTCOMES
    ]
