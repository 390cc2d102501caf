"""The commit audit of :mod:`stream_processors.consumer`: how many records a commit passes unacked."""

from __future__ import annotations

import pytest

from stream_processors.consumer import unacknowledged


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
