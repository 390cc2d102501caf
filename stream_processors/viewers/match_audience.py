"""A match's combined audience as a pure decision: distinct sessions across all its streams.

The partitions of ``viewers.presence`` count each match's sessions once whichever of its streams
(main broadcast, POVs, co-streams) they watch, and however many (:mod:`stream_processors.viewers.presence`);
the match-audience agent (:mod:`stream_processors.viewers.counts_agent`) merges those partial
counts into one :class:`~stream_processors.viewers.counts.ViewerPresence` per match with the stream
counter's logic: at most one :class:`~events.viewers.MatchAudienceChanged` a second, only on change,
with the peak and the time-weighted average. Its id is derived from the match and the second
(:func:`~stream_processors.viewers.counts.count_id` in its own id space), so a count re-decided after
a crash is the same event.
"""

from __future__ import annotations

from events.ids import IdSpace
from events.viewers import MatchAudienceChanged
from stream_processors.viewers.counts import ViewerPresence, count_id, from_epoch_ms, settle_presence

__all__ = ["PRODUCER", "settle_match"]

PRODUCER = "stream_processors.match_audience"


def settle_match(state: ViewerPresence, now_ms: int) -> tuple[ViewerPresence, MatchAudienceChanged | None]:
    """A match's :func:`settle_presence`, with the :class:`MatchAudienceChanged` it decided."""
    settled, decided = settle_presence(state, now_ms)
    if not decided:
        return settled, None
    return settled, MatchAudienceChanged(
        event_id=count_id(settled.audience_id, settled.emitted_at_ms, IdSpace.MATCH_AUDIENCE),
        occurred_at=from_epoch_ms(settled.emitted_at_ms),
        producer=PRODUCER,
        match_id=settled.audience_id,
        count=settled.emitted_count,
        peak=settled.peak,
        average=settled.average,
    )
