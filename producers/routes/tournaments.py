"""Tournaments and matches: create, schedule, start, score, end; listings and details."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, status

from events.base import utc_now
from events.tournaments import (
    MatchEnded,
    MatchScheduled,
    MatchScoreUpdated,
    MatchStarted,
    TeamScore,
    TournamentCreated,
)
from producers import rules
from producers.deps import (
    CurrentUser,
    Cursor,
    Limit,
    Principal,
    ReadYourWrites,
    ServicesDep,
    SpoilerViewDep,
)
from producers.models.common import ID_PATTERN, Accepted, Moment, Name
from producers.models.streams import StreamOut
from producers.models.tournaments import (
    BracketOut,
    MatchAccepted,
    MatchCreateRequest,
    MatchDetail,
    MatchEndRequest,
    MatchListItem,
    MatchPage,
    ScoreRequest,
    StartMatchRequest,
    TeamScoreIn,
    TournamentAccepted,
    TournamentCreateRequest,
    TournamentDetail,
    TournamentOut,
    TournamentPage,
)
from producers.pagination import encode_cursor, sort_key
from producers.problems import NotFound, documented
from producers.routes import API_PREFIX, GameFilter, LanguageFilter, TagFilter, accepted
from producers.services import Services
from producers.spoilers import SpoilerView, hide_matches, hide_rows, streams_seen
from projections.bracket import bracket
from projections.queries.tournaments import match_audiences

router = APIRouter(prefix=API_PREFIX, tags=["tournaments"], dependencies=[ReadYourWrites])
TournamentId = Annotated[str, Path(pattern=ID_PATTERN, description="The tournament's id.")]
MatchId = Annotated[str, Path(pattern=ID_PATTERN, description="The match's id.")]


@router.post(
    "/tournaments",
    status_code=status.HTTP_201_CREATED,
    response_model=TournamentAccepted,
    responses=documented(401, 403, 422, 503),
)
async def create_tournament(
    body: TournamentCreateRequest, user: CurrentUser, services: ServicesDep
) -> TournamentAccepted:
    """Create a tournament you organise (streamers and admins)."""
    rules.check_can_organize(user.role)
    tournament_id = str(uuid.uuid4())
    event = TournamentCreated(
        tournament_id=tournament_id,
        name=body.name,
        game=body.game,
        organizer_id=user.user_id,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
    )
    return TournamentAccepted(**accepted(await services.bus.publish(event)), tournament_id=tournament_id)


@router.get("/tournaments", response_model=TournamentPage, responses=documented(400, 422))
async def list_tournaments(
    services: ServicesDep,
    game: Annotated[Name | None, Query(description="Only tournaments of this game.")] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> TournamentPage:
    """Tournaments, latest start first (cursor-paginated)."""
    rows, next_cursor = await services.tournaments.tournaments(game=game, limit=limit, cursor=cursor)
    return TournamentPage(items=[TournamentOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/tournaments/{tournament_id}", response_model=TournamentDetail, responses=documented(404))
async def get_tournament(
    tournament_id: TournamentId, services: ServicesDep, view: SpoilerViewDep
) -> TournamentDetail:
    """A tournament with its matches."""
    tournament = await _tournament(services, tournament_id)
    matches = hide_matches(await services.tournaments.matches(tournament_id), view)
    audiences = await _audiences(services, [m["match_id"] for m in matches])
    matches = [{**m, **audiences[m["match_id"]]} for m in matches]
    return TournamentDetail.model_validate({**tournament, "matches": matches})


@router.get("/tournaments/{tournament_id}/bracket", response_model=BracketOut, responses=documented(404))
async def get_bracket(tournament_id: TournamentId, services: ServicesDep, view: SpoilerViewDep) -> BracketOut:
    """The tournament's bracket: its rounds in order, each match's result, winners advancing."""
    await _tournament(services, tournament_id)
    rounds = bracket(hide_matches(await services.tournaments.matches(tournament_id), view))
    return BracketOut.model_validate(
        {
            "tournament_id": tournament_id,
            "rounds": [
                {
                    "name": r.name,
                    "matches": [
                        {
                            "match_id": m.match_id,
                            "state": m.state,
                            "scheduled_start": m.scheduled_start,
                            "teams": [{"team": t.team, "score": t.score, "won": t.won} for t in m.slots],
                            "winner": m.winner,
                            "advances_to": m.advances_to,
                            "result_hidden": view.hides(m.match_id),
                        }
                        for m in r.matches
                    ],
                }
                for r in rounds
            ],
        }
    )


@router.get("/matches", response_model=MatchPage, responses=documented(400, 422))
async def list_matches(
    services: ServicesDep,
    view: SpoilerViewDep,
    state: Annotated[Literal["scheduled", "live", "ended"] | None, Query()] = None,
    game: GameFilter = None,
    tag: TagFilter = None,
    language: LanguageFilter = None,
    starts_after: Annotated[
        Moment | None,
        Query(description="Only matches scheduled at or after this time (ISO 8601, with zone)."),
    ] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> MatchPage:
    """Matches of every tournament, soonest first, by state, game, tag or language (cursor-paginated)."""
    rows = await services.tournaments.matches_after(
        state=state,
        game=game,
        tag=tag,
        language=language,
        starts_after=starts_after,
        limit=limit,
        after=sort_key(cursor, (datetime, str)),
    )
    audiences = await _audiences(services, [m["match_id"] for m in rows])
    seen = await seen_matches(services, view, rows)
    items = [MatchListItem.model_validate({**m, **audiences[m["match_id"]]}) for m in seen]
    last = rows[-1] if len(rows) == limit else None
    return MatchPage(
        items=items, next_cursor=encode_cursor(last["scheduled_start"], last["match_id"]) if last else None
    )


@router.post(
    "/tournaments/{tournament_id}/matches",
    status_code=status.HTTP_201_CREATED,
    response_model=MatchAccepted,
    responses=documented(401, 403, 404, 422, 503),
)
async def schedule_match(
    tournament_id: TournamentId, body: MatchCreateRequest, user: CurrentUser, services: ServicesDep
) -> MatchAccepted:
    """Add a match to the tournament (organizer or admin)."""
    tournament = await _tournament(services, tournament_id)
    rules.check_owner_or_admin(user.user_id, user.role, tournament["organizer_id"], "tournament")
    match_id = str(uuid.uuid4())
    event = MatchScheduled(
        tournament_id=tournament_id,
        match_id=match_id,
        teams=tuple(body.teams),
        scheduled_start=body.scheduled_start,
        best_of=body.best_of,
        round_name=body.round_name,
    )
    receipt = await services.bus.publish(event)
    return MatchAccepted(**accepted(receipt), match_id=match_id, tournament_id=tournament_id)


@router.get("/matches/{match_id}", response_model=MatchDetail, responses=documented(404))
async def get_match(match_id: MatchId, services: ServicesDep, view: SpoilerViewDep) -> MatchDetail:
    """A match with every stream attached to it and its combined audience."""
    match = (await seen_matches(services, view, [await _match(services, match_id)]))[0]
    streams = streams_seen(await services.streams.of_match(match_id), view)
    audience = (await _audiences(services, [match_id]))[match_id]
    return MatchDetail.model_validate(
        {**match, **audience, "streams": [StreamOut.model_validate(s) for s in streams]}
    )


@router.post(
    "/matches/{match_id}/start",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=documented(401, 403, 404, 409, 422, 503),
)
async def start_match(
    match_id: MatchId, user: CurrentUser, services: ServicesDep, body: StartMatchRequest | None = None
) -> Accepted:
    """Start a scheduled match (organizer or admin)."""
    match = await _organized_match(services, match_id, user)
    rules.check_match_transition("start", match["state"])
    stream_id = (body.stream_id if body else None) or match["main_stream_id"]
    event = MatchStarted(
        tournament_id=match["tournament_id"], match_id=match_id, started_at=utc_now(), stream_id=stream_id
    )
    return Accepted(**accepted(await services.bus.publish(event)))


@router.post(
    "/matches/{match_id}/score",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=documented(401, 403, 404, 409, 422, 503),
)
async def update_score(
    match_id: MatchId, body: ScoreRequest, user: CurrentUser, services: ServicesDep
) -> Accepted:
    """Replace a live match's score (organizer or admin)."""
    match = await _organized_match(services, match_id, user)
    rules.check_match_transition("score", match["state"])
    rules.check_scores(match["teams"], [s.team for s in body.scores])
    event = MatchScoreUpdated(
        tournament_id=match["tournament_id"],
        match_id=match_id,
        scores=_team_scores(body.scores),
        game_number=body.game_number,
    )
    return Accepted(**accepted(await services.bus.publish(event)))


@router.post(
    "/matches/{match_id}/end",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=documented(401, 403, 404, 409, 422, 503),
)
async def end_match(
    match_id: MatchId, user: CurrentUser, services: ServicesDep, body: MatchEndRequest | None = None
) -> Accepted:
    """End a live match with its final score (organizer or admin)."""
    match = await _organized_match(services, match_id, user)
    rules.check_match_transition("end", match["state"])
    body = body or MatchEndRequest()
    if body.scores is not None:
        rules.check_scores(match["teams"], [s.team for s in body.scores])
        scores = _team_scores(body.scores)
    else:
        scores = tuple(TeamScore(team=s["team"], score=int(s["score"])) for s in match["scores"] or [])
    rules.check_winner(match["teams"], body.winner)
    event = MatchEnded(
        tournament_id=match["tournament_id"],
        match_id=match_id,
        ended_at=utc_now(),
        scores=scores,
        winner=body.winner if body.winner is not None else _leader(scores),
    )
    return Accepted(**accepted(await services.bus.publish(event)))


async def seen_matches(
    services: Services, view: SpoilerView, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Match rows as ``view`` lets them be seen (every match of their tournaments read to decide)."""
    if not view.hide:
        return hide_matches(rows, view)
    everything = await services.tournaments.matches_of(sorted({m["tournament_id"] for m in rows}))
    return hide_rows(rows, everything, view)


def _team_scores(scores: list[TeamScoreIn]) -> tuple[TeamScore, ...]:
    return tuple(TeamScore(team=s.team, score=s.score) for s in scores)


def _leader(scores: tuple[TeamScore, ...]) -> str | None:
    """The team with the strictly highest score; None on a tie (a draw)."""
    ranked = sorted(scores, key=lambda s: s.score, reverse=True)
    if not ranked or (len(ranked) > 1 and ranked[0].score == ranked[1].score):
        return None
    return ranked[0].team


async def _audiences(services: Services, match_ids: list[str]) -> dict[str, dict[str, Any]]:
    return await match_audiences(services.redis, services.namespace.redis_prefix, match_ids)


async def _tournament(services: Services, tournament_id: str) -> dict[str, Any]:
    tournament = await services.tournaments.tournament(tournament_id)
    if tournament is None:
        raise NotFound(f"no tournament {tournament_id}")
    return tournament


async def _match(services: Services, match_id: str) -> dict[str, Any]:
    match = await services.tournaments.match(match_id)
    if match is None:
        raise NotFound(f"no match {match_id}")
    return match


async def _organized_match(services: Services, match_id: str, user: Principal) -> dict[str, Any]:
    match = await _match(services, match_id)
    tournament = await _tournament(services, match["tournament_id"])
    rules.check_owner_or_admin(user.user_id, user.role, tournament["organizer_id"], "tournament")
    return match
