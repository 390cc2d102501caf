"""The garbage collector of a long-running service, set for a stream of short-lived events.

CPython's cyclic collector runs a young collection every 700 net allocations of tracked objects and
promotes what survives it. A consumer holds a whole fetched batch (thousands of events, each a few
tracked objects) while it works on it, so with the defaults most of a batch survives into the older
generations, and the full collections that follow walk every live object: measured here, half of a
consumer's CPU went to the collector (100,000 chat events: 10 full collections took 0.65 s of 2.0 s).
Events rarely form reference cycles (frozen dataclasses of strings and numbers), so collecting far
less often frees almost nothing later and costs a bounded amount of memory: at most
:data:`YOUNG_THRESHOLD` tracked objects of cyclic garbage wait for a collection.

:func:`tune_for_throughput` is called once a service has started (its modules, schemas and clients
built): :func:`gc.freeze` moves that start-up heap out of the collector's sight, so the rare full
collections walk only what the service allocated since. ``esports rebuild`` sets the same
:data:`THRESHOLDS` for its run (with the defaults, collecting took about 14% of a rebuild's CPU).
"""

from __future__ import annotations

import gc

__all__ = ["THRESHOLDS", "YOUNG_THRESHOLD", "tune_for_throughput"]

YOUNG_THRESHOLD = 50_000  # net allocations of tracked objects between young collections (default 700)
THRESHOLDS = (YOUNG_THRESHOLD, 20, 100)  # then every 20th young collection is a middle one, and so on


def tune_for_throughput() -> None:
    """Collect once, freeze what exists (the start-up heap) and collect rarely from now on."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
