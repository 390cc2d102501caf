"""Round trips of every event type, the decoder's error reasons, headers and JSON form."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from events.base import Event
from events.chat import ChatMessageAccepted, ModerationAction, ModerationActionRequested
from events.codec import DecodeError, EncodeError, EventCodec, SchemaMismatch, event_to_json
from events.streams import StreamCreated, StreamWentLive
from events.tournaments import MatchScoreUpdated, TeamScore
from schemas import SCHEMAS_DIR
from tests.unit.event_samples import all_event_types, sample_event

EVENT_TYPES = all_event_types()


@pytest.fixture(scope="module")
def codec() -> EventCodec:
    return EventCodec.load(SCHEMAS_DIR)


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("fill_optional", [True, False], ids=["optionals-set", "optionals-none"])
def test_every_event_type_round_trips(codec: EventCodec, cls: type[Event], fill_optional: bool) -> None:
    event = sample_event(cls, fill_optional=fill_optional, trace_id="4bf92f3577b34da6a3ce929d0e0e4736")
    decoded = codec.decode(codec.encode(event))
    assert decoded == event
    assert type(decoded) is cls


def test_decoded_values_have_python_types(codec: EventCodec) -> None:
    event = sample_event(MatchScoreUpdated, scores=(TeamScore(team="NaVi", score=1),))
    decoded = codec.decode(codec.encode(event))
    assert isinstance(decoded, MatchScoreUpdated)
    assert decoded.scores == (TeamScore(team="NaVi", score=1),)  # tuple of dataclasses, not list of dicts
    assert isinstance(decoded.event_id, uuid.UUID)
    assert decoded.occurred_at.tzinfo is UTC
    request = codec.decode(codec.encode(sample_event(ModerationActionRequested, action=ModerationAction.BAN)))
    assert type(request.action) is ModerationAction  # type: ignore[attr-defined]


def test_wire_format_is_confluent(codec: EventCodec) -> None:
    event = sample_event(StreamWentLive)
    value = codec.encode(event)
    subject = codec.subject_for("StreamWentLive")
    assert value[0] == 0
    assert int.from_bytes(value[1:5], "big") == codec.schema_id(subject, codec.versions(subject)[-1])


def test_headers_carry_type_version_and_id(codec: EventCodec) -> None:
    event = sample_event(StreamCreated, trace_id="abc")
    headers = dict(codec.headers(event))
    subject = codec.subject_for("StreamCreated")
    assert headers["event_type"] == b"StreamCreated"
    assert headers["schema_version"] == b"2"
    assert headers["schema_id"] == str(codec.schema_id(subject, 2)).encode()
    assert headers["event_id"] == str(event.event_id).encode()
    assert headers["trace_id"] == b"abc"
    assert "trace_id" not in dict(codec.headers(sample_event(StreamCreated)))


def test_headers_of_evolved_type_name_newest_version(codec: EventCodec) -> None:
    from events.chat import ChatMessageSubmitted

    assert dict(codec.headers(sample_event(ChatMessageSubmitted)))["schema_version"] == b"3"


def _valid_value(codec: EventCodec) -> bytes:
    return codec.encode(sample_event(ChatMessageAccepted))


@pytest.mark.parametrize(
    ("make_value", "reason"),
    [
        (lambda v: b"", "too_short"),
        (lambda v: v[:4], "too_short"),
        (lambda v: b"\x01" + v[1:], "bad_magic_byte"),
        (lambda v: b"\x00" + (999_999).to_bytes(4, "big") + v[5:], "unknown_schema_id"),
        (lambda v: v[:-1], "truncated"),
        (lambda v: v[:5], "truncated"),
        (lambda v: v + b"\x00garbage", "trailing_bytes"),
    ],
    ids=["empty", "four-bytes", "magic", "unknown-id", "cut-last-byte", "header-only", "trailing"],
)
def test_decode_error_reasons(codec: EventCodec, make_value: Callable[[bytes], bytes], reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        codec.decode(make_value(_valid_value(codec)))
    assert caught.value.reason == reason
    assert caught.value.retriable is False


def test_invalid_avro_body(codec: EventCodec) -> None:
    header = _valid_value(codec)[:5]
    # event_id is a string of length 36 + a string whose bytes are not UTF-8.
    body = b"\x48" + b"0" * 36 + b"\x00" + b"\x04\xff\xfe"
    with pytest.raises(DecodeError) as caught:
        codec.decode(header + body)
    assert caught.value.reason in ("invalid_avro", "truncated")


def test_invalid_enum_index_is_invalid_avro(codec: EventCodec) -> None:
    event = sample_event(ModerationActionRequested, action=ModerationAction.BAN, fill_optional=False)
    ban = codec.encode(event)
    clear = codec.encode(dataclasses.replace(event, action=ModerationAction.CLEAR))  # type: ignore[call-arg]
    (at,) = [i for i, (a, b) in enumerate(zip(ban, clear, strict=True)) if a != b]  # the enum index
    value = ban[:at] + b"\x7e" + ban[at + 1 :]  # zigzag 63: no such symbol
    with pytest.raises(DecodeError) as caught:
        codec.decode(value)
    assert caught.value.reason == "invalid_avro"


def test_naive_datetime_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="naive"):
        sample_event(StreamWentLive, started_at=datetime(2025, 1, 1, 12, 0))


def test_datetimes_are_normalised_to_utc_millis(codec: EventCodec) -> None:
    plus_two = timezone(timedelta(hours=2))
    event = sample_event(StreamWentLive, started_at=datetime(2025, 1, 1, 14, 0, 0, 123456, tzinfo=plus_two))
    assert event.started_at == datetime(2025, 1, 1, 12, 0, 0, 123000, tzinfo=UTC)  # type: ignore[attr-defined]
    assert event.started_at.tzinfo is UTC  # type: ignore[attr-defined]
    assert codec.decode(codec.encode(event)) == event


def test_event_type_is_class_name() -> None:
    assert StreamWentLive.event_type() == "StreamWentLive"
    assert sample_event(StreamWentLive).event_type() == "StreamWentLive"


def test_event_to_json_is_json_safe() -> None:
    import json

    event = sample_event(MatchScoreUpdated)
    as_json = event_to_json(event)
    assert next(iter(as_json)) == "event_type" and as_json["event_type"] == "MatchScoreUpdated"
    assert as_json["event_id"] == str(event.event_id)
    assert as_json["occurred_at"].endswith("Z") and "T" in as_json["occurred_at"]
    assert as_json["scores"] == [{"team": "team", "score": 42}] * 2
    json.dumps(as_json)


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda c: c.__name__)
def test_every_event_type_has_json_form(cls: type[Event]) -> None:
    """``esports tail`` and replay's JSON lines: the type first, every field in order, ids and times as
    strings (UTC with ``Z``), and nothing that JSON would change on a round trip."""
    import dataclasses
    import json
    from datetime import datetime

    event = sample_event(cls)
    form = event_to_json(event)
    assert list(form) == ["event_type", *(f.name for f in dataclasses.fields(cls))]
    assert form["event_type"] == cls.__name__ and form["event_id"] == str(event.event_id)
    assert form["occurred_at"].endswith("Z")
    assert datetime.fromisoformat(form["occurred_at"]) == event.occurred_at
    assert json.loads(json.dumps(form)) == form


def test_encode_refuses_unknown_type(codec: EventCodec) -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True, slots=True, kw_only=True)
    class SomethingHappened(Event):
        what: str

    with pytest.raises(EncodeError):
        codec.encode(SomethingHappened(what="x"))


def test_encode_refuses_value_of_wrong_type(codec: EventCodec) -> None:
    with pytest.raises(EncodeError):
        codec.encode(sample_event(StreamWentLive, stream_id=12))


def test_registry_read_side(codec: EventCodec) -> None:
    subjects = codec.subjects()
    assert "io.esports.events.streams.StreamWentLive" in subjects
    assert codec.versions("io.esports.events.chat.ChatMessageSubmitted") == [1, 2, 3]
    schema_id = codec.schema_id("io.esports.events.chat.ChatMessageSubmitted", 1)
    schema = codec.schema_by_id(schema_id)
    assert schema["name"] == "ChatMessageSubmitted"
    assert "reply_to_message_id" not in [f["name"] for f in schema["fields"]]
    schema["name"] = "mutated"
    assert codec.schema_by_id(schema_id)["name"] == "ChatMessageSubmitted"
    assert codec.event_class("StreamWentLive") is StreamWentLive
    with pytest.raises(KeyError):
        codec.event_class("NoSuchThing")
    with pytest.raises(KeyError):
        codec.versions("io.esports.events.nope.Nope")


def test_load_fails_fast_when_dataclass_and_schema_disagree(tmp_path: Path) -> None:
    import json
    import shutil

    shutil.copytree(SCHEMAS_DIR, tmp_path / "schemas")
    avsc = tmp_path / "schemas" / "streams" / "StreamWentLive.avsc"
    schema = json.loads(avsc.read_text())
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "channel_id"]
    avsc.write_text(json.dumps(schema))
    with pytest.raises(SchemaMismatch, match="StreamWentLive"):
        EventCodec.load(tmp_path / "schemas")
