"""The common head every event carries, and the clock helper that keeps timestamps Avro-exact."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = ["Event", "to_utc_millis", "utc_now"]


def to_utc_millis(moment: datetime) -> datetime:
    """Return ``moment`` in UTC, truncated to whole milliseconds.

    Avro ``timestamp-millis`` keeps milliseconds only, so truncating at creation time makes an
    encode/decode round trip compare equal. Naive datetimes are refused: a wall-clock time without
    a zone is ambiguous in a log that outlives every server's local clock.
    """
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: events carry timezone-aware UTC times")
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    extra = moment.microsecond % 1000
    return moment.replace(microsecond=moment.microsecond - extra) if extra else moment


def utc_now() -> datetime:
    """The current time, tz-aware UTC, truncated to milliseconds."""
    return to_utc_millis(datetime.now(UTC))


# Datetime-typed field names per event class, computed once: __post_init__ runs on the hot path.
_DATETIME_FIELDS: dict[type, tuple[str, ...]] = {}


def _datetime_fields(cls: type) -> tuple[str, ...]:
    names = _DATETIME_FIELDS.get(cls)
    if names is None:
        import typing

        hints = typing.get_type_hints(cls)
        names = tuple(name for name, hint in hints.items() if _mentions_datetime(hint))
        _DATETIME_FIELDS[cls] = names
    return names


def _mentions_datetime(hint: object) -> bool:
    import typing

    return hint is datetime or datetime in typing.get_args(hint)


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """The head shared by every event: identity, time, provenance, cause.

    Subclasses are frozen, keyword-only dataclasses named in the past tense, one per Avro
    schema ``schemas/<family>/<EventType>.avsc``. Every datetime field is normalised to UTC
    milliseconds on construction so that what is decoded equals what was encoded.

    ``causation_id`` joined the head in one new version of every type; the types that named their
    cause in a field of their own (``cause_event_id``, ``cause_id``) read it from there when decoding
    records written before (the field's Avro ``aliases``).
    """

    event_id: uuid.UUID = field(default_factory=uuid.uuid4)
    occurred_at: datetime = field(default_factory=utc_now)
    producer: str = ""  # the service that produced it, e.g. "producers.api"
    trace_id: str = ""  # W3C trace id when the command came with one; "" otherwise
    causation_id: str = ""  # event_id of the event or command it was decided on; "" from outside

    def __post_init__(self) -> None:
        for name in _datetime_fields(type(self)):
            value = getattr(self, name)
            if value is not None and (value.tzinfo is not UTC or value.microsecond % 1000):
                object.__setattr__(self, name, to_utc_millis(value))

    @classmethod
    def event_type(cls) -> str:
        """The event's type name, which is also its Avro record name: e.g. ``"StreamWentLive"``."""
        return cls.__name__
