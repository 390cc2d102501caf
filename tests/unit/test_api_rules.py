"""The command side's guard clauses, exhaustively over states and roles."""

from __future__ import annotations

import itertools

import pytest

from producers import rules
from producers.problems import Forbidden, IllegalTransition, Unprocessable

STREAM_STATES = ("created", "scheduled", "live", "ended")
MATCH_STATES = ("scheduled", "live", "ended")
ALLOWED_STREAM = {
    ("schedule", "created"),
    ("schedule", "scheduled"),
    ("update", "created"),
    ("update", "scheduled"),
    ("update", "live"),
    ("end", "live"),
}
ALLOWED_MATCH = {("start", "scheduled"), ("score", "live"), ("end", "live")}


@pytest.mark.parametrize(("command", "state"), list(itertools.product(rules.STREAM_COMMANDS, STREAM_STATES)))
def test_stream_transitions(command: str, state: str) -> None:
    if (command, state) in ALLOWED_STREAM:
        rules.check_stream_transition(command, state)
    else:
        with pytest.raises(IllegalTransition):
            rules.check_stream_transition(command, state)


@pytest.mark.parametrize(("command", "state"), list(itertools.product(rules.MATCH_COMMANDS, MATCH_STATES)))
def test_match_transitions(command: str, state: str) -> None:
    if (command, state) in ALLOWED_MATCH:
        rules.check_match_transition(command, state)
    else:
        with pytest.raises(IllegalTransition):
            rules.check_match_transition(command, state)


def test_owner_or_admin() -> None:
    rules.check_owner_or_admin("u1", "streamer", "u1", "channel")
    rules.check_owner_or_admin("u2", "admin", "u1", "channel")
    for role in ("viewer", "streamer"):
        with pytest.raises(Forbidden):
            rules.check_owner_or_admin("u2", role, "u1", "channel")


def test_who_ends_a_stream() -> None:
    assert rules.check_can_end_stream("owner", "streamer", "owner", False) == "ended_by_owner"
    assert rules.check_can_end_stream("mod", "viewer", "owner", True) == "ended_by_moderator"
    assert rules.check_can_end_stream("adm", "admin", "owner", False) == "ended_by_moderator"
    with pytest.raises(Forbidden):
        rules.check_can_end_stream("stranger", "streamer", "owner", False)


def test_organisers_and_scores() -> None:
    rules.check_can_organize("streamer")
    rules.check_can_organize("admin")
    with pytest.raises(Forbidden):
        rules.check_can_organize("viewer")
    rules.check_scores(["A", "B"], ["B", "A"])
    for wrong in (["A"], ["A", "A"], ["A", "C"], ["A", "B", "C"]):
        with pytest.raises(Unprocessable):
            rules.check_scores(["A", "B"], wrong)
    rules.check_winner(["A", "B"], None)
    with pytest.raises(Unprocessable):
        rules.check_winner(["A", "B"], "C")
