"""Request and response models of the poll routes (the REST twin of `/poll` and `/endpoll` in chat)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from events.polls import (
    MAX_OPTION_CHARS,
    MAX_QUESTION_CHARS,
    POLL_MAX_OPTIONS,
    POLL_MAX_S,
    POLL_MIN_OPTIONS,
    POLL_MIN_S,
)
from producers.models.common import NO_NUL, Accepted, _clean_text

# The limits are events.polls', the same as for `/poll` typed in chat.
Question = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_QUESTION_CHARS, pattern=NO_NUL),
    AfterValidator(_clean_text),
]
Option = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_OPTION_CHARS, pattern=NO_NUL),
    AfterValidator(_clean_text),
]


class PollOpenRequest(BaseModel):
    """Open a poll on a stream: a question, 2-5 options, and how long it runs (none: until closed)."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [{"question": "Who takes map 3?", "options": ["NAVI", "G2"], "duration_s": 120}]
        },
    )

    question: Question
    options: list[Option] = Field(min_length=POLL_MIN_OPTIONS, max_length=POLL_MAX_OPTIONS)
    duration_s: int | None = Field(
        None, ge=POLL_MIN_S, le=POLL_MAX_S, description="10 s to 1 h; omit to keep it open until closed."
    )

    @field_validator("options")
    @classmethod
    def _distinct(cls, options: list[str]) -> list[str]:
        if len({o.casefold() for o in options}) != len(options):
            raise ValueError("options must differ")
        return options


class PollAccepted(Accepted):
    """The poll was requested: it opens once the poll agent has read it (its first tally)."""

    poll_id: str


class PollOut(BaseModel):
    """A poll with its latest tally (``final`` once closed)."""

    poll_id: str
    stream_id: str
    question: str
    options: list[str]
    counts: list[int]
    total: int
    status: Literal["open", "closed"]
    opened_by: str
    opened_at: datetime
    closes_at: datetime | None
    closed_at: datetime | None
    closed_by: str | None = Field(description="Who closed it; null when its deadline did.")
    final: bool


class PollPage(BaseModel):
    """A stream's polls, newest first."""

    items: list[PollOut]
    next_cursor: str | None = None
