"""Field types and bodies shared by every resource."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from infra.kafka import Position

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
NO_NUL = r"^[^\x00]*$"


def _clean_text(value: str) -> str:
    # PostgreSQL text refuses NUL, and a lone surrogate cannot be encoded as UTF-8 anywhere.
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode") from None
    return value


def _plausible_time(value: datetime) -> datetime:
    if not 2000 <= value.year <= 2100:
        raise ValueError("times must fall between the years 2000 and 2100")
    return value


Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Text = Annotated[str, StringConstraints(max_length=2000, pattern=NO_NUL), AfterValidator(_clean_text)]
Title = Annotated[
    str, StringConstraints(min_length=1, max_length=140, pattern=NO_NUL), AfterValidator(_clean_text)
]
Name = Annotated[
    str, StringConstraints(min_length=1, max_length=80, pattern=NO_NUL), AfterValidator(_clean_text)
]
Game = Annotated[str, StringConstraints(max_length=80, pattern=NO_NUL), AfterValidator(_clean_text)]
Tag = Annotated[
    str, StringConstraints(min_length=1, max_length=25, pattern=NO_NUL), AfterValidator(_clean_text)
]
Language = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,3}$")]
Moment = Annotated[AwareDatetime, AfterValidator(_plausible_time)]


class Accepted(BaseModel):
    """A command was recorded: the event's id and its log position (for ``X-Min-Position``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "event_id": "0b7f3c4e-8c1a-4d5e-9f2a-1c3b5d7e9f01",
                    "position": "streams:2:1041",
                    "positions": ["streams:2:1041"],
                }
            ]
        }
    )

    event_id: uuid.UUID = Field(description="Id of the (first) event the command produced.")
    position: str = Field(description="`topic:partition:offset` of that event; send it as X-Min-Position.")
    positions: list[str] = Field(description="Positions of every event the command produced.")

    @staticmethod
    def fields_from(event_id: uuid.UUID, positions: tuple[Position, ...]) -> dict[str, object]:
        return {"event_id": event_id, "position": str(positions[0]), "positions": [str(p) for p in positions]}
