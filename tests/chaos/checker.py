"""The checker: the history of a chaos run against the final topics and read models, Jepsen style.

* chat: every acknowledged message has exactly one decision (accepted, rejected or held) in
  ``chat.messages``; none lost, none duplicated, and each sender's decisions in the order the sender
  was acknowledged (one stream is one partition of ``chat.messages``: its order is the stream's);
* votes: every acknowledged vote is in ``polls.votes`` once (by event id), and each poll's last tally
  on ``polls.tallies`` equals a recount of ``polls.votes`` (a voter's last vote counts);
* registrations: every username answered 201 is registered exactly once on ``users``, also those
  first answered 503 and retried with their Idempotency-Key; one answered only 503 "outcome
  unknown" at most once (Jepsen's indeterminate), and one never answered 201 otherwise not at all;
* projections: the read models (PostgreSQL tables, Redis read-model keys) equal a clean replay of the
  log (``esports rebuild``, run after the projectors stopped).
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from events.base import Event
from events.chat import ChatMessageAccepted, ChatMessageHeld, ChatMessageRejected
from events.codec import EventCodec
from events.polls import PollTallyUpdated, PollVoted
from events.users import UserRegistered
from infra.settings import Settings
from tests.chaos.load import History
from tests.integration.test_processor_restarts import read_topics

DECISIONS = (ChatMessageAccepted, ChatMessageRejected, ChatMessageHeld)


@dataclass
class Verdict:
    """What the checker found, per kind of operation."""

    acknowledged: Counter[str] = field(default_factory=Counter)
    lost: Counter[str] = field(default_factory=Counter)
    duplicated: Counter[str] = field(default_factory=Counter)
    reordered: Counter[str] = field(default_factory=Counter)
    indeterminate: Counter[str] = field(default_factory=Counter)  # answered "outcome unknown"
    problems: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (
            sum(self.lost.values()) or sum(self.duplicated.values()) or sum(self.reordered.values())
        ) and (not self.problems)


async def check_log(settings: Settings, codec: EventCodec, history: History, stream: str) -> Verdict:
    topics = await read_topics(settings, codec, ["chat.messages", "polls.votes", "polls.tallies", "users"])
    verdict = Verdict()
    _check_chat(verdict, history, topics["chat.messages"], stream)
    _check_votes(verdict, history, topics["polls.votes"], topics["polls.tallies"])
    _check_registrations(verdict, history, topics["users"])
    return verdict


def _check_chat(verdict: Verdict, history: History, log: list[Event], stream: str) -> None:
    decided: dict[str, list[int]] = defaultdict(list)
    for index, event in enumerate(log):
        if isinstance(event, DECISIONS) and event.stream_id == stream:
            decided[event.message_id].append(index)
    by_sender: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for op in history.acked("chat"):
        verdict.acknowledged["chat"] += 1
        message_id = op.detail["message_id"]
        found = decided.get(message_id, [])
        if not found:
            verdict.lost["chat"] += 1
            verdict.problems.append(f"chat {op.key} ({message_id}) acknowledged, never decided")
        elif len(found) > 1:
            verdict.duplicated["chat"] += 1
            verdict.problems.append(f"chat {op.key} ({message_id}) decided {len(found)} times")
        else:
            by_sender[op.detail.get("sender", op.key)].append((op.detail.get("sequence", 0), message_id))
    for sender, sent in by_sender.items():
        order = [decided[message_id][0] for _, message_id in sorted(sent)]
        inversions = sum(1 for a, b in itertools.pairwise(order) if b < a)
        if inversions:
            verdict.reordered["chat"] += inversions
            verdict.problems.append(f"chat of {sender}: {inversions} decisions out of the order sent")


def _check_votes(verdict: Verdict, history: History, votes: list[Event], tallies: list[Event]) -> None:
    copies = Counter(str(event.event_id) for event in votes if isinstance(event, PollVoted))
    for op in history.acked("vote"):
        verdict.acknowledged["vote"] += 1
        event_id = op.detail["answer"].get("event_id")
        if copies[event_id] == 0:
            verdict.lost["vote"] += 1
            verdict.problems.append(f"vote {op.key} ({event_id}) acknowledged, not in polls.votes")
        elif copies[event_id] > 1:
            verdict.duplicated["vote"] += 1
            verdict.problems.append(f"vote {op.key} ({event_id}) {copies[event_id]} times in polls.votes")
    last_vote: dict[str, dict[str, int]] = defaultdict(dict)
    for event in votes:  # a voter's votes are on one partition, in order: the last one counts
        if isinstance(event, PollVoted):
            last_vote[event.poll_id][event.user_id] = event.option
    last_tally = {e.poll_id: e for e in tallies if isinstance(e, PollTallyUpdated)}
    for poll, voters in last_vote.items():
        tally = last_tally.get(poll)
        recount = Counter(voters.values())
        counts = list(tally.counts) if tally else []
        expected = [recount.get(option, 0) for option in range(len(counts) or 3)]
        if counts != expected:
            verdict.problems.append(f"poll {poll}: tally {counts} != recount {expected}")


def _check_registrations(verdict: Verdict, history: History, users: list[Event]) -> None:
    registered = Counter(event.username for event in users if isinstance(event, UserRegistered))
    answered = {op.key for op in history.acked("register")}
    for username in answered:
        verdict.acknowledged["register"] += 1
        if registered[username] == 0:
            verdict.lost["register"] += 1
            verdict.problems.append(f"register {username} answered 201, not on users")
        elif registered[username] > 1:
            verdict.duplicated["register"] += 1
            verdict.problems.append(f"register {username} {registered[username]} times on users")
    unknown = {op.key for op in history.of("register") if op.detail.get("outcome_unknown")} - answered
    for username in unknown:  # the API said it may have happened: at most once
        verdict.indeterminate["register"] += 1
        if registered[username] > 1:
            verdict.duplicated["register"] += 1
            verdict.problems.append(f"register {username} (outcome unknown) {registered[username]} times")
    never = {op.key for op in history.of("register")} - answered - unknown
    for username in never:  # refused (service-unavailable, ...): nothing behind the caller's back
        if registered[username]:
            answers = [
                op.detail.get("status", op.detail.get("error"))
                for op in history.of("register")
                if op.key == username
            ]
            verdict.problems.append(
                f"register {username} never answered 201, yet registered (answers {answers})"
            )


def differences(live: dict[str, Any], replay: dict[str, Any]) -> list[str]:
    """What differs between two dumps (table or key → rows or value): rows compared as sets, since
    a dump's ORDER BY may leave ties (a view's rows) in any order."""
    found = []
    for name in sorted(set(live) | set(replay)):
        mine, theirs = _rows(live.get(name)), _rows(replay.get(name))
        if mine != theirs:
            only_live, only_replay = (
                [r for r in mine if r not in theirs],
                [r for r in theirs if r not in mine],
            )
            found.append(
                f"{name}: only live {str(only_live)[:300]}; only in the replay {str(only_replay)[:300]}"
            )
    return found


def _rows(value: Any) -> Any:
    return sorted(value, key=repr) if isinstance(value, list) else value
