"""Moderation partitioned by sender decides as the whole-stream unit table says.

:class:`PartitionedChat` has the interface of the unit table's ``Chat`` (``feed``, ``say``, ``act``) but
decides through the hot-stream layout: the stream's moderation (:func:`decide_stream`) and four
:class:`SenderPartition` s, every marker, re-keyed message and unique-chat forward delivered to the
partition its key hashes to, in order. Every case of ``tests/unit/test_moderation.py`` that looks only
at decisions runs against it; the ones reading the whole-stream state are listed with why.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest

import tests.unit.test_moderation as table
from events.base import Event
from events.chat import (
    ChatActionRouted,
    ChatChannelSynced,
    ChatMessageAccepted,
    ChatMessageHeld,
    ChatMessageRejected,
    ChatMessageSent,
    ModerationAction,
    RejectionReason,
)
from events.streams import StreamCreated
from infra.kafka import keys_per_partition, partition_of_key
from stream_processors.moderation.chat_rules import ChatLimits, fingerprint
from stream_processors.moderation.routing import decide_stream
from stream_processors.moderation.senders import SenderPartition
from stream_processors.moderation.state import ChatChannel

PARTITIONS = 4
# Cases that read the whole-stream ChatChannel (held/shown/deleted, its JSON), not decisions, and the
# two known differences (README, "Moderation"): a typed /delete, /approve, /deny or /undelete of a
# message no partition keeps gets no answer (the stream's moderation cannot know where it is kept,
# nor that it is held), and `/ban name` resolves registered usernames, not names seen in chat.
READS_STATE = {
    "test_held_messages_by_chat_command",
    "test_chat_commands_from_moderators_become_actions",
    "test_held_messages_wait_for_approve_or_deny",
    "test_undelete_restores_a_deleted_message_as_it_was",
    "test_only_kept_messages_can_be_undeleted",
    "test_state_round_trips_through_json",
    "test_state_stored_before_shown_and_deleted_still_loads",
    "test_nobody_but_admins_acts_before_the_stream_is_known",
}


class PartitionedChat(table.Chat):
    """The unit table's ``Chat``, decided by the stream's moderation and sender partitions."""

    limits: ChatLimits = table.LIMITS

    def __init__(self) -> None:
        self.roster = table.roster()
        self.state = ChatChannel(stream_id="s1")  # the stream's moderation's
        self.clock = table.T0
        self.keys = keys_per_partition("chat-marker", PARTITIONS)
        self.partitions = [SenderPartition(self.roster, self.limits) for _ in range(PARTITIONS)]
        self.markers: list[Event] = []
        self.feed(StreamCreated(stream_id="s1", channel_id="chan", owner_id="owner", title="t"))

    def feed(self, cause: Event, at: datetime | None = None) -> list[Event]:
        self.state, out = decide_stream(
            self.state, cause, at or self.clock, roster=self.roster, limits=self.limits, sent_keys=self.keys
        )
        decisions: list[Event] = []
        queue: deque[tuple[Event, bytes | None, str]] = deque()
        for event in out:
            if isinstance(event, ChatMessageSent | ChatChannelSynced | ChatActionRouted):
                queue.append((event, None, event.user_id))
            else:
                decisions.append(event)
        while queue:
            event, check, key = queue.popleft()
            self.markers.append(event)
            decided = self.partitions[partition_of_key(key.encode(), PARTITIONS)].apply(event, check)
            decisions.extend(decided.decisions)
            queue.extend((f.message, f.verdict, f.key) for f in decided.forwards)
        return decisions


def _cases() -> list[Any]:
    cases = []
    for name, case in vars(table).items():
        if not name.startswith("test_") or name in READS_STATE:
            continue
        marks = getattr(case, "pytestmark", [])
        params = [m for m in marks if m.name == "parametrize"]
        if not params:
            if not inspect.signature(case).parameters:
                cases.append(pytest.param(case, (), id=name))
            continue
        argnames, values = params[0].args[0], params[0].args[1]
        if "chat" in argnames or not any(p in inspect.signature(case).parameters for p in ("actor",)):
            continue  # parsing tables: nothing to decide
        for value in values:
            args = value if isinstance(value, tuple) else (value,)
            cases.append(pytest.param(case, args, id=f"{name}[{'-'.join(map(str, args))}]"))
    return cases


@pytest.mark.parametrize(("case", "args"), _cases())
def test_the_unit_table_holds_partitioned(
    case: Callable[..., None], args: tuple[Any, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(table, "Chat", PartitionedChat)
    case(*args)


def test_the_table_covers_most_cases() -> None:
    assert len(_cases()) >= 20


def test_held_messages_are_approved_or_denied_where_they_are_kept() -> None:
    chat = PartitionedChat()
    [held] = chat.say("viewer", "you are a b.a.d.w.o.r.d")
    assert isinstance(held, ChatMessageHeld)
    keeping = [p for p in chat.partitions if held.message_id in p.kept]
    assert len(keeping) == 1 and keeping[0] is chat.partitions[partition_of_key(b"viewer", PARTITIONS)]
    [accepted] = chat.act("mod", ModerationAction.APPROVE, target_message_id=held.message_id)
    assert isinstance(accepted, ChatMessageAccepted) and accepted.approved_by == "mod"
    # the approve reached every partition; only the keeper decided, and only once
    assert chat.act("mod", ModerationAction.APPROVE, target_message_id=held.message_id) == []


def test_a_deleted_message_is_restored_by_the_partition_keeping_it() -> None:
    chat = PartitionedChat()
    [shown] = chat.say("viewer", "nice play")
    [deleted] = chat.act("mod", ModerationAction.DELETE, target_message_id=shown.message_id)
    [restored] = chat.act("mod", ModerationAction.UNDELETE, target_message_id=shown.message_id)
    assert (deleted.message_id, restored.message_id, restored.text) == (shown.message_id,) * 2 + (
        "nice play",
    )
    assert chat.act("mod", ModerationAction.UNDELETE, target_message_id="never-sent") == []


def test_unique_chat_is_exact_across_partitions() -> None:
    chat = PartitionedChat()
    assert chat.say("owner", "/uniquechat on")
    senders = ["viewer", "alice", "bob", "carol", "dave"]
    assert len({partition_of_key(s.encode(), PARTITIONS) for s in senders}) > 1
    decisions = [only for s in senders for only in chat.say(s, "G G  W P", after_s=1)]
    kinds = [(type(d), getattr(d, "reason", None)) for d in decisions]
    assert kinds[0] == (ChatMessageAccepted, None)
    assert kinds[1:] == [(ChatMessageRejected, RejectionReason.UNIQUE_CHAT)] * 4
    [later] = chat.say("erin", "gg wp", after_s=table.LIMITS.unique_window_s)
    assert isinstance(later, ChatMessageAccepted)


def test_checkpointed_keys_load_back_into_the_same_decisions() -> None:
    chat = PartitionedChat()
    chat.act("mod", ModerationAction.BAN, target_user_id="u-troll")
    chat.act("mod", ModerationAction.TIMEOUT, target_user_id="viewer", duration_s=600)
    [held] = chat.say("alice", "you are a b.a.d.w.o.r.d")
    chat.say("bob", "hello there")
    for i, partition in enumerate(chat.partitions):
        reloaded = SenderPartition(chat.roster, chat.limits)
        for key, value in partition.changes():
            reloaded.load(key, value)
        assert (reloaded.channels, reloaded.senders, reloaded.kept) == (
            partition.channels,
            partition.senders,
            partition.kept,
        ), i
        chat.partitions[i] = reloaded
    assert [type(d) for d in chat.say("u-troll", "let me in")] == [ChatMessageRejected]
    assert only_reason(chat.say("viewer", "back?")) is RejectionReason.TIMED_OUT
    [accepted] = chat.act("mod", ModerationAction.APPROVE, target_message_id=held.message_id)
    assert isinstance(accepted, ChatMessageAccepted)
    assert only_reason(chat.say("bob", "hello there", after_s=1)) is RejectionReason.DUPLICATE


def test_idle_slices_are_forgotten_but_bans_are_kept() -> None:
    chat = PartitionedChat()
    chat.act("mod", ModerationAction.BAN, target_user_id="u-troll")
    chat.say("viewer", "hi")
    chat.say("alice", "hi there", after_s=2 * 60 * 60)  # two hours later
    kept = {key for p in chat.partitions for key in p.senders}
    assert chat.partitions[partition_of_key(b"viewer", PARTITIONS)].expire() >= 1
    left = {key for p in chat.partitions for key in p.senders}
    assert ("s1", "viewer") in kept - left and {("s1", "u-troll"), ("s1", "alice")} <= left


def test_a_sent_command_is_refused() -> None:
    chat = PartitionedChat()
    message = table.submitted("mod", "/ban troll", chat.clock)
    fields = {n: getattr(message, n) for n in type(message).__dataclass_fields__}
    partition = chat.partitions[partition_of_key(b"mod", PARTITIONS)]
    [refused] = partition.apply(ChatMessageSent(**fields)).decisions
    assert isinstance(refused, ChatMessageRejected) and "chat.submitted" in refused.detail


def only_reason(decisions: list[Event]) -> RejectionReason | None:
    [decision] = decisions
    return getattr(decision, "reason", None)


def test_a_unique_check_read_again_decides_the_same() -> None:
    """A forward read again by a partition that stored its print but not the slice remembering it
    (a checkpoint cut short) is not a repeat of itself."""
    chat = PartitionedChat()
    assert chat.say("owner", "/uniquechat on")
    [first] = chat.say("viewer", "glhf everyone")
    forward = next(
        m for m in chat.markers if isinstance(m, ChatMessageSent) and m.message_id == first.message_id
    )
    key = f"s1\x1f{fingerprint(forward.text)}"
    checker = chat.partitions[partition_of_key(key.encode(), PARTITIONS)]
    slice_key = ("s1", "viewer")
    checker.senders[slice_key] = replace(checker.senders[slice_key], recent_causes=())
    [again] = checker.apply(forward, b"accepted").decisions
    assert (type(again), again.event_id) == (ChatMessageAccepted, first.event_id)
    assert checker.apply(forward, b"accepted").decisions == []  # and now it is remembered
