"""Follows: channels and tournaments the current user follows."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from events.users import ChannelFollowed, ChannelUnfollowed, TournamentFollowed, TournamentUnfollowed
from producers.deps import CurrentUser, ReadYourWrites, ServicesDep
from producers.models.common import ID_PATTERN, Accepted
from producers.models.follows import Follows
from producers.problems import NotFound, documented
from producers.routes import API_PREFIX, accepted

router = APIRouter(prefix=API_PREFIX + "/me/follows", tags=["follows"], dependencies=[ReadYourWrites])
TargetId = Annotated[str, Path(pattern=ID_PATTERN)]
_COMMAND = {
    "status_code": status.HTTP_202_ACCEPTED,
    "response_model": Accepted,
    "responses": documented(401, 404, 503),
}


@router.put("/channels/{channel_id}", **_COMMAND)  # type: ignore[arg-type]
async def follow_channel(channel_id: TargetId, user: CurrentUser, services: ServicesDep) -> Accepted:
    """Follow a channel."""
    if await services.channels.by_id(channel_id) is None:
        raise NotFound(f"no channel {channel_id}")
    event = ChannelFollowed(user_id=user.user_id, channel_id=channel_id)
    return Accepted(**accepted(await services.bus.publish(event)))


@router.delete("/channels/{channel_id}", **_COMMAND)  # type: ignore[arg-type]
async def unfollow_channel(channel_id: TargetId, user: CurrentUser, services: ServicesDep) -> Accepted:
    """Stop following a channel."""
    event = ChannelUnfollowed(user_id=user.user_id, channel_id=channel_id)
    return Accepted(**accepted(await services.bus.publish(event)))


@router.put("/tournaments/{tournament_id}", **_COMMAND)  # type: ignore[arg-type]
async def follow_tournament(tournament_id: TargetId, user: CurrentUser, services: ServicesDep) -> Accepted:
    """Follow a tournament."""
    if await services.tournaments.tournament(tournament_id) is None:
        raise NotFound(f"no tournament {tournament_id}")
    event = TournamentFollowed(user_id=user.user_id, tournament_id=tournament_id)
    return Accepted(**accepted(await services.bus.publish(event)))


@router.delete("/tournaments/{tournament_id}", **_COMMAND)  # type: ignore[arg-type]
async def unfollow_tournament(tournament_id: TargetId, user: CurrentUser, services: ServicesDep) -> Accepted:
    """Stop following a tournament."""
    event = TournamentUnfollowed(user_id=user.user_id, tournament_id=tournament_id)
    return Accepted(**accepted(await services.bus.publish(event)))


@router.get("", response_model=Follows, responses=documented(401))
async def my_follows(user: CurrentUser, services: ServicesDep) -> Follows:
    """Channels and tournaments you follow."""
    channels, tournaments = await services.catalog.follows(user.user_id)
    return Follows.model_validate({"channels": channels, "tournaments": tournaments})
