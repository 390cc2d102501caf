"""One stream's chat state, the value of the moderation agent's table (keyed by ``stream_id``).

Everything the decisions need and nothing more, bounded: bans and time-outs, the channel's rules,
each recent sender's accepted messages within the longest window, the channel's recent fingerprints
for unique-chat, held messages awaiting a moderator, the last shown messages and the deleted ones
(what an undelete needs to show a message again), names seen in chat (for ``/ban name``), the
stream's media clock, and the ids of recently decided causes (at-least-once redelivery).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from events import ids
from events.base import Event
from events.chat import LinkPolicy
from stream_processors.moderation.chat_rules import ChannelRules
from stream_processors.moderation.roster import ChatRoster

__all__ = [
    "MAX_CHATTERS",
    "MAX_DELETED",
    "MAX_HELD",
    "MAX_SHOWN",
    "PRODUCER",
    "RECENT_CAUSES",
    "ChatChannel",
    "KeptMessage",
    "decision_id",
    "head",
    "privileged",
]

PRODUCER = "stream_processors.moderation"

RECENT_CAUSES = 256  # a commit interval of a busy stream (~3 s at 50 messages/s) plus margin
MAX_HELD = 100  # the oldest held message is dropped (never shown) beyond this
MAX_SHOWN = 200  # a message deleted after this many newer ones were shown cannot be undeleted
MAX_DELETED = 100  # the oldest deletion beyond this can no longer be undone
MAX_CHATTERS = 500
MAX_CHANNEL_PRINTS = 500

Prints = tuple[tuple[float, str], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class KeptMessage:
    """What is needed to show a message later: a held one once approved, a deleted one once undeleted."""

    message_id: str
    user_id: str
    display_name: str
    text: str
    badges: tuple[str, ...] = ()
    media_time_ms: int | None = None
    reply_to_message_id: str | None = None
    score: float = 0.0  # held: the risk score
    shown_at_ms: int = 0  # shown: epoch ms of its ChatMessageAccepted

    def to_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "user_id": self.user_id,
            "display_name": self.display_name,
            "text": self.text,
            "badges": list(self.badges),
            "media_time_ms": self.media_time_ms,
            "reply_to_message_id": self.reply_to_message_id,
            "score": self.score,
            "shown_at_ms": self.shown_at_ms,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KeptMessage:
        return cls(**{**data, "badges": tuple(data.get("badges", ()))})


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatChannel:
    """One stream's chat state. Treated as immutable: decisions build a new one with ``replace``."""

    stream_id: str
    channel_id: str = ""
    owner_id: str = ""
    rules: ChannelRules = field(default_factory=ChannelRules)
    bans: frozenset[str] = frozenset()
    timeouts: dict[str, float] = field(default_factory=dict)  # user -> until (epoch s)
    sent: dict[str, Prints] = field(default_factory=dict)  # user -> (epoch s, fingerprint)
    channel_prints: Prints = ()
    chatters: dict[str, str] = field(default_factory=dict)  # name (folded) -> user_id, newest last
    held: dict[str, KeptMessage] = field(default_factory=dict)  # message_id -> message, oldest first
    shown: dict[str, KeptMessage] = field(default_factory=dict)  # the last accepted, oldest first
    deleted: dict[str, KeptMessage] = field(default_factory=dict)  # deleted from ``shown``, oldest first
    media_anchor_ms: int | None = None  # epoch ms at which the stream's media clock read 0
    recent_causes: tuple[str, ...] = ()
    synced: bool = False  # the channel's state was sent to chat.sent (ChatChannelSynced)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the table's changelog value)."""
        return {
            "stream_id": self.stream_id,
            "channel_id": self.channel_id,
            "owner_id": self.owner_id,
            "rules": _rules_json(self.rules),
            "bans": sorted(self.bans),
            "timeouts": self.timeouts,
            "sent": {user: [list(p) for p in prints] for user, prints in self.sent.items()},
            "channel_prints": [list(p) for p in self.channel_prints],
            "chatters": self.chatters,
            "held": [m.to_json() for m in self.held.values()],
            "shown": [m.to_json() for m in self.shown.values()],
            "deleted": [m.to_json() for m in self.deleted.values()],
            "media_anchor_ms": self.media_anchor_ms,
            "recent_causes": list(self.recent_causes),
            "synced": self.synced,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChatChannel:
        """The inverse of :meth:`to_json`."""
        return cls(
            stream_id=data["stream_id"],
            channel_id=data.get("channel_id", ""),
            owner_id=data.get("owner_id", ""),
            rules=_rules_from_json(data.get("rules", {})),
            bans=frozenset(data.get("bans", ())),
            timeouts=dict(data.get("timeouts", {})),
            sent={user: _prints(p) for user, p in data.get("sent", {}).items()},
            channel_prints=_prints(data.get("channel_prints", ())),
            chatters=dict(data.get("chatters", {})),
            held=_kept(data.get("held", ())),
            shown=_kept(data.get("shown", ())),
            deleted=_kept(data.get("deleted", ())),
            media_anchor_ms=data.get("media_anchor_ms"),
            recent_causes=tuple(data.get("recent_causes", ())),
            synced=data.get("synced", False),
        )


def _kept(items: Any) -> dict[str, KeptMessage]:
    kept = (KeptMessage.from_json(m) for m in items)
    return {m.message_id: m for m in kept}


def _prints(items: Any) -> Prints:
    return tuple((float(at), str(p)) for at, p in items)


def _rules_json(rules: ChannelRules) -> dict[str, Any]:
    return {
        "blocked_terms": list(rules.blocked_terms),
        "link_policy": None if rules.link_policy is None else rules.link_policy.value,
        "link_allowlist": list(rules.link_allowlist),
        "slow_mode_s": rules.slow_mode_s,
        "followers_only_min_s": rules.followers_only_min_s,
        "unique_chat": rules.unique_chat,
    }


def _rules_from_json(data: dict[str, Any]) -> ChannelRules:
    return ChannelRules(
        blocked_terms=tuple(data.get("blocked_terms", ())),
        link_policy=None if data.get("link_policy") is None else LinkPolicy(data["link_policy"]),
        link_allowlist=tuple(data.get("link_allowlist", ())),
        slow_mode_s=data.get("slow_mode_s", 0),
        followers_only_min_s=data.get("followers_only_min_s"),
        unique_chat=data.get("unique_chat", False),
    )


def decision_id(cause: Event | str, kind: type[Event]) -> uuid.UUID:
    """The deterministic id of the ``kind`` decision taken on ``cause`` (an event or its id)."""
    cause_id = cause if isinstance(cause, str) else str(cause.event_id)
    return ids.decision_id(ids.IdSpace.MODERATION, cause_id, kind.event_type())


def head(cause: Event, kind: type[Event]) -> dict[str, Any]:
    """The envelope of a decision: derived from the cause only, so redelivery yields the same event."""
    return {
        "event_id": decision_id(cause, kind),
        "occurred_at": cause.occurred_at,
        "producer": PRODUCER,
        "trace_id": cause.trace_id,
        "causation_id": str(cause.event_id),
    }


def privileged(state: ChatChannel, user_id: str, roster: ChatRoster) -> bool:
    """Owner of the stream's channel, one of its moderators, or a platform admin."""
    if roster.is_admin(user_id):
        return True
    if not state.channel_id:
        return False
    return user_id == state.owner_id or roster.is_moderator(state.channel_id, user_id)
