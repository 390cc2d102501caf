"""The balances of one partition of ``points.ledger``, and the decisions on its requests: pure, no I/O.

A :class:`PartitionLedger` is the fold of one ledger partition (:meth:`PartitionLedger.apply`), so a
worker taking the partition over reads it back from the log, and :meth:`PartitionLedger.decide` turns
one request of the same partition of ``points.requests`` into the entries to append (already folded
in). The ledger *is* the state: there is nothing else to store.

A request decided twice (read again after a worker restart, before its position was committed) is
recognised by its ``event_id``, the ``causation_id`` of what it decided; points earned twice (an earning
worker re-reading its window) by their ``grant_id``. Both are remembered for :data:`MEMORY_MS`; an
earning older than :data:`GRANT_HORIZON_MS` is ignored, so a forgotten grant id cannot be granted again.

Rules, in the order they are checked (the refusal reasons are shown to the viewer):

- a stake after its prediction's end-of-stakes marker on this partition, or made at or after its
  ``locks_at``: refused, "locked";
- an amount outside 1..MAX_STAKE: refused;
- a stake on another outcome than the viewer's earlier stake on the same prediction: refused
  (a viewer may add to their stake, not hedge);
- more than the balance: refused, with the balance;
- a settlement order for a stake this partition does not hold open (settled already, never made):
  ignored, so orders can be repeated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from events.base import Event
from events.points import (
    MAX_STAKE,
    PointsEarned,
    PointsGranted,
    PointsStaked,
    StakeRefunded,
    StakeRefused,
    StakeRequested,
    StakesClosed,
    StakesClosing,
    StakeSettled,
    StakeSettlementOrdered,
)

__all__ = ["GRANT_HORIZON_MS", "MEMORY_MS", "PRODUCER", "PartitionLedger", "epoch_ms"]

PRODUCER = "stream_processors.points"
DAY_MS = 24 * 60 * 60 * 1000
MEMORY_MS = 2 * DAY_MS  # how long decided request ids and grant ids are remembered
GRANT_HORIZON_MS = DAY_MS  # older earnings are ignored (their grant id may be forgotten)
PRUNE_EVERY = 10_000  # entries between two sweeps of the remembered ids


def epoch_ms(event: Event) -> int:
    return int(event.occurred_at.timestamp() * 1000)


@dataclass(slots=True)
class OpenStake:
    outcome: int
    amount: int
    stream_id: str


class PartitionLedger:
    """Balances, open stakes and closed predictions of one partition, with what it decided lately."""

    def __init__(self) -> None:
        self.balances: dict[str, int] = {}
        self.stakes: dict[tuple[str, str], OpenStake] = {}  # (prediction, user) -> open stake
        self.closed: set[str] = set()  # predictions whose end-of-stakes marker this partition answered
        self._decided: dict[str, int] = {}  # request event id -> when (ms)
        self._grants: dict[str, int] = {}  # grant id -> when (ms)
        self._latest_ms = 0
        self._since_prune = 0
        self.entries = 0  # folded so far (read back or decided)

    # -- folding the log ------------------------------------------------------------------------------

    def apply(self, entry: Event) -> None:
        """Fold one ledger entry (read back from the log, or just decided). An entry on the log twice
        (a publish retried after a broker failure answered too late) is folded once: one request
        decides one entry, so its request id (``causation_id``) tells a copy."""
        if entry.causation_id and entry.causation_id in self._decided:
            return
        at = epoch_ms(entry)
        self._latest_ms = max(self._latest_ms, at)
        if entry.causation_id:
            self._decided[entry.causation_id] = at
        if isinstance(entry, PointsGranted):
            self.balances[entry.user_id] = self.balances.get(entry.user_id, 0) + entry.amount
            self._grants[entry.grant_id] = at
        elif isinstance(entry, PointsStaked):
            self.balances[entry.user_id] = self.balances.get(entry.user_id, 0) - entry.amount
            key = (entry.prediction_id, entry.user_id)
            stake = self.stakes.get(key)
            if stake is None:
                self.stakes[key] = OpenStake(entry.outcome, entry.amount, entry.stream_id)
            else:
                stake.amount += entry.amount
        elif isinstance(entry, StakesClosed):
            self.closed.add(entry.prediction_id)
        elif isinstance(entry, StakeSettled):
            self.stakes.pop((entry.prediction_id, entry.user_id), None)
            self.balances[entry.user_id] = self.balances.get(entry.user_id, 0) + entry.payout
        elif isinstance(entry, StakeRefunded):
            self.stakes.pop((entry.prediction_id, entry.user_id), None)
            self.balances[entry.user_id] = self.balances.get(entry.user_id, 0) + entry.amount
        self.entries += 1
        self._since_prune += 1
        if self._since_prune >= PRUNE_EVERY:
            self._prune()

    def _prune(self) -> None:
        self._since_prune = 0
        horizon = self._latest_ms - MEMORY_MS
        self._decided = {k: v for k, v in self._decided.items() if v >= horizon}
        self._grants = {k: v for k, v in self._grants.items() if v >= horizon}

    # -- deciding requests ----------------------------------------------------------------------------

    def decide(self, request: Event) -> list[Event]:
        """The ledger entries ``request`` makes (folded in already); [] for a repeat or a no-op."""
        if str(request.event_id) in self._decided:
            return []
        entry: Event | None
        if isinstance(request, StakeRequested):
            entry = self._stake(request)
        elif isinstance(request, PointsEarned):
            entry = self._grant(request)
        elif isinstance(request, StakesClosing):
            entry = self._close(request)
        elif isinstance(request, StakeSettlementOrdered):
            entry = self._settle(request)
        else:
            entry = None
        if entry is None:
            return []
        self.apply(entry)
        return [entry]

    def _head(self, request: Event) -> dict[str, Any]:
        """The head of an entry decided on ``request``."""
        return {"producer": PRODUCER, "trace_id": request.trace_id, "causation_id": str(request.event_id)}

    def _stake(self, request: StakeRequested) -> Event:
        balance = self.balances.get(request.user_id, 0)
        stake = self.stakes.get((request.prediction_id, request.user_id))
        reason = ""
        if request.prediction_id in self.closed or request.occurred_at >= request.locks_at:
            reason = "this prediction is locked: stakes are no longer taken"
        elif not 1 <= request.amount <= MAX_STAKE - (stake.amount if stake else 0):
            reason = f"a stake is 1 to {MAX_STAKE:,} points per prediction"
        elif stake is not None and stake.outcome != request.outcome:
            reason = f"you already predicted outcome {stake.outcome + 1}: you may add to it, not change it"
        elif request.amount > balance:
            reason = f"not enough points: you have {balance:,}"
        if reason:
            return StakeRefused(
                **self._head(request),
                user_id=request.user_id,
                prediction_id=request.prediction_id,
                stream_id=request.stream_id,
                amount=request.amount,
                reason=reason,
                balance=balance,
            )
        return PointsStaked(
            **self._head(request),
            user_id=request.user_id,
            prediction_id=request.prediction_id,
            stream_id=request.stream_id,
            outcome=request.outcome,
            amount=request.amount,
            balance=balance - request.amount,
        )

    def _grant(self, request: PointsEarned) -> Event | None:
        if request.grant_id in self._grants or request.amount <= 0:
            return None
        if epoch_ms(request) < self._latest_ms - GRANT_HORIZON_MS:
            return None  # older than the grant ids remembered: it may have been granted
        return PointsGranted(
            **self._head(request),
            user_id=request.user_id,
            amount=request.amount,
            reason=request.reason,
            grant_id=request.grant_id,
            balance=self.balances.get(request.user_id, 0) + request.amount,
            stream_id=request.stream_id,
        )

    def _close(self, request: StakesClosing) -> Event | None:
        if request.prediction_id in self.closed:
            return None
        return StakesClosed(
            **self._head(request),
            user_id=request.user_id,
            prediction_id=request.prediction_id,
            stream_id=request.stream_id,
            marked_partition=request.marked_partition,
        )

    def _settle(self, request: StakeSettlementOrdered) -> Event | None:
        stake = self.stakes.get((request.prediction_id, request.user_id))
        if stake is None or request.prediction_id not in self.closed:
            return None  # settled already, never staked, or ordered before its stakes ended here
        balance = self.balances.get(request.user_id, 0)
        if request.refund:
            return StakeRefunded(
                **self._head(request),
                user_id=request.user_id,
                prediction_id=request.prediction_id,
                stream_id=request.stream_id,
                amount=stake.amount,
                balance=balance + stake.amount,
            )
        return StakeSettled(
            **self._head(request),
            user_id=request.user_id,
            prediction_id=request.prediction_id,
            stream_id=request.stream_id,
            staked=stake.amount,
            payout=request.payout,
            balance=balance + request.payout,
        )
