"""Streams: creation, metadata, schedules, ends, listings."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, IPvAnyAddress

from producers.models.common import Accepted, Game, Id, Language, Moment, Tag, Title

StreamState = Literal["created", "scheduled", "live", "ended"]
StreamRole = Literal["main", "pov", "costream"]


class StreamCreateRequest(BaseModel):
    """A new stream of one of your channels, optionally attached to a match."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "channel_id": "c6d8...",
                    "title": "LEC Finals - Day 2",
                    "game": "League of Legends",
                    "tags": ["esports", "lec"],
                    "language": "en",
                    "match_id": None,
                    "role": "main",
                }
            ]
        },
    )

    channel_id: Id
    title: Title
    game: Game = ""
    tags: list[Tag] = Field(default_factory=list, max_length=10)
    language: Language = "en"
    match_id: Id | None = Field(None, description="Attach the stream to this match.")
    role: StreamRole = Field("main", description="What the stream is for the match: main, pov or costream.")
    scheduled_start: Moment | None = Field(
        None, description="Schedule it at once (a StreamScheduled follows)."
    )


class StreamUpdateRequest(BaseModel):
    """Partial update of a stream's metadata or match attachment; absent fields are unchanged."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"title": "LEC Finals - Game 3"}]}
    )

    title: Title | None = None
    game: Game | None = None
    tags: list[Tag] | None = Field(None, max_length=10)
    language: Language | None = None
    match_id: Id | None = None
    role: StreamRole | None = None


class ScheduleRequest(BaseModel):
    """The planned start of a stream."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"scheduled_start": "2025-06-01T18:00:00Z"}]}
    )

    scheduled_start: Moment


class StreamAccepted(Accepted):
    """The stream was created."""

    stream_id: str


class StreamOut(BaseModel):
    """A stream as the read model has it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "stream_id": "9e1f...",
                    "channel_id": "c6d8...",
                    "owner_id": "5b0c...",
                    "title": "LEC Finals",
                    "game": "League of Legends",
                    "tags": ["lec"],
                    "language": "en",
                    "match_id": None,
                    "role": "main",
                    "state": "live",
                    "scheduled_start": None,
                    "started_at": "2025-06-01T18:00:02Z",
                    "ended_at": None,
                    "end_reason": None,
                    "created_at": "2025-06-01T17:55:00Z",
                    "updated_at": "2025-06-01T18:00:02Z",
                    "vod_deleted_at": None,
                    "vod_deleted_reason": None,
                }
            ]
        }
    )

    stream_id: str
    channel_id: str
    owner_id: str
    title: str
    game: str
    tags: list[str]
    language: str
    match_id: str | None
    role: StreamRole
    state: StreamState
    scheduled_start: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    created_at: datetime | None
    updated_at: datetime
    vod_deleted_at: datetime | None = Field(
        None, description="When the replay (VOD) was deleted; null while an ended stream offers it."
    )
    vod_deleted_reason: str | None = Field(
        None, description="Why: deleted_by_owner, deleted_by_admin or retention (null if not deleted)."
    )
    result_hidden: bool = Field(
        False, description="Spoiler-free mode withheld its end time (the replay's length tells a result)."
    )


class StreamPage(BaseModel):
    """One page of streams, newest first."""

    items: list[StreamOut]
    next_cursor: str | None


class LiveStreamOut(BaseModel):
    """A live stream in the live listing."""

    stream_id: str
    channel_id: str
    title: str
    game: str
    started_at: datetime | None
    viewers: int
    peak_viewers: int = Field(0, description="The stream's highest count so far.")
    average_viewers: float = Field(0.0, description="Time-weighted mean count since its first count.")


class LivePage(BaseModel):
    """Live streams, most viewers first."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {
                            "stream_id": "9e1f...",
                            "channel_id": "c6d8...",
                            "title": "LEC Finals",
                            "game": "League of Legends",
                            "started_at": "2025-06-01T18:00:02Z",
                            "viewers": 12045,
                        }
                    ],
                    "next_cursor": None,
                    "source": "redis",
                }
            ]
        }
    )

    items: list[LiveStreamOut]
    next_cursor: str | None
    source: Literal["redis", "postgres"] = Field(
        description="Where the listing came from (PostgreSQL if Redis is down)."
    )


class IngestAuthorizeRequest(BaseModel):
    """What the RTMP/SRT hook presents: the publisher's stream key."""

    model_config = ConfigDict(extra="forbid")

    stream_key: str = Field(min_length=1, max_length=200)
    publisher_addr: IPvAnyAddress | None = Field(
        None,
        description="The publisher's address as the ingest node saw it: wrong keys are limited per "
        "publisher address (else per caller, i.e. per ingest node).",
    )


class IngestAuthorized(BaseModel):
    """The key is valid: the channel and the stream the connection belongs to."""

    channel_id: str
    key_id: str = Field(
        "",
        description="Opaque id of the key that was presented (as in ChannelStreamKeyRotated): the "
        "ingest node drops the publisher when that key is rotated away.",
    )
    stream_id: str
    created: bool = Field(description="True when no open stream existed and one was created.")
    position: str | None = Field(None, description="Position of the StreamCreated, when one was created.")
    dvr_window_s: int | None = Field(
        None, description="The channel's DVR window (seconds); null: the ingest node's own setting."
    )
