"""Per-sender moderation (pure): the state of one partition of ``chat.sent`` and its decisions.

``chat.sent`` is keyed by sender, so one stream's chat spreads over every partition and a sender's
messages all land on one. :class:`SenderPartition` keeps, per (stream, sender), a *slice* of the
stream's chat state (:class:`ChatChannel` holding only that sender's recent messages, ban, time-out,
held, shown and deleted messages), and per stream the channel as the stream's moderation last sent it
(``ChatChannelSynced``, written to every partition). A message is decided by the same
:func:`~stream_processors.moderation.decisions.decide` as before, on the stream's channel composed with
the sender's slice: the per-user rules (rate, slow mode, duplicates, time-outs, bans, followers-only)
and the content rules need nothing else.

Unique-chat compares a message with everyone's, so it is checked by a key on the normalised text: a
message that passed everything else is forwarded onto ``chat.sent`` keyed by (stream, fingerprint),
with its verdict in the :data:`UNIQUE_CHECK` header, and the partition of that key accepts (or holds)
it only if no one's accepted message had the same fingerprint within the unique-chat window. The
sender's slice counts a forwarded message towards the sender's rate and duplicates either way.

Routed actions (``ChatActionRouted``): a ban, time-out or unban changes the target's slice; an approve,
deny or undelete reaches every partition and only the one keeping the message (held, or deleted and
restorable) acts, deriving its decisions from the cause as the stream's moderation would have; a
deletion (published by the stream's moderation) moves a kept message aside so it can be restored.

Everything here is a function of the partition's records in order, and each slice remembers the causes
it decided, so a partition re-read from its last checkpoint decides nothing twice. Changed keys are
listed by :meth:`SenderPartition.changes` for the worker's checkpoint (state per key: a batch writes
only what changed), and :meth:`SenderPartition.load` reads them back.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from events.base import Event
from events.chat import (
    ChatActionRouted,
    ChatChannelSynced,
    ChatMessageAccepted,
    ChatMessageHeld,
    ChatMessageSent,
    ModerationAction,
    ModerationActionRequested,
    RejectionReason,
)
from stream_processors.moderation.actions import Request, act_on
from stream_processors.moderation.chat_rules import ChannelRules, ChatLimits, fingerprint
from stream_processors.moderation.commands import parse_command
from stream_processors.moderation.decisions import decide
from stream_processors.moderation.messages import (
    accepted,
    delete_shown,
    held,
    keep_held,
    keep_shown,
    rejected,
)
from stream_processors.moderation.roster import ChatRoster
from stream_processors.moderation.state import PRODUCER, ChatChannel, privileged

__all__ = ["KEPT_PER_SENDER", "UNIQUE_CHECK", "Forward", "SenderPartition"]

UNIQUE_CHECK = "unique-check"  # header of a message forwarded for its unique-chat check: its verdict
KEPT_PER_SENDER = 20  # held, shown and deleted messages kept per (stream, sender) for the reversals
RECENT_PER_SENDER = 32  # decided causes remembered per slice (a checkpoint interval of one sender)
IDLE_S = 30 * 60  # a slice with nothing pending is forgotten this long after its last message
SEP = "\x1f"
CHECKED = "!"  # marks a cause whose unique-chat check was decided (beside its sender's rules)
_NO_RULES = ChannelRules()

SliceKey = tuple[str, str]  # (stream_id, user_id)


@dataclass(frozen=True, slots=True)
class Forward:
    """A message to write to ``chat.sent`` under ``key`` for its unique-chat check."""

    key: str
    message: ChatMessageSent
    verdict: bytes  # the UNIQUE_CHECK header: b"accepted", or the held verdict as JSON


@dataclass(slots=True)
class Decided:
    """What a record decided: events for ``chat.messages`` and forwards for ``chat.sent``."""

    decisions: list[Event] = field(default_factory=list)
    forwards: list[Forward] = field(default_factory=list)


class SenderPartition:
    """The per-sender moderation state of one partition of ``chat.sent``."""

    def __init__(self, roster: ChatRoster, limits: ChatLimits) -> None:
        self._roster = roster
        self._limits = limits
        self.channels: dict[str, ChatChannel] = {}  # stream -> its channel (ChatChannelSynced)
        self.senders: dict[SliceKey, ChatChannel] = {}
        self.kept: dict[str, SliceKey] = {}  # message id -> the slice keeping it
        self.prints: dict[tuple[str, str], tuple[float, str]] = {}  # (stream, print) -> (at, message id)
        self.newest_s = 0.0  # the newest cause time read
        self._changed: set[tuple[str, ...]] = set()

    # -- records ------------------------------------------------------------------------------------

    def apply(self, event: Event, check: bytes | None = None) -> Decided:
        """Fold one record of the partition in; ``check`` is its UNIQUE_CHECK header, if any."""
        self.newest_s = max(self.newest_s, event.occurred_at.timestamp())
        if isinstance(event, ChatMessageSent):
            return self._unique(event, check) if check is not None else self._sent(event)
        if isinstance(event, ChatChannelSynced):
            self._synced(event)
        elif isinstance(event, ChatActionRouted):
            return Decided(self._routed(event))
        return Decided()

    def _sent(self, e: ChatMessageSent) -> Decided:
        key = (e.stream_id, e.user_id)
        mine = self._slice(key)
        state = self._composed(mine)
        if parse_command(e.text) is not None:  # edges send commands to chat.submitted
            if self._seen(mine, e):
                return Decided()
            why = "chat commands go through the stream's moderation (chat.submitted)"
            self._store(key, mine, _remembering(mine, e))
            return Decided([rejected(state, e, RejectionReason.OTHER, why)])
        unique = state.rules.unique_chat and not privileged(state, e.user_id, self._roster)
        if unique:
            state = replace(state, rules=replace(state.rules, unique_chat=False))
        new, decisions = decide(state, e, e.occurred_at, roster=self._roster, limits=self._limits)
        if unique and len(decisions) == 1 and isinstance(decisions[0], ChatMessageAccepted | ChatMessageHeld):
            # Kept by the partition that checks it (and decides it), not here.
            new = replace(new, held=mine.held, shown=mine.shown, deleted=mine.deleted)
            self._store(key, mine, new)
            forward = Forward(f"{e.stream_id}{SEP}{fingerprint(e.text)}", e, _verdict(decisions[0]))
            return Decided(forwards=[forward])
        self._store(key, mine, new)
        return Decided(decisions)

    def _unique(self, e: ChatMessageSent, verdict: bytes) -> Decided:
        key = (e.stream_id, e.user_id)
        mine = self._slice(key)
        if self._seen(mine, e, CHECKED):  # the sender's own partition may be this one: a mark of its own
            return Decided()
        state = self._composed(mine)
        at = e.occurred_at.timestamp()
        print_ = (e.stream_id, fingerprint(e.text))
        last = self.prints.get(print_)
        if last is not None and last[1] != e.message_id and at - last[0] < self._limits.unique_window_s:
            detail = "unique chat: someone sent that already"
            self._store(key, mine, _remembering(mine, e, CHECKED))
            return Decided([rejected(state, e, RejectionReason.UNIQUE_CHAT, detail)])
        decision: Event
        if verdict == b"accepted":
            decision = accepted(state, e)
            new = keep_shown(state, decision, int(decision.occurred_at.timestamp() * 1000))
            self.prints[print_] = (at, e.message_id)
            self._changed.add(("f", *print_))
        else:
            score = json.loads(verdict)
            decision = held(state, e, score["score"], score["signals"])
            new = keep_held(state, decision)
        self._store(key, mine, _remembering(new, e, CHECKED))
        return Decided([decision])

    def _synced(self, e: ChatChannelSynced) -> None:
        rules = ChannelRules(
            blocked_terms=e.blocked_terms,
            link_policy=e.link_policy,
            link_allowlist=e.link_allowlist,
            slow_mode_s=e.slow_mode_s,
            followers_only_min_s=e.followers_only_min_s,
            unique_chat=e.unique_chat,
        )
        channel = ChatChannel(
            stream_id=e.stream_id,
            channel_id=e.channel_id,
            owner_id=e.owner_id,
            rules=rules,
            media_anchor_ms=e.media_anchor_ms,
        )
        if self.channels.get(e.stream_id) != channel:
            self.channels[e.stream_id] = channel
            self._changed.add(("c", e.stream_id))

    def _routed(self, e: ChatActionRouted) -> list[Event]:
        if e.action in (ModerationAction.BAN, ModerationAction.TIMEOUT, ModerationAction.UNBAN):
            user = e.target_user_id or ""
            key = (e.stream_id, user)
            mine = self._slice(key)
            if e.action is ModerationAction.BAN:
                new = replace(mine, bans=frozenset({user}), timeouts={})
            elif e.action is ModerationAction.TIMEOUT and e.until is not None:
                new = replace(mine, bans=frozenset(), timeouts={user: e.until.timestamp()})
            else:
                new = replace(mine, bans=frozenset(), timeouts={})
            self._store(key, mine, new)
            return []
        found = self.kept.get(e.target_message_id or "")
        if found is None or found[0] != e.stream_id:
            return []  # kept by another partition (or by none any more)
        mine = self.senders[found]
        short = uuid.UUID(e.causation_id).hex[:16]
        if short in mine.recent_causes:
            return []
        message_id = e.target_message_id or ""
        decisions: list[Event] = []
        if e.action is ModerationAction.DELETE:  # published by the stream's moderation; keep it aside
            new = delete_shown(mine, message_id)
            new = replace(new, held={k: v for k, v in new.held.items() if k != message_id})
        else:
            new, decisions = act_on(
                self._composed(mine), Request.from_requested(_cause(e)), e.occurred_at, self._roster
            )
        self._store(found, mine, replace(new, recent_causes=(*new.recent_causes, short)[-RECENT_PER_SENDER:]))
        return decisions

    # -- slices -------------------------------------------------------------------------------------

    def _slice(self, key: SliceKey) -> ChatChannel:
        """The slice of (stream, sender), empty if there is none yet."""
        return self.senders.get(key) or ChatChannel(stream_id=key[0])

    def _composed(self, mine: ChatChannel) -> ChatChannel:
        channel = self.channels.get(mine.stream_id)
        if channel is None:
            return mine
        return replace(
            mine,
            channel_id=channel.channel_id,
            owner_id=channel.owner_id,
            rules=channel.rules,
            media_anchor_ms=channel.media_anchor_ms,
        )

    def _seen(self, mine: ChatChannel, e: Event, mark: str = "") -> bool:
        return e.event_id.hex[:16] + mark in mine.recent_causes

    def _store(self, key: SliceKey, before: ChatChannel, after: ChatChannel) -> None:
        """Keep ``after`` (composed or not) as the slice of ``key``, bounded, and index its messages."""
        new = replace(
            after,
            channel_id="",
            owner_id="",
            rules=_NO_RULES,
            media_anchor_ms=None,
            chatters={},
            channel_prints=(),
            held=_last(after.held),
            shown=_last(after.shown),
            deleted=_last(after.deleted),
            recent_causes=after.recent_causes[-RECENT_PER_SENDER:],
        )
        self.senders[key] = new
        self._changed.add(("u", *key))
        gone = _ids(before) - _ids(new)
        for message_id in gone:
            if self.kept.get(message_id) == key:
                del self.kept[message_id]
        for message_id in _ids(new) - _ids(before):
            self.kept[message_id] = key

    def expire(self) -> int:
        """Forget slices with nothing pending, idle for :data:`IDLE_S`, and unique-chat prints past
        their window (by the partition's newest cause time); returns how many keys went."""
        now = self.newest_s
        idle = [key for key, mine in self.senders.items() if _idle(mine, now)]
        for key in idle:
            for message_id in _ids(self.senders.pop(key)):
                self.kept.pop(message_id, None)
            self._changed.add(("u", *key))
        window = self._limits.unique_window_s
        old = [p for p, (at, _) in self.prints.items() if now - at >= window]
        for p in old:
            del self.prints[p]
            self._changed.add(("f", *p))
        return len(idle) + len(old)

    # -- checkpoints --------------------------------------------------------------------------------

    def changes(self) -> list[tuple[bytes, bytes | None]]:
        """The changed keys since :meth:`written`: (key, JSON value), None for a key that is gone."""
        out: list[tuple[bytes, bytes | None]] = []
        for change in self._changed:
            kind, stream, rest = change[0], change[1], change[2:]
            if kind == "c":
                value: Any = self.channels.get(stream)
                value = None if value is None else value.to_json()
            elif kind == "u":
                mine = self.senders.get((stream, rest[0]))
                value = None if mine is None else mine.to_json()
            else:
                value = self.prints.get((stream, rest[0]))
            encoded = None if value is None else json.dumps(value, separators=(",", ":")).encode()
            out.append((SEP.join(change).encode(), encoded))
        return out

    def written(self) -> None:
        """The :meth:`changes` are stored."""
        self._changed.clear()

    def load(self, key: bytes, value: bytes | None) -> None:
        """One stored key back (a checkpoint read in order: the last value of a key wins)."""
        kind, stream, *rest = key.decode().split(SEP, 2)
        data = None if value is None else json.loads(value)
        if kind == "c":
            if data is None:
                self.channels.pop(stream, None)
            else:
                self.channels[stream] = ChatChannel.from_json(data)
        elif kind == "u":
            slice_key = (stream, rest[0])
            before = self.senders.pop(slice_key, None)
            for message_id in () if before is None else _ids(before):
                self.kept.pop(message_id, None)
            if data is not None:
                mine = ChatChannel.from_json(data)
                self.senders[slice_key] = mine
                self.kept.update(dict.fromkeys(_ids(mine), slice_key))
                self.newest_s = max(self.newest_s, _newest(mine))
        elif data is None:
            self.prints.pop((stream, rest[0]), None)
        else:
            self.prints[(stream, rest[0])] = (float(data[0]), str(data[1]))


def _cause(e: ChatActionRouted) -> ModerationActionRequested:
    """The request behind a routed action, as the stream's moderation read it (same id, time, trace)."""
    return ModerationActionRequested(  # contract: not published (the cause, rebuilt to decide it)
        event_id=uuid.UUID(e.causation_id),
        occurred_at=e.occurred_at,
        producer=PRODUCER,
        trace_id=e.trace_id,
        stream_id=e.stream_id,
        action=e.action,
        actor_id=e.actor_id,
        target_user_id=e.target_user_id,
        target_message_id=e.target_message_id,
        reason=e.reason,
    )


def _verdict(decision: Event) -> bytes:
    if isinstance(decision, ChatMessageHeld):
        return json.dumps({"score": decision.score, "signals": list(decision.reasons)}).encode()
    return b"accepted"


def _remembering(state: ChatChannel, e: Event, mark: str = "") -> ChatChannel:
    recent = (*state.recent_causes, e.event_id.hex[:16] + mark)[-RECENT_PER_SENDER:]
    return replace(state, recent_causes=recent)


def _last(kept: dict[str, Any]) -> dict[str, Any]:
    return kept if len(kept) <= KEPT_PER_SENDER else dict(list(kept.items())[-KEPT_PER_SENDER:])


def _ids(mine: ChatChannel) -> set[str]:
    return {*mine.held, *mine.shown, *mine.deleted}


def _newest(mine: ChatChannel) -> float:
    sent = max((at for at, _ in next(iter(mine.sent.values()), ())), default=0.0)
    shown = max((m.shown_at_ms / 1000 for m in (*mine.shown.values(), *mine.deleted.values())), default=0.0)
    return max(sent, shown)


def _idle(mine: ChatChannel, now: float) -> bool:
    if mine.bans or mine.held or any(until > now for until in mine.timeouts.values()):
        return False
    return now - _newest(mine) >= IDLE_S
