"""What a one-shot export keeps: a time window and the events of some streams, a channel or a match.

Pure. Each filter given must hold, judged on the event's own fields:

- ``--stream ID``: its ``stream_id`` is one of the ids;
- ``--channel``: its ``channel_id`` is the channel's, or its ``stream_id`` is one of the channel's
  streams (the stream -> channel map comes from the catalog read model, :mod:`projections.export.command`);
- ``--match ID``: its ``match_id`` is the match, or its ``stream_id`` is one of the match's streams;
- ``--from``/``--to``: its record timestamp is in ``[from, to)`` (either bound may be absent).

An event without any field a filter can judge (a tournament's creation under ``--stream``; a
``viewers.presence`` batch, whose streams are inside its ``beats``) is left out of a filtered export.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from events.base import Event
from projections.replay.window import iso_ms

__all__ = ["EventFilter", "Scope"]


@dataclass(frozen=True, slots=True)
class Scope:
    """One filter: events whose ``field`` is in ``values``, or whose ``stream_id`` is in ``streams``."""

    field: str
    values: frozenset[str]
    streams: frozenset[str] = frozenset()

    def holds(self, event: Event) -> bool:
        own = getattr(event, self.field, None)
        if own is not None and own in self.values:
            return True
        if self.field == "stream_id":
            return False
        stream = getattr(event, "stream_id", None)
        return stream is not None and stream in self.streams


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Every scope must hold, and the record timestamp be in ``window`` (None: no bounds)."""

    scopes: tuple[Scope, ...] = ()
    from_ms: int | None = None
    to_ms: int | None = None

    @property
    def empty(self) -> bool:
        """Keeps everything (the continuous service's filter)."""
        return not self.scopes and self.from_ms is None and self.to_ms is None

    def keep(self, event: Event, timestamp_ms: int) -> bool:
        if self.from_ms is not None and timestamp_ms < self.from_ms:
            return False
        if self.to_ms is not None and timestamp_ms >= self.to_ms:
            return False
        return all(scope.holds(event) for scope in self.scopes)

    def past_end(self, timestamp_ms: int, late_ms: int) -> bool:
        """A partition can stop here: later records are past ``to`` by more than clocks disagree."""
        return self.to_ms is not None and timestamp_ms >= self.to_ms + late_ms

    def describe(self) -> dict[str, Any]:
        """The window's bounds, for the dataset's ``_export.json`` (the scopes are described by the CLI
        values that made them: a channel's streams may grow)."""
        return {
            "from": None if self.from_ms is None else iso_ms(self.from_ms),
            "to": None if self.to_ms is None else iso_ms(self.to_ms),
        }
