"""Channels, their moderators and stream keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from producers.models.common import Accepted, Language, Name, Text

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{2,39}$")]

_CHANNEL_EXAMPLE: dict[str, object] = {
    "channel_id": "c6d8...",
    "owner_id": "5b0c...",
    "slug": "lec-official",
    "display_name": "LEC Official",
    "description": "The League of Legends EMEA Championship",
    "language": "en",
    "low_latency": True,
    "dvr_window_s": 7200,
    "stream_key_id": "sk_1a2b...",
    "created_at": "2025-06-01T18:30:15Z",
    "updated_at": "2025-06-01T18:30:15Z",
}


MAX_DVR_WINDOW_S = 12 * 3600  # the longest DVR window a channel may ask for


class ChannelCreateRequest(BaseModel):
    """A new channel; its owner becomes a streamer."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "slug": "lec-official",
                    "display_name": "LEC Official",
                    "description": "The LEC",
                    "language": "en",
                }
            ]
        },
    )

    slug: Slug = Field(description="Unique URL name: 3-40 of a-z 0-9 -, starting with a letter or digit.")
    display_name: Name
    description: Text = ""
    language: Language = "en"


class ChannelUpdateRequest(BaseModel):
    """Partial update of a channel's profile; absent fields are unchanged."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"description": "Now in English"}, {"low_latency": False}]},
    )

    display_name: Name | None = None
    description: Text | None = None
    language: Language | None = None
    low_latency: bool | None = Field(
        None,
        description="Players start in Low-Latency HLS mode (about 2-3 s behind) when true, in the "
        "standard mode (about 6 s, steadier on poor networks) when false; viewers can switch their own.",
    )
    dvr_window_s: int | None = Field(
        None,
        ge=0,
        le=MAX_DVR_WINDOW_S,
        description="How many seconds back viewers can seek in a live stream (0: a short live window "
        "only); from the next push on. Until set, the ingest node's default (2 h).",
    )


class ChannelAccepted(Accepted):
    """The channel was created."""

    channel_id: str
    slug: str


class StreamKeyIssued(Accepted):
    """A new stream key. It is shown here once and never again: store it in your encoder now."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "event_id": "0b7f...",
                    "position": "channels:1:7",
                    "positions": ["channels:1:7"],
                    "channel_id": "c6d8...",
                    "key_id": "sk_1a2b...",
                    "stream_key": "live_Zx9...",
                }
            ]
        }
    )

    channel_id: str
    key_id: str
    stream_key: str = Field(description="The secret key (shown once).")


class ModeratorOut(BaseModel):
    """A channel moderator."""

    user_id: str
    username: str | None
    appointed_by: str
    appointed_at: datetime


class ChannelOut(BaseModel):
    """A channel's public profile."""

    model_config = ConfigDict(json_schema_extra={"examples": [_CHANNEL_EXAMPLE]})  # type: ignore[list-item]

    channel_id: str
    owner_id: str
    slug: str
    display_name: str
    description: str
    language: str
    low_latency: bool = Field(
        True,
        description="Whether the channel's players start in Low-Latency HLS mode (the viewer can switch).",
    )
    dvr_window_s: int | None = Field(
        None, description="Seconds of a live stream viewers can seek back through; null: the node's default."
    )
    stream_key_id: str | None = Field(description="Opaque id of the active stream key (never the key).")
    created_at: datetime
    updated_at: datetime


class ChannelDetail(ChannelOut):
    """A channel with its moderators."""

    moderators: list[ModeratorOut]


class ChannelPage(BaseModel):
    """One page of channels, newest first."""

    items: list[ChannelOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at the end.")
