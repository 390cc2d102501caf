"""Event serialisation: Confluent's wire format with Avro bodies, ids fixed by the manifest.

A record value is ``b"\\x00"`` + the 4-byte big-endian schema id + the Avro binary body. Readers
look the writer's schema up by id and resolve it to the newest schema of that event type, so
data written with any earlier version decodes into today's dataclass. Pure: fastavro only.
"""

from __future__ import annotations

import copy
import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_reader

from events.avro_mapping import (
    CompiledReader,
    CompiledWriter,
    Converter,
    compiled_reader,
    compiled_writer,
    from_avro_converter,
    render_schema,
    to_json_converter,
)
from events.base import Event
from events.schema_store import SchemaEntry, load_entries

__all__ = ["DecodeError", "EncodeError", "EventCodec", "SchemaMismatch", "event_to_json"]

log = logging.getLogger(__name__)

MAGIC_BYTE = 0
HEADER_SIZE = 5  # magic byte + 4-byte schema id


class DecodeError(Exception):
    """A record value that cannot become an event. Never retriable: the bytes will not change.

    ``reason`` is machine-readable, for metrics and the dead-letter headers: ``too_short``,
    ``bad_magic_byte``, ``unknown_schema_id``, ``truncated``, ``invalid_avro``,
    ``trailing_bytes`` or ``invalid_value`` (decoded, but the dataclass refused the values).
    """

    retriable = False

    def __init__(self, reason: str, message: str, *, schema_id: int | None = None) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.schema_id = schema_id


class EncodeError(Exception):
    """An event that cannot be encoded: its type has no schema, or a value does not fit it."""

    retriable = False


class SchemaMismatch(Exception):
    """At load: a dataclass and its newest ``.avsc`` disagree, or one of them is missing."""


@dataclass(frozen=True, slots=True)
class _Writing:
    """Everything ``encode`` needs for one event class, computed at load."""

    prefix: bytes
    write: CompiledWriter
    headers: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class _Reading:
    """Everything ``decode`` needs for one schema id, computed at load: the compiled reader when the
    writer schema is the type's newest (no resolution needed), else fastavro's resolving reader and
    the converter from its dict."""

    compiled: CompiledReader | None
    writer: Any
    reader: Any
    build: Converter


@dataclass(slots=True)
class _Index:
    entries: dict[int, SchemaEntry] = field(default_factory=dict)
    ids: dict[tuple[str, int], int] = field(default_factory=dict)
    newest: dict[str, SchemaEntry] = field(default_factory=dict)


class EventCodec:
    """Encodes events to Kafka record values and headers, and decodes them back.

    Build it once per process with ``EventCodec.load(SCHEMAS_DIR)``; it is immutable afterwards and safe to
    share between tasks.
    """

    def __init__(self, entries: list[SchemaEntry], event_types: Iterable[type[Event]]) -> None:
        self._classes = {cls.event_type(): cls for cls in event_types}
        self._index = _index(entries)
        _check_contract(self._index, self._classes)
        parsed = {e.schema_id: parse_schema(e.schema) for e in entries}
        self._writing = {cls: self._writing_for(cls) for cls in self._classes.values()}
        self._reading = {e.schema_id: self._reading_for(e, parsed) for e in entries}
        # The hot path's lookup: a newest version's 5-byte prefix (magic byte, schema id) -> its reader.
        self._compiled = {
            _prefix(schema_id): reading.compiled
            for schema_id, reading in self._reading.items()
            if reading.compiled is not None
        }

    @classmethod
    def load(cls, schemas_dir: Path, event_types: Iterable[type[Event]] | None = None) -> EventCodec:
        """Read the manifest and schemas of ``schemas_dir`` (the project's: ``schemas.SCHEMAS_DIR``) and
        check them against the event dataclasses (default: every type of the topic catalogue). Fails
        fast. The folder is the caller's to give: the event model does not know where files live."""
        if event_types is None:
            from events.topics import all_event_types

            event_types = all_event_types()
        codec = cls(load_entries(schemas_dir), event_types)
        log.info(
            "event codec loaded: %s schemas for %s event types", len(codec._reading), len(codec._classes)
        )
        return codec

    def _writing_for(self, cls: type[Event]) -> _Writing:
        entry = self._index.newest[cls.event_type()]
        headers = (
            ("event_type", cls.event_type().encode()),
            ("schema_version", str(entry.version).encode()),
            ("schema_id", str(entry.schema_id).encode()),
        )
        return _Writing(_prefix(entry.schema_id), compiled_writer(cls), headers)

    def _reading_for(self, entry: SchemaEntry, parsed: dict[int, Any]) -> _Reading:
        cls = self._classes[entry.event_type]
        newest = self._index.newest[entry.event_type]
        if newest is entry:
            return _Reading(compiled_reader(cls), parsed[entry.schema_id], None, from_avro_converter(cls))
        return _Reading(None, parsed[entry.schema_id], parsed[newest.schema_id], from_avro_converter(cls))

    # --- hot path ---------------------------------------------------------------------------

    def encode(self, event: Event) -> bytes:
        """The record value: magic byte, schema id of the type's newest version, Avro body."""
        writing = self._writing.get(type(event))
        if writing is None:
            raise EncodeError(f"{type(event).__name__} has no schema in this codec")
        parts = [writing.prefix]
        try:
            writing.write(event, parts.append)
        except (ValueError, TypeError, AttributeError, KeyError, OverflowError) as e:
            raise EncodeError(f"{type(event).__name__} does not fit its schema: {e!s}") from e
        return b"".join(parts)

    def headers(self, event: Event) -> list[tuple[str, bytes]]:
        """Kafka headers: event_type, schema_version, schema_id, event_id and trace_id if set."""
        writing = self._writing.get(type(event))
        if writing is None:
            raise EncodeError(f"{type(event).__name__} has no schema in this codec")
        headers = [*writing.headers, ("event_id", str(event.event_id).encode())]
        if event.trace_id:
            headers.append(("trace_id", event.trace_id.encode()))
        return headers

    def decode(self, value: bytes) -> Event:
        """The event in ``value``, as today's dataclass whatever schema version wrote it."""
        read = self._compiled.get(value[:HEADER_SIZE])
        if read is not None:  # the common case: a type's newest version (checks below hold for it)
            try:
                event, end = read(value, HEADER_SIZE)
            except Exception as e:
                raise _invalid_body(e, value) from e
            if end != len(value):
                raise DecodeError(
                    "trailing_bytes", f"{len(value) - end} bytes after the body", schema_id=_id(value)
                )
            return event
        if len(value) < HEADER_SIZE:
            raise DecodeError("too_short", f"{len(value)} bytes, need at least {HEADER_SIZE}")
        if value[0] != MAGIC_BYTE:
            raise DecodeError("bad_magic_byte", f"first byte is {value[0]}, expected {MAGIC_BYTE}")
        schema_id = _id(value)
        reading = self._reading.get(schema_id)
        if reading is None:
            raise DecodeError("unknown_schema_id", f"schema id {schema_id}", schema_id=schema_id)
        record = _read_body(value, reading, schema_id)
        try:
            return reading.build(record)
        except (TypeError, ValueError, KeyError) as e:
            raise DecodeError("invalid_value", str(e), schema_id=schema_id) from e

    # --- schema registry read side ----------------------------------------------------------

    def schema_by_id(self, schema_id: int) -> dict[str, Any]:
        """The schema JSON stored under ``schema_id`` (a copy); ``KeyError`` if unknown."""
        return copy.deepcopy(self._index.entries[schema_id].schema)

    def subjects(self) -> list[str]:
        """Every subject (``io.esports.events.<family>.<EventType>``), sorted."""
        return sorted({entry.subject for entry in self._index.entries.values()})

    def versions(self, subject: str) -> list[int]:
        """The versions of ``subject``, ascending; ``KeyError`` if unknown."""
        versions = sorted(v for (s, v) in self._index.ids if s == subject)
        if not versions:
            raise KeyError(f"unknown subject {subject!r}")
        return versions

    def schema_id(self, subject: str, version: int) -> int:
        """The permanent id of ``subject`` at ``version``; ``KeyError`` if unknown."""
        try:
            return self._index.ids[(subject, version)]
        except KeyError:
            raise KeyError(f"unknown subject/version {subject!r} v{version}") from None

    def subject_for(self, event_type: str) -> str:
        """The subject of an event type's schemas."""
        return self._index.newest[event_type].subject

    def event_class(self, event_type: str) -> type[Event]:
        """The dataclass of ``event_type`` (e.g. ``"StreamWentLive"``); ``KeyError`` if unknown."""
        try:
            return self._classes[event_type]
        except KeyError:
            raise KeyError(f"unknown event type {event_type!r}") from None


def _prefix(schema_id: int) -> bytes:
    """What every value of schema ``schema_id`` starts with: the magic byte and the id."""
    return bytes([MAGIC_BYTE]) + schema_id.to_bytes(4, "big")


def _id(value: bytes) -> int:
    return int.from_bytes(value[1:HEADER_SIZE], "big")


def _invalid_body(error: Exception, value: bytes) -> DecodeError:
    """What a compiled reader's exception says about the body it was reading."""
    if isinstance(error, EOFError | IndexError):  # IndexError: a byte read past the end
        return DecodeError("truncated", f"body ends early: {error}", schema_id=_id(value))
    # ValueError, UnicodeDecodeError, OverflowError (a time out of range)
    return DecodeError("invalid_avro", f"{type(error).__name__}: {error}", schema_id=_id(value))


def _read_body(value: bytes, reading: _Reading, schema_id: int) -> dict[str, Any]:
    buf = io.BytesIO(value)
    buf.seek(HEADER_SIZE)
    try:
        record = schemaless_reader(buf, reading.writer, reading.reader)
    except (EOFError, StopIteration) as e:
        raise DecodeError("truncated", f"body ends early: {e}", schema_id=schema_id) from e
    except Exception as e:  # fastavro signals corrupt bodies with many types (IndexError, ...)
        raise DecodeError("invalid_avro", f"{type(e).__name__}: {e}", schema_id=schema_id) from e
    if buf.tell() != len(value):
        raise DecodeError(
            "trailing_bytes", f"{len(value) - buf.tell()} bytes after the body", schema_id=schema_id
        )
    return record  # type: ignore[return-value]


def event_to_json(event: Event) -> dict[str, Any]:
    """A JSON-safe dict: ``event_type`` first, then every field (times ISO-8601 UTC 'Z', ids str)."""
    return {"event_type": event.event_type(), **to_json_converter(type(event))(event)}


# --- load-time checks -------------------------------------------------------------------------


def _index(entries: list[SchemaEntry]) -> _Index:
    index = _Index()
    for entry in entries:
        index.entries[entry.schema_id] = entry
        index.ids[(entry.subject, entry.version)] = entry.schema_id
        current = index.newest.get(entry.event_type)
        if current is None or entry.version > current.version:
            index.newest[entry.event_type] = entry
    return index


def _check_contract(index: _Index, classes: dict[str, type[Event]]) -> None:
    without_class = sorted(set(index.newest) - set(classes))
    without_schema = sorted(set(classes) - set(index.newest))
    if without_class or without_schema:
        raise SchemaMismatch(
            f"schemas without a dataclass: {without_class}; dataclasses without a schema: {without_schema}"
        )
    for event_type, cls in classes.items():
        problem = schema_difference(cls, index.newest[event_type].schema)
        if problem:
            raise SchemaMismatch(f"{event_type} vs {index.newest[event_type].path}: {problem}")


def schema_difference(cls: type[Event], schema: dict[str, Any]) -> str:
    """What differs between ``cls`` and its ``.avsc`` (field names, order, types, defaults); ""
    when they agree. Docs and enum defaults are free to differ."""
    expected = render_schema(cls)
    if _shape(expected) != _shape(schema):
        return f"expected fields {_shape(expected)['fields']}, found {_shape(schema).get('fields')}"
    for want, have in zip(expected["fields"], schema["fields"], strict=True):
        if "default" in want and have.get("default", ...) != want["default"]:
            return (
                f"field {want['name']}: dataclass default {want['default']!r}, schema {have.get('default')!r}"
            )
    return ""


def _shape(node: Any) -> Any:
    """``node`` without the keys that do not change what is written (doc, defaults, aliases)."""
    if isinstance(node, dict):
        return {k: _shape(v) for k, v in node.items() if k not in ("doc", "default", "aliases", "order")}
    if isinstance(node, list):
        return [_shape(v) for v in node]
    return node
