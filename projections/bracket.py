"""A tournament's bracket drawn from its matches' results: rounds in order, winners advancing.

Pure: it takes the ``matches`` rows of the read model (``round_name``, ``teams``, ``scores``,
``winner``, ``scheduled_start``) and needs no event of its own. Rounds are the matches' round names,
ordered by their first scheduled start (organisers play a round before the next). A finished match
*advances to* the first match of a later round that its winner plays in; each round's matches are
then ordered by the position of the match they feed (the winner of the upper feeder taking the upper
slot), so the two matches feeding one match sit side by side, as a drawn bracket shows them.
A match nobody advanced from yet keeps its scheduled order, after those that did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["BracketMatch", "Round", "Slot", "bracket"]

DEFAULT_ROUND = "Match"
_LAST = datetime.max


@dataclass(frozen=True, slots=True)
class Slot:
    """One team of a match in the bracket: its score (None before any) and whether it won."""

    team: str
    score: int | None
    won: bool


@dataclass(frozen=True, slots=True)
class BracketMatch:
    """A match as the bracket draws it; ``advances_to`` is the later match its winner plays in."""

    match_id: str
    state: str
    scheduled_start: datetime | None
    slots: tuple[Slot, ...]
    winner: str | None
    advances_to: str | None


@dataclass(frozen=True, slots=True)
class Round:
    """A column of the bracket."""

    name: str
    matches: tuple[BracketMatch, ...]


def bracket(matches: Sequence[Mapping[str, Any]]) -> tuple[Round, ...]:
    """The rounds of a tournament's matches, each round's matches in drawing order."""
    rounds = _rounds(matches)
    advances = _advances(rounds)
    ordered: list[list[Mapping[str, Any]]] = [[] for _ in rounds]
    for index in reversed(range(len(rounds))):
        ordered[index] = _drawing_order(
            rounds[index][1], advances, ordered[index + 1] if index + 1 < len(rounds) else []
        )
    return tuple(
        Round(name, tuple(_bracket_match(m, advances.get(m["match_id"])) for m in column))
        for (name, _), column in zip(rounds, ordered, strict=True)
    )


def _start(match: Mapping[str, Any]) -> datetime:
    start = match.get("scheduled_start")
    return start.replace(tzinfo=None) if isinstance(start, datetime) else _LAST


def _schedule_key(match: Mapping[str, Any]) -> tuple[datetime, str]:
    return _start(match), str(match["match_id"])


def _rounds(matches: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[Mapping[str, Any]]]]:
    """Matches grouped by round name, rounds by their first start, matches by start."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for match in matches:
        groups.setdefault(match.get("round_name") or DEFAULT_ROUND, []).append(match)
    for group in groups.values():
        group.sort(key=_schedule_key)
    return sorted(groups.items(), key=lambda item: (_schedule_key(item[1][0]), item[0]))


def _advances(rounds: list[tuple[str, list[Mapping[str, Any]]]]) -> dict[str, str]:
    """match id -> the first later match (by round, then start) its winner plays in."""
    advances: dict[str, str] = {}
    for index, (_, group) in enumerate(rounds):
        later = [m for _, g in rounds[index + 1 :] for m in g]
        for match in group:
            winner = match.get("winner")
            target = next((m for m in later if winner and winner in m["teams"]), None)
            if target is not None:
                advances[match["match_id"]] = target["match_id"]
    return advances


def _drawing_order(
    group: list[Mapping[str, Any]], advances: dict[str, str], next_round: list[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """Feeders of the next round's first match first (upper slot's feeder on top), and so on."""
    position = {m["match_id"]: (i, list(m["teams"])) for i, m in enumerate(next_round)}

    def key(match: Mapping[str, Any]) -> tuple[int, int, datetime, str]:
        fed = position.get(advances.get(match["match_id"], ""))
        if fed is None:
            return len(next_round), 0, *_schedule_key(match)
        index, teams = fed
        return index, teams.index(match["winner"]), *_schedule_key(match)

    return sorted(group, key=key)


def _bracket_match(match: Mapping[str, Any], advances_to: str | None) -> BracketMatch:
    scores = {s["team"]: int(s["score"]) for s in match.get("scores") or []}
    winner = match.get("winner")
    slots = tuple(Slot(team, scores.get(team), team == winner) for team in match["teams"])
    return BracketMatch(
        match_id=match["match_id"],
        state=match.get("state", "scheduled"),
        scheduled_start=match.get("scheduled_start"),
        slots=slots,
        winner=winner,
        advances_to=advances_to,
    )
