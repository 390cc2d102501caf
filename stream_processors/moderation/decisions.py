"""Chat moderation as a pure decision: ``decide(state, cause, now, roster=, limits=) -> (state, decisions)``.

Causes (all keyed by ``stream_id``, so one partition sees a stream's chat in order):
``ChatMessageSubmitted`` (a message, or a moderator's chat command), ``ModerationActionRequested``
(the REST API and the edge's ``mod`` frames), ``StreamCreated`` (the channel and its owner) and the
ingest's ``IngestConnected``/``SegmentPublished`` (the media clock). Decisions go to ``chat.messages``.

Rights: the stream's channel owner, the channel's moderators and platform admins (from the
:class:`~stream_processors.moderation.roster.ChatRoster`). An action from anyone else decides
nothing (it stays visible, as asked, in the ``moderation_requests`` table of the chat projection,
where no outcome follows it); the same command typed in chat is rejected to its sender only.
Moderators cannot act on the owner or admins, and only the owner or an admin can ban a moderator.

Held messages: a risky message becomes ``ChatMessageHeld`` (told to its author only) and waits for
``APPROVE`` (then ``ChatMessageAccepted`` with ``approved_by``) or ``DENY`` (then
``ChatMessageRejected`` with reason ``denied``); in chat, ``/approve <id>`` and ``/deny <id>``.
``UNDELETE`` (``/undelete <id>``) brings back a deleted message as ``ChatMessageRestored``. Channel rules
(``BLOCK_TERM``, ``UNBLOCK_TERM``, ``LINK_POLICY``, ``UNIQUE_CHAT``; in chat ``/block``, ``/unblock``,
``/links``, ``/uniquechat``) are published as ``ChatSettingsChanged``.

At-least-once: decisions are functions of their cause (``event_id`` derived from the cause and the kind,
``occurred_at`` = the cause's), ``now`` is the cause's time (the agent passes ``cause.occurred_at``), and
recently decided causes are remembered, so a redelivered cause republishes nothing new.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from events.base import Event
from events.chat import (
    ChatMessageHeld,
    ChatMessageSubmitted,
    ModerationAction,
    ModerationActionRequested,
    RejectionReason,
    outcome_ids,
)
from events.ingest import IngestConnected, SegmentPublished
from events.streams import StreamCreated
from stream_processors.moderation.actions import Request, act_on
from stream_processors.moderation.chat_rules import (
    ChatLimits,
    Sender,
    SenderHistory,
    Verdict,
    evaluate,
    fingerprint,
)
from stream_processors.moderation.commands import parse_command
from stream_processors.moderation.messages import accepted, held, keep_held, keep_shown, rejected
from stream_processors.moderation.roster import ChatRoster
from stream_processors.moderation.state import (
    MAX_CHATTERS,
    PRODUCER,
    RECENT_CAUSES,
    ChatChannel,
    decision_id,
    privileged,
)

__all__ = [
    "CAUSES",
    "PRODUCER",
    "decide",
    "decision_id",
    "decision_ids",
    "stream_id_of",
]

MEDIA_DRIFT_MS = 1000  # re-anchor the media clock only past this much drift (fewer table writes)
CHANNEL_PRINTS = 500
CAUSES: tuple[type[Event], ...] = (
    ChatMessageSubmitted,
    ModerationActionRequested,
    StreamCreated,
    IngestConnected,
    SegmentPublished,
)
Outcome = tuple[ChatChannel, list[Event]]


def decision_ids(cause_id: str) -> list[str]:
    """Every id a decision on ``cause_id`` can have, held messages included."""
    return [*outcome_ids(cause_id), str(decision_id(cause_id, ChatMessageHeld))]


def stream_id_of(event: Event) -> str | None:
    """The stream a moderation cause is about; None for events the agent ignores."""
    return getattr(event, "stream_id", None) if isinstance(event, CAUSES) else None


def decide(
    state: ChatChannel, cause: Event, now: datetime, *, roster: ChatRoster, limits: ChatLimits
) -> Outcome:
    """The next state and the decisions to publish for ``cause``."""
    match cause:
        case StreamCreated():
            return replace(state, channel_id=cause.channel_id, owner_id=cause.owner_id), []
        case IngestConnected():
            return replace(state, media_anchor_ms=_ms(cause.occurred_at)), []
        case SegmentPublished():
            return _reanchor(state, cause), []
    short = cause.event_id.hex[:16]
    if short in state.recent_causes:
        return state, []
    if isinstance(cause, ChatMessageSubmitted):
        new_state, decisions = _on_submitted(state, cause, now, roster, limits)
    elif isinstance(cause, ModerationActionRequested):
        new_state, decisions = _on_requested(state, cause, now, roster)
    else:
        return state, []
    recent = (*new_state.recent_causes, short)[-RECENT_CAUSES:]
    return replace(new_state, recent_causes=recent), decisions


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _reanchor(state: ChatChannel, e: SegmentPublished) -> ChatChannel:
    anchor = _ms(e.occurred_at) - (e.media_time_ms + e.duration_ms)
    if state.media_anchor_ms is not None and abs(anchor - state.media_anchor_ms) <= MEDIA_DRIFT_MS:
        return state
    return replace(state, media_anchor_ms=anchor)


# --- messages -----------------------------------------------------------------------------------


def _on_submitted(
    state: ChatChannel, e: ChatMessageSubmitted, now: datetime, roster: ChatRoster, limits: ChatLimits
) -> Outcome:
    command = parse_command(e.text)
    if command is not None:
        if not privileged(state, e.user_id, roster):
            return state, [rejected(state, e, RejectionReason.OTHER, f"/{command.name} is for moderators")]
        request = Request.from_command(e, command, state, roster)
        if request.problem:
            return state, [rejected(state, e, RejectionReason.OTHER, request.problem)]
        return act_on(state, request, now, roster)
    at = now.timestamp()
    if e.user_id in state.bans:
        return state, [rejected(state, e, RejectionReason.BANNED, "you are banned from this chat")]
    if state.timeouts.get(e.user_id, 0.0) > at:
        left = int(state.timeouts[e.user_id] - at) + 1
        return state, [rejected(state, e, RejectionReason.TIMED_OUT, f"timed out for {left} s more")]
    sender = Sender(
        privileged=privileged(state, e.user_id, roster),
        followed_at=roster.followed_at(state.channel_id, e.user_id),
    )
    history = SenderHistory(sent=state.sent.get(e.user_id, ()), channel=state.channel_prints)
    verdict = evaluate(
        e.text, now, rules=limits.effective(state.rules), limits=limits, sender=sender, history=history
    )
    if verdict.verdict is Verdict.REJECTED:
        assert verdict.reason is not None
        return state, [rejected(state, e, verdict.reason, verdict.detail)]
    if verdict.verdict is Verdict.HELD:
        on_hold = held(state, e, verdict.score, verdict.signals)
        return keep_held(state, on_hold), [on_hold]
    shown = accepted(state, e)
    return keep_shown(_remember(state, e, at, limits), shown, _ms(shown.occurred_at)), [shown]


def _remember(state: ChatChannel, e: ChatMessageSubmitted, at: float, limits: ChatLimits) -> ChatChannel:
    keep = max(limits.rate_window_s, limits.duplicate_window_s, state.rules.slow_mode_s)
    print_ = fingerprint(e.text)
    mine = (*(p for p in state.sent.get(e.user_id, ()) if at - p[0] < keep), (at, print_))
    sent = {u: p for u, p in state.sent.items() if u != e.user_id and at - p[-1][0] < keep}
    sent[e.user_id] = mine[-limits.rate_messages :]
    prints = tuple(p for p in state.channel_prints if at - p[0] < limits.unique_window_s)
    chatters = {k: v for k, v in state.chatters.items() if v != e.user_id}
    chatters[e.display_name.casefold()] = e.user_id
    return replace(
        state,
        sent=sent,
        channel_prints=(*prints, (at, print_))[-CHANNEL_PRINTS:],
        chatters=dict(list(chatters.items())[-MAX_CHATTERS:]),
    )


# --- actions ------------------------------------------------------------------------------------


def _on_requested(
    state: ChatChannel, e: ModerationActionRequested, now: datetime, roster: ChatRoster
) -> Outcome:
    if e.action is ModerationAction.UNKNOWN or not privileged(state, e.actor_id, roster):
        return state, []  # refused: nothing is published (the request itself is the audit record)
    return act_on(state, Request.from_requested(e), now, roster)
