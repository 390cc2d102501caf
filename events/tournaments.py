"""Tournament and match events (topic ``tournaments``, keyed by ``tournament_id``).

Keyed by tournament rather than stream: a match is watched through several streams (main, POVs,
co-streams), and one tournament's bracket must stay in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from events.base import Event

__all__ = [
    "MatchEnded",
    "MatchScheduled",
    "MatchScoreUpdated",
    "MatchStarted",
    "TeamScore",
    "TournamentCreated",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class TeamScore:
    """One team's score in a match (maps or rounds won, depending on the game)."""

    team: str
    score: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TournamentCreated(Event):
    """An organiser created a tournament."""

    tournament_id: str
    name: str
    game: str
    organizer_id: str
    starts_at: datetime
    ends_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchScheduled(Event):
    """A match of a tournament got its teams and planned start."""

    tournament_id: str
    match_id: str
    teams: tuple[str, ...]
    scheduled_start: datetime
    best_of: int = 1
    round_name: str = ""
    stream_id: str | None = None  # the main broadcast, when already known


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchStarted(Event):
    """A match began (drives follower notifications)."""

    tournament_id: str
    match_id: str
    started_at: datetime
    stream_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchScoreUpdated(Event):
    """The full current score of a match (replace, not increment: redelivery changes nothing)."""

    tournament_id: str
    match_id: str
    scores: tuple[TeamScore, ...]
    game_number: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchEnded(Event):
    """A match finished; ``winner`` is None for a draw or a cancelled match."""

    tournament_id: str
    match_id: str
    ended_at: datetime
    scores: tuple[TeamScore, ...] = ()
    winner: str | None = None
