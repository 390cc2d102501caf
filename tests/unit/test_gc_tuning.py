"""The collector setting every long-running service applies once started (infra.gc_tuning)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from infra.gc_tuning import THRESHOLDS, tune_for_throughput


@pytest.fixture
def collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("collector")
def test_the_start_up_heap_is_frozen_and_young_collections_are_rare() -> None:
    made_at_start = [object() for _ in range(10)]  # a list: tracked by the collector
    tune_for_throughput()
    assert gc.get_freeze_count() > 0 and gc.get_threshold() == THRESHOLDS
    assert THRESHOLDS[0] > 700  # CPython's default, the one that cost consumers half their CPU
    assert gc.is_tracked(made_at_start)
