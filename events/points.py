"""Channel points and predictions: four topics, one writer each (plus declared gateways).

- ``predictions`` (keyed by ``stream_id``, written by the API): a streamer or moderator opens a
  prediction with a lock time, may lock it early, then resolves it with the winning outcome or
  cancels it. Commands the prediction worker acts on.
- ``points.requests`` (keyed by ``user_id``): what may change a balance, *asked for*: a viewer's
  stake (the API), points earned for watching or chatting (the earning workers, with a deterministic
  ``grant_id``), the end-of-stakes markers and the settlement orders of the prediction worker.
- ``points.ledger`` (keyed by ``user_id``, co-partitioned with ``points.requests``): what the ledger
  worker *decided*, every grant, stake, refusal, settlement and refund; a balance is the sum of a
  user's entries, so balances can be audited and rebuilt from it. Written by one worker per partition.
- ``predictions.odds`` (keyed by ``stream_id``): the pools per outcome, replaced on change, fanned out
  to the stream's viewers by the edge.

Points are integers. A prediction's *pot* holds the stakes from the moment they are accepted until
each staker's :class:`StakeSettled` (or :class:`StakeRefunded`) takes them out, so at every moment
the sum of all balances and all pots equals the sum of all grants. The payout rule is in
:mod:`stream_processors.points.settlement`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from events.base import Event

__all__ = [
    "MAX_OUTCOMES",
    "MAX_OUTCOME_CHARS",
    "MAX_STAKE",
    "MAX_TITLE_CHARS",
    "MIN_OUTCOMES",
    "PREDICTION_MAX_S",
    "PREDICTION_MIN_S",
    "PointsEarned",
    "PointsGranted",
    "PointsStaked",
    "PredictionCancelled",
    "PredictionLocked",
    "PredictionOpened",
    "PredictionResolved",
    "PredictionUpdated",
    "StakeRefunded",
    "StakeRefused",
    "StakeRequested",
    "StakeSettled",
    "StakeSettlementOrdered",
    "StakesClosed",
    "StakesClosing",
]

MIN_OUTCOMES, MAX_OUTCOMES = 2, 10
PREDICTION_MIN_S, PREDICTION_MAX_S = 30, 30 * 60  # how long a prediction takes stakes (as on Twitch)
MAX_TITLE_CHARS, MAX_OUTCOME_CHARS = 100, 40
MAX_STAKE = 250_000  # points one viewer may put on one prediction


# -- predictions (the API) ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PredictionOpened(Event):
    """A streamer or moderator opened a prediction; stakes are taken until ``locks_at``."""

    prediction_id: str
    stream_id: str
    channel_id: str
    title: str
    outcomes: tuple[str, ...]
    locks_at: datetime
    opened_by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PredictionLocked(Event):
    """Stakes closed before ``locks_at`` by the streamer or a moderator."""

    prediction_id: str
    stream_id: str
    locked_by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PredictionResolved(Event):
    """The streamer or a moderator named the winning outcome (the prediction locks if it was not)."""

    prediction_id: str
    stream_id: str
    outcome: int  # index into PredictionOpened.outcomes
    resolved_by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PredictionCancelled(Event):
    """The prediction is void: every stake goes back to its staker."""

    prediction_id: str
    stream_id: str
    cancelled_by: str


# -- points.requests --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StakeRequested(Event):
    """A viewer asked to put ``amount`` points on ``outcome`` (the API checked the prediction was open
    and the outcome exists; the ledger worker decides on the balance and the lock)."""

    user_id: str
    prediction_id: str
    stream_id: str
    outcome: int
    amount: int
    locks_at: datetime  # a request made at or after it is refused


@dataclass(frozen=True, slots=True, kw_only=True)
class PointsEarned(Event):
    """An earning worker found a viewer earned points (watching a stream, chatting in it). The same
    earning found twice carries the same ``grant_id``, and the ledger grants it once."""

    user_id: str
    amount: int
    reason: str  # "watch" or "chat"
    grant_id: str  # deterministic: e.g. "watch:<stream>:<user>:<window start ms>"
    stream_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class StakesClosing(Event):
    """The prediction worker's end-of-stakes marker, written to *every* partition of
    ``points.requests``: the stakes before it on a partition are the prediction's, later ones are
    refused. The ledger worker answers each with :class:`StakesClosed` on the ledger."""

    user_id: str  # the record key: a key hashing to the marker's partition, not a user
    prediction_id: str
    stream_id: str
    marked_partition: int  # the partition of points.requests (and points.ledger) it marks


@dataclass(frozen=True, slots=True, kw_only=True)
class StakeSettlementOrdered(Event):
    """The prediction worker's order to take one staker's stake out of the pot: ``payout`` points to
    their balance (0 for a losing outcome), or their stake back when ``refund``."""

    user_id: str
    prediction_id: str
    stream_id: str
    payout: int = 0
    refund: bool = False


# -- points.ledger ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PointsGranted(Event):
    """Points added to a balance (``causation_id``: the PointsEarned)."""

    user_id: str
    amount: int
    reason: str
    grant_id: str
    balance: int  # the balance after this entry
    stream_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class PointsStaked(Event):
    """A stake accepted: ``amount`` points moved from the balance into the prediction's pot."""

    user_id: str
    prediction_id: str
    stream_id: str
    outcome: int
    amount: int
    balance: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StakeRefused(Event):
    """A stake refused, nothing moved (``causation_id``: the StakeRequested; ``reason`` for the viewer)."""

    user_id: str
    prediction_id: str
    stream_id: str
    amount: int
    reason: str
    balance: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StakesClosed(Event):
    """This ledger partition took its last stake of the prediction (the answer to StakesClosing)."""

    user_id: str  # the marker's key
    prediction_id: str
    stream_id: str
    marked_partition: int  # the partition of points.requests (and points.ledger) it marks


@dataclass(frozen=True, slots=True, kw_only=True)
class StakeSettled(Event):
    """A resolved prediction's stake left the pot: ``payout`` points to the balance (0: it lost)."""

    user_id: str
    prediction_id: str
    stream_id: str
    staked: int
    payout: int
    balance: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StakeRefunded(Event):
    """A cancelled prediction's stake went back to the balance."""

    user_id: str
    prediction_id: str
    stream_id: str
    amount: int
    balance: int


# -- predictions.odds -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PredictionUpdated(Event):
    """A prediction as viewers see it (replace, not increment): its state and the pot per outcome."""

    prediction_id: str
    stream_id: str
    status: str  # "open", "locked", "resolved" or "cancelled"
    pools: tuple[int, ...]  # points staked per outcome
    stakers: tuple[int, ...]  # viewers per outcome
    winning_outcome: int = -1  # once resolved
    settled: bool = False  # every stake is out of the pot (paid out or refunded)
