"""Request and response models of the clip routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from producers.models.common import NO_NUL, Accepted, Id, _clean_text

CLIP_MIN_MS = 5_000
CLIP_MAX_MS = 60_000
MAX_TITLE_CHARS = 140

ClipTitle = Annotated[
    str, StringConstraints(max_length=MAX_TITLE_CHARS, pattern=NO_NUL), AfterValidator(_clean_text)
]


class ClipRequest(BaseModel):
    """Cut ``duration_ms`` (5 to 60 s) of a stream from ``start_ms``, in the stream's media time
    (milliseconds from its first segment: the player's position in the replay)."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "stream_id": "5b1f0f7e-2f6c-4c1e-9d1a-6f3a2b7c8d90",
                    "start_ms": 120000,
                    "duration_ms": 30000,
                    "title": "The ace",
                }
            ]
        },
    )

    stream_id: Id
    start_ms: int = Field(ge=0, le=10**10)
    duration_ms: int = Field(ge=CLIP_MIN_MS, le=CLIP_MAX_MS)
    title: ClipTitle = ""


class ClipAccepted(Accepted):
    """The clip was requested: the ingest node holding the stream cuts it (``GET /streams/{id}/clips``)."""

    clip_id: str


class ClipOut(BaseModel):
    """A clip: ``pending`` until an ingest node cut it, then ``ready`` (``url`` plays it) or ``failed``."""

    clip_id: str
    stream_id: str
    channel_id: str
    requested_by: str
    title: str
    start_ms: int
    requested_ms: int = Field(description="The duration asked for (0 when only the creation is known).")
    duration_ms: int | None = Field(description="The duration of the cut clip as FFprobe measured it.")
    url: str | None = Field(description="The clip's MP4 (H.264/AAC, faststart), once ready.")
    reencoded: bool | None = Field(
        description="True when the start fell between keyframes and its head was re-encoded; "
        "false when the segments were copied."
    )
    status: Literal["pending", "ready", "failed"]
    failure: str | None = None
    requested_at: datetime | None
    created_at: datetime | None


class ClipPage(BaseModel):
    """Clips, newest first."""

    items: list[ClipOut]
    next_cursor: str | None = None
