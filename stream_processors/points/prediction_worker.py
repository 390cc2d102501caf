"""The prediction worker: locks, settles and shows the predictions of the ``predictions`` partitions it owns.

A :class:`~stream_processors.partition_worker.PartitionWorker` in its own group
(:data:`~stream_processors.topology.PREDICTIONS_GROUP`): ``predictions`` is small (a few commands per
prediction), so a taken-over partition is re-read from its start. The stakes come from the whole
``points.ledger`` (:class:`StakeBook`, read by every worker of the group; it keeps only the stakes of
predictions not settled yet). Every :data:`REPORT_EVERY_S`, per prediction it owns:

1. Once locked (``PredictionLocked``, its ``locks_at`` passed, or resolved/cancelled first), an
   end-of-stakes marker (:class:`~events.points.StakesClosing`) to every partition of
   ``points.requests`` that has not answered it on the ledger yet (again every :data:`RESEND_MS`). A
   partition's stakes before its marker are the prediction's; later ones are refused there.
2. Once resolved or cancelled and every partition answered, a
   :class:`~events.points.StakeSettlementOrdered` per staker not settled yet: the payout of
   :func:`~stream_processors.points.settlement.payouts` over *every* stake (all are known by then), or
   a refund (cancelled, or nobody backed the winner). The ledger settles a stake once, so orders are
   simply repeated until the ledger shows them settled.
3. :class:`~events.points.PredictionUpdated` to ``predictions.odds`` when what viewers see changed.

Nothing is stored: all three follow from ``predictions`` and ``points.ledger``, so a restarted worker
repeats what may not have landed, and the ledger ignores what already did.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mode import Service

from events.base import Event
from events.codec import EventCodec
from events.points import (
    PointsStaked,
    PredictionCancelled,
    PredictionLocked,
    PredictionOpened,
    PredictionResolved,
    PredictionUpdated,
    StakeRefunded,
    StakesClosed,
    StakesClosing,
    StakeSettled,
    StakeSettlementOrdered,
)
from infra.kafka import keys_per_partition
from infra.settings import KafkaSettings, Settings
from stream_processors.partition_worker import PartitionWorker, Record, Report
from stream_processors.points.ledger import PRODUCER, epoch_ms
from stream_processors.points.settlement import payouts
from stream_processors.runtime import WholeTopicReader, retrying
from stream_processors.topology import POINTS_LEDGER, POINTS_SOURCE, PREDICTIONS_GROUP, PREDICTIONS_SOURCE

__all__ = ["PredictionWorker", "StakeBook"]

log = logging.getLogger(__name__)

REPORT_EVERY_S = 0.25  # odds this often (on change): like a poll's running tally
RESEND_MS = 5_000  # markers and orders not answered on the ledger yet are sent again this often


@dataclass(slots=True)
class Pot:
    """What the ledger says of one prediction: its stakes, which are settled, which partitions closed.

    Once every stake is settled, only the totals per outcome are kept (:meth:`compact`)."""

    stakes: dict[str, tuple[int, int]] = field(default_factory=dict)  # user -> (outcome, amount)
    settled: set[str] = field(default_factory=set)
    closed: set[int] = field(default_factory=set)  # partitions that took their last stake
    totals: dict[int, list[int]] = field(default_factory=dict)  # outcome -> [points, stakers]
    counted: set[str] = field(default_factory=set)  # the stake entries folded (a copy on the log is one)

    def stake(self, user: str, outcome: int, amount: int, entry: str) -> None:
        if entry in self.counted:
            return
        self.counted.add(entry)
        known, before = self.stakes.get(user, (outcome, 0))
        self.stakes[user] = (known, before + amount)
        total = self.totals.setdefault(known, [0, 0])
        total[0] += amount
        total[1] += before == 0

    def settled_in(self, partitions: int) -> bool:
        """Every partition took its last stake and every stake is settled."""
        return len(self.closed) >= partitions > 0 and len(self.settled) >= len(self.stakes)

    def compact(self) -> None:
        self.stakes, self.settled, self.counted = {}, set(), set()


class StakeBook(WholeTopicReader):
    """Every prediction's stakes, from the whole ``points.ledger`` (totals only, once settled)."""

    def __init__(self, kafka: KafkaSettings, codec: EventCodec, **kwargs: Any) -> None:
        super().__init__(kafka, codec, [POINTS_LEDGER], "points ledger", **kwargs)
        self.pots: dict[str, Pot] = {}
        self.partitions = 0  # of points.requests: set by the worker once known

    def apply(self, event: Event) -> None:
        prediction = getattr(event, "prediction_id", None)
        if prediction is None:
            return
        pot = self.pots.setdefault(prediction, Pot())
        if isinstance(event, PointsStaked):
            pot.stake(event.user_id, event.outcome, event.amount, event.causation_id or str(event.event_id))
        elif isinstance(event, StakesClosed):
            pot.closed.add(event.marked_partition)
        elif isinstance(event, StakeSettled | StakeRefunded):
            pot.settled.add(event.user_id)
            if pot.settled_in(self.partitions):
                pot.compact()

    def compact_settled(self) -> None:
        for pot in self.pots.values():
            if pot.settled_in(self.partitions):
                pot.compact()

    def summary(self) -> str:
        return f"{len(self.pots)} predictions with stakes"


@dataclass(slots=True)
class Prediction:
    stream_id: str
    outcomes: int
    locks_at_ms: int
    status: str = "open"  # "open", "locked", "resolved", "cancelled"
    winning: int = -1
    shown: tuple[Any, ...] = ()  # what was last published to predictions.odds
    marked_ms: int = 0  # when markers were last sent
    ordered_ms: int = 0  # when settlement orders were last sent
    done: bool = False


class PredictionWorker(PartitionWorker[dict[str, Prediction]]):
    """Owns partitions of ``predictions``: their markers, settlements and odds."""

    role = "predictions"
    group = PREDICTIONS_GROUP
    source = PREDICTIONS_SOURCE
    every_s = REPORT_EVERY_S

    def __init__(self, settings: Settings, *args: Any, **kwargs: Any) -> None:
        super().__init__(settings, *args, **kwargs)
        self.book = StakeBook(settings.kafka, self._codec)
        self._requests = self.names.physical(POINTS_SOURCE)
        self._request_partitions = 0
        self._marker_keys: tuple[str, ...] = ()

    def on_init_dependencies(self) -> list[Service]:
        return [self.book]  # read to the end of the ledger before this worker

    async def on_start(self) -> None:
        self._request_partitions = await self._publishing.publisher.partitions(self._requests)
        self._marker_keys = keys_per_partition("end-of-stakes", self._request_partitions)
        self.book.partitions = self._request_partitions
        self.book.compact_settled()
        await super().on_start()

    def new_state(self) -> dict[str, Prediction]:
        return {}

    def rebuild_from_ms(self) -> int:
        return 0  # the whole partition: a few records per prediction

    async def absorb(self, partition: int, state: dict[str, Prediction], records: Sequence[Record]) -> None:
        for record in records:
            event = await self.decode(record)
            if isinstance(event, PredictionOpened):
                state.setdefault(
                    event.prediction_id,
                    Prediction(event.stream_id, len(event.outcomes), int(event.locks_at.timestamp() * 1000)),
                )
                continue
            prediction = state.get(getattr(event, "prediction_id", ""))
            if prediction is None or prediction.status in ("resolved", "cancelled"):
                continue  # unknown, or over: the API refuses these, a replayed log may hold them
            if isinstance(event, PredictionLocked):
                prediction.status = "locked"
            elif isinstance(event, PredictionResolved) and 0 <= event.outcome < prediction.outcomes:
                prediction.status, prediction.winning = "resolved", event.outcome
            elif isinstance(event, PredictionCancelled):
                prediction.status = "cancelled"
            if event is not None:
                prediction.locks_at_ms = min(prediction.locks_at_ms, epoch_ms(event))

    def report(self, now_ms: int, complete: set[int]) -> list[Report]:
        return []  # events, published by _report below

    async def _report(self) -> None:
        now_ms = int(time.time() * 1000)
        due: list[Event] = []
        for partition, state in self._owned.items():
            if self.ready(partition):
                for prediction_id, prediction in state.items():
                    if not prediction.done:
                        due.extend(self._due(prediction_id, prediction, now_ms))
        if due:
            publisher = self._publishing.publisher
            await retrying(
                "publishing prediction decisions", lambda: publisher.publish_many(due), self._metrics
            )
            for event in due:
                self._metrics.points_published[event.event_type()] += 1
        await self._commit_positions()

    def _due(self, prediction_id: str, p: Prediction, now_ms: int) -> list[Event]:
        """What to publish now for one prediction (markers, orders, odds); marks it done when settled."""
        if p.status == "open" and now_ms >= p.locks_at_ms:
            p.status = "locked"
        pot = self.book.pots.get(prediction_id, Pot())
        due: list[Event] = []
        closed = len(pot.closed) >= self._request_partitions
        if p.status != "open" and not closed and now_ms - p.marked_ms >= RESEND_MS:
            p.marked_ms = now_ms
            due.extend(
                StakesClosing(
                    producer=PRODUCER,
                    user_id=self._marker_keys[partition],
                    prediction_id=prediction_id,
                    stream_id=p.stream_id,
                    marked_partition=partition,
                )
                for partition in range(self._request_partitions)
                if partition not in pot.closed
            )
        over = p.status in ("resolved", "cancelled")
        open_stakes = [user for user in pot.stakes if user not in pot.settled]
        if over and closed and open_stakes and now_ms - p.ordered_ms >= RESEND_MS:
            p.ordered_ms = now_ms
            shares = None if p.status == "cancelled" else payouts(pot.stakes, p.winning)
            due.extend(
                StakeSettlementOrdered(
                    producer=PRODUCER,
                    user_id=user,
                    prediction_id=prediction_id,
                    stream_id=p.stream_id,
                    payout=0 if shares is None else shares[user],
                    refund=shares is None,
                )
                for user in open_stakes
            )
        settled = over and closed and not open_stakes
        pools, stakers = [0] * p.outcomes, [0] * p.outcomes
        for outcome, (points, count) in pot.totals.items():
            if 0 <= outcome < p.outcomes:
                pools[outcome], stakers[outcome] = points, count
        shown = (p.status, tuple(pools), tuple(stakers), p.winning, settled)
        if shown != p.shown:
            p.shown = shown
            due.append(
                PredictionUpdated(
                    producer=PRODUCER,
                    prediction_id=prediction_id,
                    stream_id=p.stream_id,
                    status=p.status,
                    pools=tuple(pools),
                    stakers=tuple(stakers),
                    winning_outcome=p.winning,
                    settled=settled,
                )
            )
        if settled:
            p.done = True
            pot.compact()
            log.info("prediction %s %s and settled (%s stakers)", prediction_id, p.status, sum(stakers))
        return due
