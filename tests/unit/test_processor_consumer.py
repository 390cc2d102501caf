"""The commit audit of :mod:`stream_processors.consumer`: how many records a commit passes unacked."""

from __future__ import annotations

from collections import defaultdict

import pytest
from faust.types import TP

from stream_processors.consumer import GuardedConsumer, unacknowledged


@pytest.mark.parametrize(
    ("start", "end", "acked", "skipped"),
    [
        (10, 15, {10, 11, 12, 13, 14}, 0),  # every record in between acked
        (10, 15, {10, 11, 12, 13, 14, 15, 16}, 0),  # acks past the commit are the next one's
        (10, 15, {10, 14}, 3),  # the issue-12 shape: a commit over records cleared from a buffer
        (10, 10, set(), 0),  # nothing committed past
        (10, 15, {3, 4}, 5),  # acks below the committed offset count for nothing
        (20, 15, set(), 0),  # a commit below the log start passes nothing
    ],
)
def test_a_commit_counts_the_records_it_passes_without_their_ack(
    start: int, end: int, acked: set[int], skipped: int
) -> None:
    assert unacknowledged(start, end, acked) == skipped


def test_a_commit_past_unacknowledged_records_is_reported_with_its_range() -> None:
    consumer = GuardedConsumer.__new__(GuardedConsumer)  # the audit only: no app, no broker
    consumer._acked_since = defaultdict(set)
    consumer._log_start = {}
    reports: list[tuple[TP, int, int, int]] = []
    consumer.on_skipped = lambda tp, start, end, count: reports.append((tp, start, end, count))
    tp = TP("chat.submitted", 0)
    consumer._acked_since[tp].update({277, 367, 368, 400})  # issue 12: 278..366 cleared, never acked

    consumer._audit(tp, 277, 369)
    consumer._audit(tp, 369, 370)  # 369 never acked either

    assert reports == [(tp, 277, 369, 89), (tp, 369, 370, 1)]
    assert consumer._acked_since[tp] == {400}  # what a commit passed is forgotten, the rest kept


def test_records_before_the_log_start_are_not_counted() -> None:
    consumer = GuardedConsumer.__new__(GuardedConsumer)
    consumer._acked_since = defaultdict(set)
    tp = TP("viewers.heartbeats", 1)
    consumer._log_start = {tp: 5_000}  # retention deleted 100..4999 while the group was away
    reports: list[tuple[TP, int, int, int]] = []
    consumer.on_skipped = lambda tp, start, end, count: reports.append((tp, start, end, count))
    consumer._acked_since[tp].update(range(5_000, 5_010))

    consumer._audit(tp, 100, 5_010)

    assert reports == []
