"""A match's combined audience as a pure decision: distinct sessions across all its streams.

The match-audience agent (:mod:`stream_processors.viewers.match_audience_agent`) reads the heartbeats of a
match's streams (main broadcast, POVs, co-streams), re-keyed by ``match_id``, and folds them into one
:class:`~stream_processors.viewers.counts.ViewerPresence` per match with the stream counter's logic:
a session is one viewer of the match whichever of its streams it watches (and however many), the
same 30 s window, at most one :class:`~events.viewers.MatchAudienceChanged` a second, only on change,
with the peak and the time-weighted average. Its id is ``uuid5(MATCH_NAMESPACE, "match:second")``,
so a count re-decided after a crash is the same event.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from events.viewers import MatchAudienceChanged, ViewerHeartbeat
from stream_processors.viewers.counts import (
    WINDOW_MS,
    ViewerPresence,
    count_id,
    epoch_ms,
    from_epoch_ms,
    observe_seen,
    settle_presence,
)

__all__ = ["MATCH_NAMESPACE", "PRODUCER", "observe_match", "settle_match"]

# Fixed forever: changing it would give a re-decided match count a different event id.
MATCH_NAMESPACE = uuid.UUID("5c2e9a71-8b34-5f0d-9e6a-1d7b3c4f8a20")
PRODUCER = "stream_processors.match_audience"


def observe_match(state: ViewerPresence, heartbeats: Iterable[ViewerHeartbeat]) -> ViewerPresence:
    """The match's ``state`` with each heartbeat's session seen at its ``occurred_at``, whatever
    stream of the match it came from."""
    return observe_seen(state, ((h.session_id, epoch_ms(h.occurred_at)) for h in heartbeats))


def settle_match(
    state: ViewerPresence, now_ms: int, *, window_ms: int = WINDOW_MS
) -> tuple[ViewerPresence, MatchAudienceChanged | None]:
    """Expire the match's sessions at ``now_ms``; the :class:`MatchAudienceChanged` if one is due."""
    settled, decided = settle_presence(state, now_ms, window_ms=window_ms)
    if not decided:
        return settled, None
    return settled, MatchAudienceChanged(
        event_id=count_id(settled.audience_id, settled.emitted_at_ms, MATCH_NAMESPACE),
        occurred_at=from_epoch_ms(settled.emitted_at_ms),
        producer=PRODUCER,
        match_id=settled.audience_id,
        count=settled.emitted_count,
        peak=settled.peak,
        average=settled.average,
    )
