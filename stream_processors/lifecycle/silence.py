"""The clock of the silence sweep: up to when the lifecycle agent has read each of its partitions.

A node that dies without a disconnect sends nothing more, so no event can end its streams: a timer
does (:func:`~stream_processors.lifecycle.decisions.expire`). Its "now" must not be the wall clock
alone. A worker catching up after a restart, or lagging, holds states whose newest health report is
old only because the later ones are still unread; ending those streams would contradict the log (and a
replay of it). So each owned partition gets its own clock: the wall clock once both its source
partitions (``streams`` and ``ingest``, same number) are read to their end, else the timestamp of
the last record read there (everything appended before it was read), the earlier of the two; minus
:data:`ARRIVAL_SLACK_S` for a report still on its way to the broker. A partition read from nowhere
yet, or whose end is unknown, has no clock and waits.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from faust.types import TP

__all__ = ["ARRIVAL_SLACK_S", "SWEEP_S", "ReadPositions", "partition_clocks"]

SWEEP_S = 1.0  # how often the timer looks for silent streams
# An event reaches the broker a moment after its occurred_at (batching, a busy node): a sweep keeps
# this far behind, so a report sent just before the deadline is read before the sweep passes it.
ARRIVAL_SLACK_S = 2.0


class ReadPositions:
    """What the agent has handled per source partition: the next offset and the last record's time."""

    def __init__(self) -> None:
        self._read: dict[tuple[str, int], tuple[int, float]] = {}

    def handled(self, message: Any) -> None:
        """``message`` (a Faust message) was handled: its partition is read up to it."""
        self._read[(message.topic, message.partition)] = (message.offset + 1, message.timestamp or 0.0)

    def forget(self) -> None:
        """After a rebalance: what was read under an earlier assignment proves nothing now."""
        self._read.clear()

    def clock(self, tp: TP, end: int | None, committed: int | None, wall: float) -> float | None:
        """The time up to which ``tp`` is read (``end``: its high watermark; ``committed``: the
        group's offset), or None when unknown."""
        if end is None:
            return None
        position, stamp = self._read.get((tp.topic, tp.partition), (0, None))
        if max(position, committed or 0) >= end:
            return wall  # read to the end: nothing unread can be older than now
        return stamp


def partition_clocks(app: Any, topics: Sequence[str], positions: ReadPositions) -> dict[int, datetime]:
    """The sweep's clock of each partition this worker owns of every one of ``topics``."""
    assigned = {tp for tp in app.consumer.assignment() if tp.topic in topics}
    numbers = {tp.partition for tp in assigned}
    wall = time.time()
    clocks: dict[int, datetime] = {}
    for number in numbers:
        tps = [TP(topic, number) for topic in topics]
        if not all(tp in assigned for tp in tps):
            continue
        times = [positions.clock(tp, _end(app, tp), _committed(app, tp), wall) for tp in tps]
        if all(t is not None for t in times):
            clocks[number] = datetime.fromtimestamp(_earliest(times) - ARRIVAL_SLACK_S, UTC)
    return clocks


def _earliest(times: Iterable[float | None]) -> float:
    return min(t for t in times if t is not None)


def _end(app: Any, tp: TP) -> int | None:
    """The partition's high watermark from the consumer's last fetch (None before the first)."""
    try:
        end = app.consumer.highwater(tp)
    except (AssertionError, KeyError, RuntimeError):  # not assigned (any more), consumer not started
        return None
    return None if end is None else int(end)


def _committed(app: Any, tp: TP) -> int | None:
    """The group's committed offset as Faust last set it (after its seek, after each commit); Faust
    keeps it only in this attribute, which the guarded consumer relies on too."""
    committed = getattr(app.consumer, "_committed_offset", {}).get(tp)
    return None if committed is None else int(committed)
