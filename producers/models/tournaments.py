"""Tournaments, matches and scores."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from producers.models.common import Accepted, Game, Moment, Name
from producers.models.streams import StreamOut

MatchState = Literal["scheduled", "live", "ended"]


class TournamentCreateRequest(BaseModel):
    """A new tournament; you are its organizer."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "LEC Summer 2025",
                    "game": "League of Legends",
                    "starts_at": "2025-06-14T15:00:00Z",
                    "ends_at": "2025-09-07T20:00:00Z",
                }
            ]
        },
    )

    name: Name
    game: Game
    starts_at: Moment
    ends_at: Moment | None = None

    @model_validator(mode="after")
    def _ends_after_start(self) -> TournamentCreateRequest:
        if self.ends_at is not None and self.ends_at < self.starts_at:
            raise ValueError("ends_at is before starts_at")
        return self


class MatchCreateRequest(BaseModel):
    """A match of the tournament."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "teams": ["G2 Esports", "Fnatic"],
                    "scheduled_start": "2025-06-14T17:00:00Z",
                    "best_of": 5,
                    "round_name": "Final",
                }
            ]
        },
    )

    teams: list[Name] = Field(min_length=2, max_length=16, description="Two or more distinct teams.")
    scheduled_start: Moment
    best_of: Literal[1, 3, 5, 7] = Field(1, description="Odd, 1 to 7.")
    round_name: Name = Field("Match", description="e.g. Quarterfinal, Upper bracket round 2.")

    @model_validator(mode="after")
    def _distinct_teams(self) -> MatchCreateRequest:
        if len(set(self.teams)) != len(self.teams):
            raise ValueError("teams must be distinct")
        return self


class TeamScoreIn(BaseModel):
    """One team's score."""

    model_config = ConfigDict(extra="forbid")

    team: Name
    score: int = Field(ge=0, le=1000)


class ScoreRequest(BaseModel):
    """The full current score (replaces the previous one)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "scores": [{"team": "G2 Esports", "score": 2}, {"team": "Fnatic", "score": 1}],
                    "game_number": 4,
                }
            ]
        },
    )

    scores: list[TeamScoreIn] = Field(min_length=2, max_length=16)
    game_number: int = Field(1, ge=1, le=100)


class MatchEndRequest(BaseModel):
    """The final score; the winner is derived from it unless given (null winner = draw/cancelled)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"scores": [{"team": "G2 Esports", "score": 3}, {"team": "Fnatic", "score": 1}]}]
        },
    )

    scores: list[TeamScoreIn] | None = Field(None, min_length=2, max_length=16)
    winner: Name | None = None


class StartMatchRequest(BaseModel):
    """Optionally name the main broadcast the match starts on."""

    model_config = ConfigDict(extra="forbid")

    stream_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$")


class TournamentAccepted(Accepted):
    """The tournament was created."""

    tournament_id: str


class MatchAccepted(Accepted):
    """The match was scheduled."""

    match_id: str
    tournament_id: str


class TeamScoreOut(BaseModel):
    team: str
    score: int


class MatchOut(BaseModel):
    """A match as the read model has it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "match_id": "m1...",
                    "tournament_id": "t1...",
                    "teams": ["G2 Esports", "Fnatic"],
                    "scheduled_start": "2025-06-14T17:00:00Z",
                    "best_of": 5,
                    "round_name": "Final",
                    "state": "live",
                    "started_at": "2025-06-14T17:02:00Z",
                    "ended_at": None,
                    "scores": [{"team": "G2 Esports", "score": 1}, {"team": "Fnatic", "score": 0}],
                    "winner": None,
                    "main_stream_id": "9e1f...",
                    "viewers": 48210,
                    "peak_viewers": 61377,
                    "average_viewers": 39512.4,
                }
            ]
        }
    )

    match_id: str
    tournament_id: str
    teams: list[str]
    scheduled_start: datetime | None
    best_of: int
    round_name: str
    state: MatchState
    started_at: datetime | None
    ended_at: datetime | None
    scores: list[TeamScoreOut]
    winner: str | None
    main_stream_id: str | None
    viewers: int = Field(
        0, description="Concurrent viewers across all the match's streams, each counted once."
    )
    peak_viewers: int = Field(0, description="The highest combined audience so far.")
    average_viewers: float = Field(0.0, description="Time-weighted mean of the combined audience.")
    result_hidden: bool = Field(
        False,
        description="Spoiler-free mode (`spoilers=hide` or the caller's setting): scores, winner and "
        "end time are withheld until the match is revealed (`reveal=<match_id>`).",
    )


class MatchDetail(MatchOut):
    """A match with every stream attached to it (main broadcast, POVs, co-streams)."""

    streams: list[StreamOut]


class TournamentOut(BaseModel):
    """A tournament."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "tournament_id": "t1...",
                    "name": "LEC Summer 2025",
                    "game": "League of Legends",
                    "organizer_id": "5b0c...",
                    "starts_at": "2025-06-14T15:00:00Z",
                    "ends_at": None,
                    "created_at": "2025-06-01T12:00:00Z",
                }
            ]
        }
    )

    tournament_id: str
    name: str
    game: str
    organizer_id: str
    starts_at: datetime
    ends_at: datetime | None
    created_at: datetime


class TournamentDetail(TournamentOut):
    """A tournament with its matches."""

    matches: list[MatchOut]


class MatchListItem(MatchOut):
    """A match in the listing of every tournament's matches, with its tournament's name and game."""

    tournament_name: str
    game: str


class MatchPage(BaseModel):
    """One page of matches, soonest first."""

    items: list[MatchListItem]
    next_cursor: str | None


class BracketSlotOut(BaseModel):
    """A team in a bracket match."""

    team: str
    score: int | None = Field(description="Its score (null before the first).")
    won: bool


class BracketMatchOut(BaseModel):
    """A match in the bracket."""

    match_id: str
    state: MatchState
    scheduled_start: datetime | None
    teams: list[BracketSlotOut]
    winner: str | None
    advances_to: str | None = Field(description="The later match the winner plays in (null: none yet).")
    result_hidden: bool = Field(False, description="Spoiler-free mode withheld its scores and winner.")


class BracketRoundOut(BaseModel):
    """A column of the bracket: one round's matches, each pair feeding the next round's match."""

    name: str
    matches: list[BracketMatchOut]


class BracketOut(BaseModel):
    """A tournament's bracket drawn from its matches' results (rounds in order, winners advancing)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "tournament_id": "t1...",
                    "rounds": [
                        {
                            "name": "Final",
                            "matches": [
                                {
                                    "match_id": "m1...",
                                    "state": "ended",
                                    "scheduled_start": "2025-06-14T17:00:00Z",
                                    "teams": [
                                        {"team": "G2 Esports", "score": 3, "won": True},
                                        {"team": "Fnatic", "score": 1, "won": False},
                                    ],
                                    "winner": "G2 Esports",
                                    "advances_to": None,
                                }
                            ],
                        }
                    ],
                }
            ]
        }
    )

    tournament_id: str
    rounds: list[BracketRoundOut]


class TournamentPage(BaseModel):
    """One page of tournaments, latest start first."""

    items: list[TournamentOut]
    next_cursor: str | None
