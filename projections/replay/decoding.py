"""A topic's records as events: its event types' newest Avro schemas, and one record decoded.

Shared by ``esports replay`` and ``esports export`` (:mod:`projections.export`): both decode with
the same rules, so a record one of them skips the other skips too.
"""

from __future__ import annotations

from typing import Any

from events.codec import DecodeError, EventCodec
from events.topics import spec
from projections.replay.source import RawRecord
from projections.replay.writers import Exported

__all__ = ["avro_by_type", "decode_record", "newest_schema_id"]


def avro_by_type(codec: EventCodec, topic: str) -> dict[str, dict[str, Any]]:
    """Each event type of ``topic`` with its newest Avro schema."""
    return {
        cls.event_type(): codec.schema_by_id(newest_schema_id(codec, cls.event_type()))
        for cls in spec(topic).event_types
    }


def newest_schema_id(codec: EventCodec, event_type: str) -> int:
    """The schema id of ``event_type``'s newest version."""
    subject = codec.subject_for(event_type)
    return codec.schema_id(subject, codec.versions(subject)[-1])


def decode_record(codec: EventCodec, record: RawRecord, allowed: set[str]) -> Exported | tuple[str, str]:
    """The exported event, or ``(reason, detail)`` when the record cannot be one."""
    if record.value is None:
        return ("tombstone", "a null value is not an event")
    try:
        event = codec.decode(record.value)
    except DecodeError as e:
        return (e.reason, str(e))
    if event.event_type() not in allowed:
        return ("not_on_topic", f"{event.event_type()} does not belong on this topic")
    return Exported(record, event)
