"""The Arrow schema of a topic's export, derived from the Avro schemas of its event types.

One table per topic: the position columns (``topic``, ``partition``, ``offset``, ``timestamp`` of
the record, ``event_type``) and then the union of the event types' fields, in order of first appearance.

Avro -> Arrow: ``timestamp-millis`` -> ``timestamp[ms, tz=UTC]``, ``uuid`` -> string, ``int`` ->
int32, ``long`` -> int64, ``float``/``double`` -> float32/float64, ``boolean`` -> bool, ``bytes`` ->
binary, enum -> string (Parquet dictionary-encodes it anyway), array -> ``list<...>``, map ->
``map<string, ...>``, nested record -> ``struct<...>``. A column is nullable when its Avro type is
a union with null, or when some event type of the topic lacks the field. A field whose type differs
between event types (none today) becomes a string column holding JSON text, named in ``conflicts``.
"""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

__all__ = ["POSITION_COLUMNS", "SchemaConflict", "TopicTable", "arrow_type", "jsonable", "topic_table"]

POSITION_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("topic", pa.string()),
    ("partition", pa.int32()),
    ("offset", pa.int64()),
    ("timestamp", pa.timestamp("ms", tz="UTC")),
    ("event_type", pa.string()),
)
_PRIMITIVES: dict[str, Any] = {
    "string": pa.string(),
    "int": pa.int32(),
    "long": pa.int64(),
    "float": pa.float32(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "bytes": pa.binary(),
}
_LOGICAL: dict[str, Any] = {
    "timestamp-millis": pa.timestamp("ms", tz="UTC"),
    "timestamp-micros": pa.timestamp("us", tz="UTC"),
    "uuid": pa.string(),
}
Converter = Callable[[Any], Any]


class SchemaConflict(ValueError):
    """An event field collides with a position column."""


def arrow_type(avro: Any, named: dict[str, Any], namespace: str = "") -> tuple[Any, bool]:
    """The Arrow type of an Avro type, and whether it admits null. ``named`` collects named types."""
    if isinstance(avro, list):
        branches = [b for b in avro if b != "null"]
        if len(branches) != 1:
            return pa.string(), True  # a multi-branch union has no Arrow twin: JSON text
        return arrow_type(branches[0], named, namespace)[0], "null" in avro
    if isinstance(avro, str):
        if avro in _PRIMITIVES:
            return _PRIMITIVES[avro], False
        return named.get(avro) or named[f"{namespace}.{avro}"], False
    return _complex_type(avro, named, namespace), False


def _complex_type(avro: dict[str, Any], named: dict[str, Any], namespace: str) -> Any:
    kind, logical = avro["type"], avro.get("logicalType")
    if logical in _LOGICAL:
        return _LOGICAL[logical]
    if kind == "array":
        item, nullable = arrow_type(avro["items"], named, namespace)
        return pa.list_(pa.field("item", item, nullable=nullable))
    if kind == "map":
        return pa.map_(pa.string(), arrow_type(avro["values"], named, namespace)[0])
    if kind in ("record", "enum", "fixed"):
        space = avro.get("namespace", namespace)
        fullname = avro["name"] if "." in avro["name"] else f"{space}.{avro['name']}"
        named[fullname] = _named_type(avro, named, space)
        return named[fullname]
    return arrow_type(kind, named, namespace)[0]


def _named_type(avro: dict[str, Any], named: dict[str, Any], namespace: str) -> Any:
    if avro["type"] == "enum":
        return pa.string()
    if avro["type"] == "fixed":
        return pa.binary(avro["size"])
    fields = []
    for f in avro["fields"]:
        kind, nullable = arrow_type(f["type"], named, namespace)
        fields.append(pa.field(f["name"], kind, nullable=nullable))
    return pa.struct(fields)


def _needs_uuid_text(avro: Any) -> bool:
    """Whether a value of this Avro type can hold ``uuid.UUID`` objects (pyarrow wants str)."""
    if isinstance(avro, list):
        return any(_needs_uuid_text(b) for b in avro)
    if isinstance(avro, dict):
        if avro.get("logicalType") == "uuid":
            return True
        if avro["type"] == "array":
            return _needs_uuid_text(avro["items"])
        if avro["type"] == "record":
            return any(_needs_uuid_text(f["type"]) for f in avro["fields"])
    return False


def _uuid_text(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: _uuid_text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_uuid_text(v) for v in value]
    return value


@dataclass(slots=True)
class TopicTable:
    """The Arrow schema of one topic's export, and per event type the fields needing conversion."""

    schema: Any
    conflicts: list[str] = field(default_factory=list)
    converters: dict[str, tuple[tuple[str, Converter], ...]] = field(default_factory=dict)


@dataclass(slots=True)
class _Column:
    kind: Any
    nullable: bool
    types: set[str]


def topic_table(
    avro_by_type: dict[str, dict[str, Any]],
    position: tuple[tuple[str, Any], ...] = POSITION_COLUMNS,
    reserved: tuple[str, ...] = (),
) -> TopicTable:
    """The table for the event types of a topic (``event_type -> newest Avro record schema``).

    ``position`` are the leading columns (``esports export`` leaves ``topic`` out: its folders name
    it); an event field named like one of them, or like a ``reserved`` name (the dataset's Hive
    partition keys), raises :class:`SchemaConflict`.
    """
    columns: dict[str, _Column] = {}
    conflicts: set[str] = set()
    for event_type, schema in avro_by_type.items():
        named: dict[str, Any] = {}
        for f in schema["fields"]:
            kind, nullable = arrow_type(f["type"], named, schema.get("namespace", ""))
            column = columns.setdefault(f["name"], _Column(kind, nullable, set()))
            if not column.kind.equals(kind):
                conflicts.add(f["name"])
            column.nullable |= nullable
            column.types.add(event_type)
    taken = ({name for name, _ in position} | set(reserved)) & set(columns)
    if taken:
        raise SchemaConflict(f"event fields {sorted(taken)} collide with the export's position columns")
    fields = [pa.field(name, kind, nullable=False) for name, kind in position]
    for name, column in columns.items():
        kind = pa.string() if name in conflicts else column.kind
        nullable = column.nullable or name in conflicts or len(column.types) < len(avro_by_type)
        fields.append(pa.field(name, kind, nullable=nullable))
    table = TopicTable(pa.schema(fields), sorted(conflicts))
    table.converters = {t: _converters(s, conflicts) for t, s in avro_by_type.items()}
    return table


def _converters(schema: dict[str, Any], conflicts: set[str]) -> tuple[tuple[str, Converter], ...]:
    pairs: list[tuple[str, Converter]] = []
    for f in schema["fields"]:
        if f["name"] in conflicts:
            pairs.append((f["name"], _json_text))
        elif _needs_uuid_text(f["type"]):
            pairs.append((f["name"], _uuid_text))
    return tuple(pairs)


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(jsonable(value), ensure_ascii=False)


def jsonable(value: Any) -> Any:
    """An Avro-shaped value made JSON-safe the way ``event_to_json`` does it (times ISO 'Z', ids str)."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
