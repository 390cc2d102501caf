"""The time window of a replay: ISO-8601 bounds turned into record-timestamp milliseconds.

Pure: no I/O. A record belongs to the window when ``from_ms <= timestamp < to_ms`` (its Kafka
timestamp, the CreateTime our producers set), so consecutive windows never share a record.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["TimeWindow", "iso_ms", "parse_time", "to_millis"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(text: str) -> datetime:
    """An ISO-8601 time (``Z`` or an offset; naive means UTC) as an aware UTC datetime.

    Raises ``argparse.ArgumentTypeError`` so that argparse reports a bad value as a usage error.
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO-8601 time: {text!r} (e.g. 2026-11-25T18:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def to_millis(moment: datetime) -> int:
    """Milliseconds since the epoch, rounded *up*: record timestamps are whole milliseconds, so
    ``ts >= moment`` and ``ts < moment`` both hold exactly when they hold for the rounded-up value."""
    micros = (moment - EPOCH) // timedelta(microseconds=1)
    return -(-micros // 1000)


def iso_ms(millis: int) -> str:
    """A record timestamp as ISO-8601 UTC with milliseconds and ``Z`` (as ``event_to_json`` writes times)."""
    moment = EPOCH + timedelta(milliseconds=millis)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """``[from_ms, to_ms)`` in record-timestamp milliseconds; ``from_ms`` None = the log's beginning."""

    from_ms: int | None
    to_ms: int

    @classmethod
    def of(cls, start: datetime | None, end: datetime | None, now: datetime) -> TimeWindow:
        """The window from CLI bounds; a missing end is ``now`` (the moment the export started)."""
        window = cls(None if start is None else to_millis(start), to_millis(end or now))
        if window.from_ms is not None and window.from_ms >= window.to_ms:
            raise ValueError(
                f"--from ({iso_ms(window.from_ms)}) must be before --to ({iso_ms(window.to_ms)})"
            )
        return window

    def holds(self, timestamp_ms: int) -> bool:
        return (self.from_ms is None or timestamp_ms >= self.from_ms) and timestamp_ms < self.to_ms

    def describe(self) -> dict[str, str | None]:
        return {
            "from": None if self.from_ms is None else iso_ms(self.from_ms),
            "to": iso_ms(self.to_ms),
            "bounds": "[from, to): from inclusive (absent = the oldest retained record), to exclusive",
        }
