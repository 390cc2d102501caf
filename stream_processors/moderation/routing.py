"""The stream's side of moderation partitioned by sender (pure): what stays keyed by stream, and
what it sends to where the senders' messages are decided.

Viewers' messages are decided per sender on ``chat.sent`` (:mod:`stream_processors.moderation.senders`).
The stream's moderation (keyed by ``stream_id``: requests, chat commands, the channel, the media
clock) keeps what is one per stream: the channel and its owner, the rules, bans and time-outs as the
authority that publishes them, clears. :func:`decide_stream` is :func:`decide` plus:

- an ordinary message found on ``chat.submitted`` (an edge older than ``chat.sent``) is re-keyed
  onto ``chat.sent`` as a ``ChatMessageSent`` with the same id (decided there, once);
- whenever the channel, its owner, its rules or the media clock change (and once for a stream
  known before ``chat.sent``), a ``ChatChannelSynced`` is written to every partition of ``chat.sent``;
- a ban, time-out or unban it publishes is routed to the target's partition (``ChatActionRouted``),
  a deletion to every partition (whichever keeps the message can restore it later);
- an authorised approve, deny or undelete is routed to every partition: only the partition where the
  message was held or deleted acts on it (see :func:`routed`).

Every marker's id and time derive from its cause, so a redelivered cause sends the same markers, and
applying a marker twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from events.base import Event
from events.chat import (
    ChatActionRouted,
    ChatChannelSynced,
    ChatMessageDeleted,
    ChatMessageSent,
    ChatMessageSubmitted,
    ModerationAction,
    ModerationActionRequested,
    UserBanned,
    UserTimedOut,
    UserUnbanned,
)
from stream_processors.moderation.chat_rules import ChannelRules, ChatLimits
from stream_processors.moderation.commands import parse_command
from stream_processors.moderation.decisions import decide
from stream_processors.moderation.roster import ChatRoster
from stream_processors.moderation.state import RECENT_CAUSES, ChatChannel, head, privileged

__all__ = ["HOLDER_ACTIONS", "channel_of", "decide_stream", "rekeyed", "synced"]

Outcome = tuple[ChatChannel, list[Event]]
# Acted on by the partition that keeps the message (held, or deleted and restorable).
HOLDER_ACTIONS = (ModerationAction.APPROVE, ModerationAction.DENY, ModerationAction.UNDELETE)
_USER_OUTCOMES = {
    UserBanned: ModerationAction.BAN,
    UserTimedOut: ModerationAction.TIMEOUT,
    UserUnbanned: ModerationAction.UNBAN,
}


def decide_stream(
    state: ChatChannel,
    cause: Event,
    now: datetime,
    *,
    roster: ChatRoster,
    limits: ChatLimits,
    sent_keys: Sequence[str],
) -> Outcome:
    """The next stream state, and the decisions (to ``chat.messages``) and markers (to ``chat.sent``)
    of ``cause``. ``sent_keys``: one record key per partition of ``chat.sent``, hashing to it."""
    if isinstance(cause, ChatMessageSubmitted) and parse_command(cause.text) is None:
        return _with_sync(state, state, cause, sent_keys, [rekeyed(cause)])
    holder = _holder_request(state, cause, roster)
    if holder is not None:
        short = cause.event_id.hex[:16]
        if short in state.recent_causes:
            return state, []
        recent = (*state.recent_causes, short)[-RECENT_CAUSES:]
        return replace(state, recent_causes=recent), _everywhere(state, holder, sent_keys)
    new_state, decisions = decide(state, cause, now, roster=roster, limits=limits)
    markers: list[Event] = []
    for d in decisions:
        if isinstance(d, UserBanned | UserTimedOut | UserUnbanned):
            until = d.until if isinstance(d, UserTimedOut) else None
            action = _USER_OUTCOMES[type(d)]
            markers.append(
                _routed(state, cause, action, d.actor_id, d.user_id, user_id=d.user_id, until=until)
            )
        elif isinstance(d, ChatMessageDeleted):
            delete = _routed(state, cause, ModerationAction.DELETE, d.deleted_by, message_id=d.message_id)
            markers.extend(_everywhere(state, delete, sent_keys))
    # Markers first: the producer sends them before the decisions, so a ban's target who sees it
    # decided sends their next message after the ban reached their partition.
    return _with_sync(state, new_state, cause, sent_keys, [*markers, *decisions])


def rekeyed(e: ChatMessageSubmitted) -> ChatMessageSent:
    """``e`` as the same message (same id, time and trace) on ``chat.sent``, keyed by its sender."""
    fields = {name: getattr(e, name) for name in ChatMessageSubmitted.__dataclass_fields__}
    return ChatMessageSent(**fields)


def channel_of(state: ChatChannel) -> tuple[str, str, ChannelRules, int | None]:
    """What the per-sender moderation needs of a stream."""
    return state.channel_id, state.owner_id, state.rules, state.media_anchor_ms


def synced(state: ChatChannel, cause: Event, key: str) -> ChatChannelSynced:
    """The copy of ``state``'s channel for the partition of ``chat.sent`` that ``key`` hashes to."""
    rules = state.rules
    return ChatChannelSynced(
        **head(cause, ChatChannelSynced),
        stream_id=state.stream_id,
        user_id=key,
        channel_id=state.channel_id,
        owner_id=state.owner_id,
        media_anchor_ms=state.media_anchor_ms,
        slow_mode_s=rules.slow_mode_s,
        followers_only_min_s=rules.followers_only_min_s,
        blocked_terms=rules.blocked_terms,
        link_policy=rules.link_policy,
        link_allowlist=rules.link_allowlist,
        unique_chat=rules.unique_chat,
    )


def _with_sync(
    before: ChatChannel, after: ChatChannel, cause: Event, keys: Sequence[str], events: list[Event]
) -> Outcome:
    if after.synced and channel_of(after) == channel_of(before):
        return after, events
    return replace(after, synced=True), [*(synced(after, cause, key) for key in keys), *events]


def _holder_request(state: ChatChannel, cause: Event, roster: ChatRoster) -> ChatActionRouted | None:
    """An authorised approve, deny or undelete naming a message, as a marker (the partition's key
    filled in by :func:`_everywhere`); None for anything else."""
    if isinstance(cause, ModerationActionRequested):
        action, actor, target, reason = cause.action, cause.actor_id, cause.target_message_id, cause.reason
    elif isinstance(cause, ChatMessageSubmitted) and (command := parse_command(cause.text)) is not None:
        if command.name not in ModerationAction.__members__.values():
            return None
        action, actor, target = ModerationAction(command.name), cause.user_id, command.target
        reason = command.reason
    else:
        return None
    if action not in HOLDER_ACTIONS or not target or not privileged(state, actor, roster):
        return None  # decide() answers: refused, or "no held message" to a sender without a target
    return _routed(state, cause, action, actor, message_id=target, reason=reason)


def _routed(
    state: ChatChannel,
    cause: Event,
    action: ModerationAction,
    actor_id: str,
    target_user_id: str | None = None,
    *,
    user_id: str = "",
    message_id: str | None = None,
    until: datetime | None = None,
    reason: str | None = None,
) -> ChatActionRouted:
    return ChatActionRouted(
        **head(cause, ChatActionRouted),
        stream_id=state.stream_id,
        user_id=user_id,
        action=action,
        actor_id=actor_id,
        target_user_id=target_user_id,
        target_message_id=message_id,
        until=until,
        reason=getattr(cause, "reason", "") if reason is None else reason,
    )


def _everywhere(state: ChatChannel, marker: ChatActionRouted, keys: Sequence[str]) -> list[Event]:
    return [replace(marker, user_id=key) for key in keys]
