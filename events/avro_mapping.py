"""How event dataclasses map to Avro, derived generically from their type hints.

One walk over a class's fields yields three things, computed once per class:
the Avro schema the class implies (to check the ``.avsc`` contract at start and to draft new
schema files), a converter to the dict fastavro writes, and a converter back from the dict
fastavro reads. Supported field types: ``str``, ``int``, ``float``, ``bool``, ``bytes``,
``datetime`` (timestamp-millis), ``uuid.UUID`` (string/uuid), ``enum.StrEnum`` (Avro enum),
frozen dataclasses (nested records), ``tuple[T, ...]`` (arrays) and ``T | None`` (union with null).
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
import uuid
from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import Any

__all__ = [
    "Converter",
    "UnsupportedType",
    "avro_namespace",
    "field_names",
    "from_avro_converter",
    "render_schema",
    "to_avro_converter",
    "to_json_converter",
]

NAMESPACE_ROOT = "io.esports.events"
Converter = Callable[[Any], Any]

_PRIMITIVES: dict[type, str] = {str: "string", int: "long", float: "double", bool: "boolean", bytes: "bytes"}
_LOGICAL: dict[type, dict[str, str]] = {
    datetime: {"type": "long", "logicalType": "timestamp-millis"},
    uuid.UUID: {"type": "string", "logicalType": "uuid"},
}


class UnsupportedType(TypeError):
    """A dataclass field's type has no Avro mapping here."""


def avro_namespace(cls: type) -> str:
    """``io.esports.events.<family>`` from the defining module (``events.base`` -> ``common``)."""
    family = cls.__module__.rsplit(".", 1)[-1]
    return f"{NAMESPACE_ROOT}.{'common' if family == 'base' else family}"


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@cache
def field_names(cls: type) -> tuple[str, ...]:
    """The dataclass's field names in declaration order (head fields first)."""
    return tuple(f.name for f in dataclasses.fields(cls))


def _optional_inner(hint: Any) -> Any | None:
    """``T`` for ``T | None``, else None."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0]
        raise UnsupportedType(f"only `T | None` unions are supported, not {hint!r}")
    return None


def _tuple_item(hint: Any) -> Any | None:
    """``T`` for ``tuple[T, ...]``, else None."""
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return args[0]
        raise UnsupportedType(f"only `tuple[T, ...]` is supported, not {hint!r}")
    return None


def _is_enum(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, enum.StrEnum)


def _is_record(hint: Any) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


# --- schema rendering -------------------------------------------------------------------------


def render_schema(cls: type, enum_defaults: dict[str, str] | None = None) -> dict[str, Any]:
    """The Avro record schema implied by dataclass ``cls`` (the draft of its ``.avsc``).

    Enum defaults are not expressible in Python types; ``enum_defaults`` maps an enum's name to
    its default symbol (else its first symbol).
    """
    return _render_record(cls, set(), enum_defaults or {})


def _render_record(cls: type, defined: set[str], enum_defaults: dict[str, str]) -> dict[str, Any]:
    defined.add(f"{avro_namespace(cls)}.{cls.__name__}")
    schema: dict[str, Any] = {"type": "record", "name": cls.__name__, "namespace": avro_namespace(cls)}
    if cls.__doc__ and not cls.__doc__.startswith(cls.__name__ + "("):
        schema["doc"] = " ".join(cls.__doc__.split())
    schema["fields"] = [
        _render_field(f, _hints(cls)[f.name], defined, enum_defaults) for f in dataclasses.fields(cls)
    ]
    return schema


def _render_field(
    f: dataclasses.Field[Any], hint: Any, defined: set[str], enum_defaults: dict[str, str]
) -> dict[str, Any]:
    rendered: dict[str, Any] = {"name": f.name, "type": _render_type(hint, defined, enum_defaults)}
    if f.default is not dataclasses.MISSING:
        rendered["default"] = f.default.value if isinstance(f.default, enum.Enum) else f.default
        if isinstance(f.default, tuple):
            rendered["default"] = list(f.default)
    return rendered


def _render_type(hint: Any, defined: set[str], enum_defaults: dict[str, str]) -> Any:
    if (inner := _optional_inner(hint)) is not None:
        return ["null", _render_type(inner, defined, enum_defaults)]
    if (item := _tuple_item(hint)) is not None:
        return {"type": "array", "items": _render_type(item, defined, enum_defaults)}
    if hint in _PRIMITIVES:
        return _PRIMITIVES[hint]
    if hint in _LOGICAL:
        return dict(_LOGICAL[hint])
    if _is_enum(hint) or _is_record(hint):
        fullname = f"{avro_namespace(hint)}.{hint.__name__}"
        if fullname in defined:
            return fullname
        if _is_record(hint):
            return _render_record(hint, defined, enum_defaults)
        defined.add(fullname)
        symbols = [member.value for member in hint]
        default = enum_defaults.get(hint.__name__, symbols[0])
        return {
            "type": "enum",
            "name": hint.__name__,
            "namespace": avro_namespace(hint),
            "symbols": symbols,
            "default": default,
        }
    raise UnsupportedType(f"no Avro mapping for {hint!r}")


# --- value conversion -------------------------------------------------------------------------
# A converter of None means "the value is already what fastavro writes/reads": most fields need
# no work, and skipping them is what keeps encode/decode fast.


def _or_none(conv: Converter) -> Converter:
    return lambda value: None if value is None else conv(value)


def _each(conv: Converter, container: Callable[[Any], Any]) -> Converter:
    return lambda values: container(conv(value) for value in values)


def _walk(
    hint: Any, leaf: Callable[[Any], Converter | None], container: Callable[[Any], Any]
) -> Converter | None:
    """The converter for ``hint``: ``leaf`` decides scalars and records, unions and arrays are
    walked here; ``container`` builds arrays (list to write, tuple to read)."""
    if (inner := _optional_inner(hint)) is not None:
        conv = _walk(inner, leaf, container)
        return None if conv is None else _or_none(conv)
    if (item := _tuple_item(hint)) is not None:
        conv = _walk(item, leaf, container)
        return container if conv is None else _each(conv, container)
    return leaf(hint)


def _to_avro_leaf(hint: Any) -> Converter | None:
    # Primitives, datetime and UUID go as they are; a StrEnum member is a str, written as its symbol.
    return to_avro_converter(hint) if _is_record(hint) else None


def _from_avro_leaf(hint: Any) -> Converter | None:
    if _is_enum(hint):
        return hint
    return from_avro_converter(hint) if _is_record(hint) else None


def _json_leaf(hint: Any) -> Converter | None:
    if hint is datetime:
        return _iso_utc
    if hint is uuid.UUID or _is_enum(hint):
        return str
    if hint is bytes:
        return bytes.hex
    return to_json_converter(hint) if _is_record(hint) else None


# Arrays are written from lists, always: fastavro reads a 2-tuple in a union as an explicit
# ("branch", value) pair. They are read back into tuples, which frozen dataclasses need.
_TO_AVRO: dict[type, Converter] = {}
_FROM_AVRO: dict[type, Converter] = {}
_TO_JSON: dict[type, Converter] = {}


def to_avro_converter(cls: type) -> Converter:
    """A function turning an instance of ``cls`` into the dict fastavro writes."""
    if (cached := _TO_AVRO.get(cls)) is not None:
        return cached
    names = field_names(cls)
    special = _special_fields(cls, _to_avro_leaf, list)

    def to_avro(obj: Any) -> dict[str, Any]:
        record = {name: getattr(obj, name) for name in names}
        for name, conv in special:
            record[name] = conv(record[name])
        return record

    _TO_AVRO[cls] = to_avro
    return to_avro


def from_avro_converter(cls: type) -> Converter:
    """A function turning the dict fastavro read (with ``cls``'s newest schema) into a ``cls``."""
    if (cached := _FROM_AVRO.get(cls)) is not None:
        return cached
    special = _special_fields(cls, _from_avro_leaf, tuple)

    def from_avro(record: dict[str, Any]) -> Any:
        for name, conv in special:
            record[name] = conv(record[name])
        return cls(**record)

    _FROM_AVRO[cls] = from_avro
    return from_avro


def to_json_converter(cls: type) -> Converter:
    """A function turning an instance of ``cls`` into a JSON-safe dict (ISO-8601 'Z' times, str ids)."""
    if (cached := _TO_JSON.get(cls)) is not None:
        return cached
    names = field_names(cls)
    special = _special_fields(cls, _json_leaf, list)

    def to_json(obj: Any) -> dict[str, Any]:
        out = {name: getattr(obj, name) for name in names}
        for name, conv in special:
            out[name] = conv(out[name])
        return out

    _TO_JSON[cls] = to_json
    return to_json


def _special_fields(
    cls: type, leaf: Callable[[Any], Converter | None], container: Callable[[Any], Any]
) -> tuple[tuple[str, Converter], ...]:
    """The (field, converter) pairs of ``cls`` whose values need converting; the rest pass as is."""
    hints = _hints(cls)
    pairs = ((name, _walk(hints[name], leaf, container)) for name in field_names(cls))
    return tuple((name, conv) for name, conv in pairs if conv is not None)


def _iso_utc(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
