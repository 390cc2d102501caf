"""The command side's guard clauses: pure checks that raise before any event exists.

The lifecycle agent is the authority on a stream's state; the API refuses what it can already see
is illegal in the read model (409) so users get an answer instead of a silent rejection later.
"""

from __future__ import annotations

from collections.abc import Iterable

from producers.problems import Forbidden, IllegalTransition, Unprocessable

ADMIN = "admin"
STREAMER = "streamer"

# stream command -> states of the read model it is allowed from
STREAM_COMMANDS: dict[str, frozenset[str]] = {
    "schedule": frozenset({"created", "scheduled"}),
    "update": frozenset({"created", "scheduled", "live"}),
    "end": frozenset({"live"}),
}
# match command -> (allowed states)
MATCH_COMMANDS: dict[str, frozenset[str]] = {
    "start": frozenset({"scheduled"}),
    "score": frozenset({"live"}),
    "end": frozenset({"live"}),
}


def check_stream_transition(command: str, state: str) -> None:
    if state not in STREAM_COMMANDS[command]:
        raise IllegalTransition(f"cannot {command} a stream that is {state}")


def check_match_transition(command: str, state: str) -> None:
    if state not in MATCH_COMMANDS[command]:
        raise IllegalTransition(f"cannot {command} a match that is {state}")


def check_owner_or_admin(user_id: str, role: str, owner_id: str, what: str) -> None:
    """Only the owner (or an admin) changes a channel, a stream or a tournament."""
    if user_id != owner_id and role != ADMIN:
        raise Forbidden(f"only the owner of this {what} or an admin may do that")


def check_can_moderate(user_id: str, role: str, owner_id: str, is_moderator: bool, what: str) -> None:
    """The channel owner, its moderators and admins moderate a stream (its chat, its end)."""
    if user_id != owner_id and not is_moderator and role != ADMIN:
        raise Forbidden(f"only the channel owner, its moderators or an admin may {what}")


def check_can_end_stream(user_id: str, role: str, owner_id: str, is_moderator: bool) -> str:
    """Owner, channel moderator or admin may end a stream; returns the StreamEndReason value."""
    check_can_moderate(user_id, role, owner_id, is_moderator, "end this stream")
    return "ended_by_owner" if user_id == owner_id else "ended_by_moderator"


def check_can_organize(role: str) -> None:
    if role not in (STREAMER, ADMIN):
        raise Forbidden("only streamers and admins create tournaments")


def check_scores(teams: Iterable[str], scored: Iterable[str]) -> None:
    """A score names each of the match's teams exactly once."""
    expected, given = sorted(teams), sorted(scored)
    if expected != given:
        raise Unprocessable(f"scores must name each team of the match exactly once: {expected}")


def check_winner(teams: Iterable[str], winner: str | None) -> None:
    if winner is not None and winner not in set(teams):
        raise Unprocessable("the winner must be one of the match's teams")
