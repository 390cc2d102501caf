"""Request and response models of the prediction and channel-point routes.

The limits are :mod:`events.points`' (one home for them: the workers check the same ones).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from events.points import (
    MAX_OUTCOME_CHARS,
    MAX_OUTCOMES,
    MAX_STAKE,
    MAX_TITLE_CHARS,
    MIN_OUTCOMES,
    PREDICTION_MAX_S,
    PREDICTION_MIN_S,
)
from producers.models.common import NO_NUL, Accepted, _clean_text

PredictionTitle = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_TITLE_CHARS, pattern=NO_NUL),
    AfterValidator(_clean_text),
]
OutcomeName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_OUTCOME_CHARS, pattern=NO_NUL),
    AfterValidator(_clean_text),
]
OutcomeIndex = Annotated[int, Field(ge=0, le=MAX_OUTCOMES - 1, description="Index into `outcomes`.")]
Status = Literal["open", "locked", "resolved", "cancelled"]


class PredictionOpenRequest(BaseModel):
    """Open a prediction on a stream: a title, 2-10 outcomes, and how long it takes stakes."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [{"title": "Who wins map 3?", "outcomes": ["NAVI", "G2"], "window_s": 120}]
        },
    )

    title: PredictionTitle
    outcomes: list[OutcomeName] = Field(min_length=MIN_OUTCOMES, max_length=MAX_OUTCOMES)
    window_s: int = Field(
        ge=PREDICTION_MIN_S,
        le=PREDICTION_MAX_S,
        description=f"Seconds it takes stakes ({PREDICTION_MIN_S} to {PREDICTION_MAX_S}); "
        "it locks at the time of the request plus this.",
    )

    @field_validator("outcomes")
    @classmethod
    def _distinct(cls, outcomes: list[str]) -> list[str]:
        if len({o.casefold() for o in outcomes}) != len(outcomes):
            raise ValueError("outcomes must differ")
        return outcomes


class PredictionResolveRequest(BaseModel):
    """Name the winning outcome."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"outcome": 0}]})

    outcome: OutcomeIndex


class StakeRequest(BaseModel):
    """Put ``amount`` channel points on ``outcome``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"outcome": 0, "amount": 100}]})

    outcome: OutcomeIndex
    amount: int = Field(gt=0, le=MAX_STAKE, description=f"Points, 1 to {MAX_STAKE}.")


class PredictionAccepted(Accepted):
    """The prediction was opened (``GET /predictions/{id}`` with ``position`` as X-Min-Position)."""

    prediction_id: str


class StakeAccepted(Accepted):
    """The stake was asked for; the ledger worker takes it, or refuses it with a reason that shows in
    ``GET /me/points``."""

    request_id: uuid.UUID = Field(description="The StakeRequested event's id (the ledger's causation id).")


class MyStake(BaseModel):
    """The caller's stake in a prediction, and how it left the pot once settled."""

    outcome: int
    amount: int
    payout: int | None = Field(
        description="Points paid back once resolved (0: it lost); null until then, and while the result is"
        " hidden."
    )
    refunded: bool = Field(description="The prediction was cancelled and the stake given back.")
    staked_at: datetime
    settled_at: datetime | None


class PredictionOut(BaseModel):
    """A prediction with its pools; ``my_stake`` when the caller sent a token and staked."""

    prediction_id: str
    stream_id: str
    channel_id: str
    title: str
    outcomes: list[str]
    status: Status = Field(description="`locked` from `locks_at` on, even before the worker's lock.")
    locks_at: datetime
    opened_by: str
    opened_at: datetime
    locked_at: datetime | None = Field(description="When it was locked early; null when it locked by time.")
    resolved_at: datetime | None
    cancelled_at: datetime | None
    winning_outcome: int | None = Field(
        description="The winner's index once resolved; null until then, and in spoiler-free mode on a stream"
        " of a hidden match."
    )
    result_hidden: bool = Field(
        False, description="The stream's match result is hidden (spoiler-free): no winner, no payout."
    )
    pools: list[int] = Field(description="Points staked per outcome (the prediction worker's latest odds).")
    stakers: list[int] = Field(description="Viewers per outcome.")
    settled: bool = Field(description="Every stake paid out or refunded.")
    my_stake: MyStake | None = None


class PredictionPage(BaseModel):
    """A stream's predictions, newest first."""

    items: list[PredictionOut]
    next_cursor: str | None = None


class LedgerEntryOut(BaseModel):
    """One entry of the points ledger."""

    event_id: uuid.UUID
    kind: Literal["grant", "stake", "refused", "settled", "refund"]
    amount: int = Field(description="The points concerned: granted, staked, asked for, paid out, refunded.")
    change: int = Field(description="Its effect on the balance (a stake is negative, a refusal 0).")
    balance: int = Field(description="The balance after it.")
    reason: str = Field(description="Why: `watch`, `chat`, `won`, `lost`, `cancelled`, a refusal's reason.")
    prediction_id: str | None
    stream_id: str
    outcome: int | None
    occurred_at: datetime


class PointsOut(BaseModel):
    """The caller's balance and latest ledger entries, newest first."""

    balance: int
    entries: list[LedgerEntryOut]
