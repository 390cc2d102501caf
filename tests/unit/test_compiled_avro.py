"""The compiled readers and writers (``events.avro_mapping``) read and write exactly what fastavro does.

They replace fastavro on the codec's hot paths (bodies written with the newest schema), so every
supported field type is checked against fastavro itself on generated values, including what fastavro's
writer never produces but other writers may (arrays in several blocks).
"""

from __future__ import annotations

import dataclasses
import enum
import io
import pickle
import uuid
from datetime import UTC, datetime

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from events.avro_mapping import (
    _read_uuid,
    compiled_reader,
    compiled_writer,
    from_avro_converter,
    frozen_constructor,
    render_schema,
    to_avro_converter,
)
from events.base import Event
from events.codec import DecodeError, EventCodec
from schemas import SCHEMAS_DIR
from tests.unit.event_samples import all_event_types, sample_event


class Colour(enum.StrEnum):
    RED = "red"
    GREEN = "green"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Inner:
    name: str
    weight: float


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Everything(Event):
    text: str
    count: int
    ratio: float
    flag: bool
    blob: bytes
    moment: datetime
    ref: uuid.UUID
    colour: Colour
    inner: Inner
    inners: tuple[Inner, ...]
    numbers: tuple[int, ...]
    maybe_text: str | None
    maybe_colour: Colour | None
    maybe_inner: Inner | None


_SCHEMA = fastavro.parse_schema(render_schema(Everything))
_longs = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_doubles = st.floats(allow_nan=False)
_inners = st.builds(Inner, name=st.text(), weight=_doubles)
_moments = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
).map(lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000))
_everything = st.builds(
    Everything,
    event_id=st.uuids(),
    occurred_at=_moments,
    producer=st.text(),
    text=st.text(max_size=300),  # past 63 bytes a length takes two bytes
    count=_longs,
    ratio=_doubles,
    flag=st.booleans(),
    blob=st.binary(),
    moment=_moments,
    ref=st.uuids(),
    colour=st.sampled_from(Colour),
    inner=_inners,
    inners=st.lists(_inners, max_size=3).map(tuple),
    numbers=st.lists(_longs, max_size=70).map(tuple),
    maybe_text=st.none() | st.text(),
    maybe_colour=st.none() | st.sampled_from(Colour),
    maybe_inner=st.none() | _inners,
)


def _written(event: Everything) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, _SCHEMA, to_avro_converter(Everything)(event))
    return buf.getvalue()


@given(_everything)
def test_compiled_reader_reads_what_fastavro_reads(event: Everything) -> None:
    body = _written(event)
    decoded, end = compiled_reader(Everything)(body, 0)
    assert end == len(body)
    assert decoded == from_avro_converter(Everything)(
        fastavro.schemaless_reader(io.BytesIO(body), _SCHEMA, None)
    )
    assert decoded == event
    assert type(decoded.colour) is Colour and decoded.moment.tzinfo is UTC


@given(_everything)
def test_compiled_writer_writes_what_fastavro_writes(event: Everything) -> None:
    parts: list[bytes] = []
    compiled_writer(Everything)(event, parts.append)
    assert b"".join(parts) == _written(event)


@pytest.mark.parametrize("too_big", [2**63, -(2**63) - 1])
def test_compiled_writer_refuses_longs_out_of_range(too_big: int) -> None:
    with pytest.raises(OverflowError):
        compiled_writer(Numbers)(Numbers(values=(too_big,)), [].append)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Numbers:
    values: tuple[int, ...]


def test_arrays_in_several_blocks_and_blocks_with_sizes() -> None:
    # A block of 2 items given with its byte size (count -2, size 2), then a block of 1, then the end.
    body = b"\x03\x04" + b"\x02\x04" + b"\x02" + b"\x06" + b"\x00"
    expected = fastavro.schemaless_reader(
        io.BytesIO(body), fastavro.parse_schema(render_schema(Numbers)), None
    )
    assert compiled_reader(Numbers)(body, 0) == (Numbers(values=tuple(expected["values"])), len(body))
    assert expected["values"] == [1, 2, 3]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Checked:
    size: int

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError("negative size")


def test_a_class_with_its_own_post_init_still_gets_it() -> None:
    with pytest.raises(ValueError, match="negative size"):
        compiled_reader(Checked)(b"\x01", 0)


@pytest.fixture(scope="module")
def codec() -> EventCodec:
    return EventCodec.load(SCHEMAS_DIR)


@pytest.mark.parametrize("cls", all_event_types(), ids=lambda c: c.__name__)
def test_every_cut_of_every_event_is_truncated(codec: EventCodec, cls: type[Event]) -> None:
    value = codec.encode(sample_event(cls))
    for end in range(5, len(value)):
        with pytest.raises(DecodeError) as caught:
            codec.decode(value[:end])
        assert caught.value.reason == "truncated", (end, caught.value)


@given(st.uuids())
def test_uuids_read_fast_are_the_uuids_uuid_makes(value: uuid.UUID) -> None:
    for text in (str(value), str(value).upper()):
        fast, slow = _read_uuid(text), uuid.UUID(text)
        assert fast == slow and hash(fast) == hash(slow) and fast.is_safe is slow.is_safe
        assert pickle.loads(pickle.dumps(fast)) == slow


@pytest.mark.parametrize(
    "text",
    [
        "{12345678-1234-5678-1234-567812345678}",  # forms UUID() accepts, read through it
        "urn:uuid:12345678-1234-5678-1234-567812345678",
        "12345678123456781234567812345678",
        "{1234567812345678-12345678123456-78}",  # 36 characters, still a form UUID() takes
    ],
)
def test_other_forms_of_a_uuid_still_read(text: str) -> None:
    assert _read_uuid(text) == uuid.UUID("12345678-1234-5678-1234-567812345678")


@pytest.mark.parametrize(
    "text",
    [
        "12345678-1234-5678-1234-56781234567g",  # not hex
        "12345678-1234-5678-1234-5678 2345678",  # a space bytes.fromhex would skip
        "12345678-1234-5678-1234-56781234567",  # a digit short
        "12345678-1234-5678-1234-5678123456789",
        "",
    ],
)
def test_malformed_uuids_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        _read_uuid(text)


@dataclasses.dataclass(frozen=True, slots=True)
class Coordinates:
    topic: str
    partition: int


def test_a_frozen_constructor_makes_what_the_init_makes() -> None:
    made = frozen_constructor(Coordinates)("chat", 3)
    assert made == Coordinates("chat", 3) and hash(made) == hash(Coordinates("chat", 3))
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.partition = 4  # type: ignore[misc]


def test_a_frozen_constructor_refuses_defaults_and_post_init() -> None:
    with pytest.raises(TypeError, match="defaults"):
        frozen_constructor(Everything)  # Event's fields have defaults
    with pytest.raises(TypeError, match="__post_init__"):
        frozen_constructor(Checked)
