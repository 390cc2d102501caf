"""Valid sample instances of any event type, built generically from the dataclass fields.

Shared by unit and integration tests::

    from tests.unit.event_samples import all_event_types, sample_event
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from events.base import Event
from events.topics import all_event_types

__all__ = ["SAMPLE_TIME", "all_event_types", "sample_event", "sample_value"]

SAMPLE_TIME = datetime(2025, 6, 1, 18, 30, 15, 123000, tzinfo=UTC)

# Field names whose sample should look like the domain (the rest get generic values).
_NAMED_STRINGS = {
    "text": "gg wp, what a clutch",
    "title": "Grand final, day 2",
    "question": "Who wins the next map?",
    "url": "/streams/stream-1",
    "uri": "/hls/stream-1/720p60/seg-00042.ts",
    "master_playlist": "/hls/stream-1/master.m3u8",
    "language": "en",
    "slug": "lec-official",
    "display_name": "LEC Official",
    "description": "The League of Legends EMEA Championship",
    "attempted": "go_live",
    "current_state": "ended",
    "causation_id": "00000000-0000-0000-0000-00000000000c",  # another event's event_id
    "producer": "tests.samples",
    "reasons_0": "link",  # ChatMessageHeld's risk signals
    "reasons_1": "evasion",
    "blocked_terms_0": "free skins",
    "blocked_terms_1": "scam coin",
    "link_allowlist_0": "twitch.tv",
    "link_allowlist_1": "youtube.com",
    "notification_ids_0": "5b0e2c1a-7d3f-5e49-9a8b-1c2d3e4f5a6b",  # NotificationsRead: uuid5 ids
    "notification_ids_1": "6c1f3d2b-8e4a-5f5a-8b9c-2d3e4f5a6b7c",
}
# Float fields with a domain range (the rest get a frame rate).
_NAMED_FLOATS = {"score": 0.7}  # ChatMessageHeld: a risk score in 0..1
_NAMED_FLOATS["average"] = 1204.25  # ViewerCountChanged, MatchAudienceChanged: mean concurrent viewers


def sample_event(cls: type[Event], *, fill_optional: bool = True, **overrides: Any) -> Event:
    """A valid ``cls`` instance: every required field filled, optional ones filled too unless
    ``fill_optional`` is False (then they keep their None default). ``overrides`` win."""
    values = _sample_fields(cls, fill_optional, skip=set(overrides) | {"event_id", "occurred_at", "trace_id"})
    return cls(**values, **overrides)


def _sample_fields(cls: type, fill_optional: bool, skip: set[str]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        optional = _optional_inner(hints[f.name]) is not None
        if optional and not fill_optional:
            continue
        values[f.name] = sample_value(hints[f.name], f.name, fill_optional)
    return values


def sample_value(hint: Any, name: str = "value", fill_optional: bool = True) -> Any:
    """A deterministic sample of type ``hint`` for a field called ``name``."""
    inner = _optional_inner(hint)
    if inner is not None:
        return sample_value(inner, name, fill_optional)
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        return tuple(sample_value(item, f"{name}_{i}", fill_optional) for i in range(2))
    return _scalar(hint, name, fill_optional)


def _scalar(hint: Any, name: str, fill_optional: bool) -> Any:
    if hint is str:
        return _NAMED_STRINGS.get(name) or (f"{name.removesuffix('_id')}-1" if name.endswith("_id") else name)
    if hint is bool:
        return True
    if hint is int:
        return 1 if name in ("option",) else 42
    if hint is float:
        return _NAMED_FLOATS.get(name, 29.97)
    if hint is bytes:
        return b"\x00\x01"
    if hint is datetime:
        return SAMPLE_TIME + timedelta(minutes=5)
    if hint is uuid.UUID:
        return uuid.UUID(int=7)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        members = list(hint)
        return members[1] if len(members) > 1 else members[0]  # not the Avro default: a real value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return hint(**_sample_fields(hint, fill_optional, skip=set()))
    raise TypeError(f"no sample for {hint!r} ({name})")


def _optional_inner(hint: Any) -> Any | None:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return next(a for a in typing.get_args(hint) if a is not type(None))
    return None
