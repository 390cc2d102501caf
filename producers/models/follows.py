"""What a user follows."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class FollowedChannel(BaseModel):
    channel_id: str
    slug: str | None
    display_name: str | None
    followed_at: datetime


class FollowedTournament(BaseModel):
    tournament_id: str
    name: str | None
    followed_at: datetime


class Follows(BaseModel):
    """Channels and tournaments the current user follows, most recent first."""

    channels: list[FollowedChannel]
    tournaments: list[FollowedTournament]
