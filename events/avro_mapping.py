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
import inspect
import struct
import types
import typing
import uuid
from collections.abc import Callable
from dataclasses import MISSING
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from events.base import Event

__all__ = [
    "CompiledReader",
    "CompiledWriter",
    "Converter",
    "UnsupportedType",
    "avro_namespace",
    "compiled_reader",
    "compiled_writer",
    "field_names",
    "from_avro_converter",
    "frozen_constructor",
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


# --- compiled readers -------------------------------------------------------------------------
# Decoding is the consumers' per-record cost. fastavro's reader walks the schema dicts for every
# record and returns a dict that must then be converted and passed through the dataclass's keyword
# ``__init__``. For a body written with the newest schema (every record but old fixtures) no schema
# resolution is needed, so each class gets one Python function, generated from its type hints at
# load, that reads the Avro binary straight into the frozen dataclass's slots. The values it yields
# are exactly what ``__init__`` would keep (times are UTC milliseconds by construction), so
# ``Event.__post_init__``'s normalisation is skipped; a class with its own ``__post_init__`` still
# gets it called. Bodies written with an older schema go through fastavro's schema resolution.

CompiledReader = Callable[[bytes, int], tuple[Any, int]]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_READERS: dict[type, CompiledReader] = {}


def compiled_reader(cls: type) -> CompiledReader:
    """``read(data, offset) -> (instance of cls, end offset)`` for a ``cls`` body in the Avro binary
    of the schema ``render_schema(cls)`` (the ``.avsc`` contract). A body that ends early raises
    ``EOFError`` or ``IndexError``; any other malformed body raises ``ValueError`` (or what ``UUID``,
    ``bytes.decode`` and ``timedelta`` raise for it)."""
    if (cached := _READERS.get(cls)) is not None:
        return cached
    source = _ReaderSource(cls)
    namespace: dict[str, Any] = {}
    exec(compile(source.text(), f"<avro reader of {cls.__qualname__}>", "exec"), source.env, namespace)
    reader: CompiledReader = namespace["read"]
    _READERS[cls] = reader
    return reader


def _read_long_tail(data: bytes, p: int) -> tuple[int, int]:
    """A zig-zag varint of more than one byte starting at ``p`` (one-byte ones are read inline)."""
    byte = data[p]
    n, shift, p = byte & 0x7F, 7, p + 1
    while byte & 0x80:
        byte = data[p]
        n |= (byte & 0x7F) << shift
        shift, p = shift + 7, p + 1
    return (n >> 1) ^ -(n & 1), p


def _read_span(data: bytes, p: int) -> tuple[int, int]:
    """Where a string or bytes value whose length is not one byte (a long or negative one) starts and
    ends: ``(start, end)``. Short ones (up to 63 bytes, the common case) are read inline."""
    length, start = _read_long_tail(data, p)
    if length < 0:
        raise _invalid("length")
    return start, start + length


_UUID_INT = uuid.UUID.__dict__["int"].__set__
_UUID_SAFE = uuid.UUID.__dict__["is_safe"].__set__


def _read_uuid(text: str) -> uuid.UUID:
    """``UUID(text)`` without its generality: a canonical 36-character UUID (what the writers write)
    is made straight from its 16 bytes; anything else goes through ``UUID`` (and its errors)."""
    try:
        digits = bytes.fromhex(text.replace("-", "")) if len(text) == 36 else b""
    except ValueError:  # not hex: UUID() says why (or takes a rarer form, e.g. in braces)
        digits = b""
    if len(digits) != 16:
        return uuid.UUID(text)
    value = object.__new__(uuid.UUID)
    _UUID_INT(value, int.from_bytes(digits))
    _UUID_SAFE(value, uuid.SafeUUID.unknown)
    return value


def _invalid(what: str) -> ValueError:
    return ValueError(f"invalid {what} in the Avro body")


class _Source:
    """The source text of one generated function, and the globals its names refer to."""

    lines: list[str]
    env: dict[str, Any]
    _names: int

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"

    def _bind(self, value: Any) -> str:
        """A name for ``value`` in the generated code's globals."""
        self._names += 1
        self.env[f"_g{self._names}"] = value
        return f"_g{self._names}"

    def _local(self) -> str:
        self._names += 1
        return f"v{self._names}"


class _ReaderSource(_Source):
    """The source of one class's reader: straight-line code per field, nested records as calls."""

    def __init__(self, cls: type) -> None:
        self._names = 0
        self.env: dict[str, Any] = {
            "_new": object.__new__,
            "_cls": cls,
            "_long": _read_long_tail,
            "_span": _read_span,
            "_uuid": _read_uuid,
            "_invalid": _invalid,
            "_EPOCH": _EPOCH,
            "_timedelta": timedelta,
            "_UUID": uuid.UUID,
            "_double": struct.Struct("<d").unpack_from,
        }
        self.lines = ["def read(data, p):", "    size = len(data)", "    obj = _new(_cls)"]
        hints = _hints(cls)
        for name in field_names(cls):
            value = self._emit(hints[name], 1)
            self.lines.append(f"    {self._bind(_slot_setter(cls, name))}(obj, {value})")
        if getattr(cls, "__post_init__", Event.__post_init__) is not Event.__post_init__:
            self.lines.append("    obj.__post_init__()")  # a check of its own: keep it
        self.lines.append("    return obj, p")

    def _emit(self, hint: Any, depth: int) -> str:
        """Append the lines reading one ``hint`` value at ``p``; return the local holding it."""
        pad, target = "    " * depth, self._local()
        if (inner := _optional_inner(hint)) is not None:
            # The union branch, a one-byte varint as every writer writes it: 0 null, 2 (zig-zag 1) the value
            self.lines += [f"{pad}{target} = data[p]", f"{pad}p += 1", f"{pad}if {target} == 2:"]
            self.lines.append(f"{pad}    {target} = {self._emit(inner, depth + 1)}")
            self.lines += [f"{pad}elif {target}:", f"{pad}    raise _invalid('union branch')"]
            self.lines += [f"{pad}else:", f"{pad}    {target} = None"]
        elif (item := _tuple_item(hint)) is not None:
            self._emit_array(item, target, depth)
        elif hint is str or hint is uuid.UUID or hint is bytes:
            self._emit_bytes(target, depth)
            if hint is str:
                self.lines.append(f"{pad}{target} = {target}.decode()")
            elif hint is uuid.UUID:
                self.lines.append(f"{pad}{target} = _uuid({target}.decode())")
        elif hint is int or hint is datetime:
            self._emit_long(target, depth)
            if hint is datetime:
                # timedelta(days, seconds, microseconds, milliseconds): positional is the fastest call
                self.lines.append(f"{pad}{target} = _EPOCH + _timedelta(0, 0, 0, {target})")
        elif hint is bool:
            self.lines += [f"{pad}{target} = data[p] != 0", f"{pad}p += 1"]
        elif hint is float:
            self.lines += [f"{pad}if p + 8 > size:", f"{pad}    raise EOFError('double')"]
            self.lines += [f"{pad}{target} = _double(data, p)[0]", f"{pad}p += 8"]
        elif _is_enum(hint):
            symbols = self._bind(tuple(hint))
            self._emit_long(target, depth)
            self.lines += [
                f"{pad}if not 0 <= {target} < {len(hint)}:",
                f"{pad}    raise _invalid('enum index')",
            ]
            self.lines.append(f"{pad}{target} = {symbols}[{target}]")
        elif _is_record(hint):
            self.lines.append(f"{pad}{target}, p = {self._bind(compiled_reader(hint))}(data, p)")
        else:
            raise UnsupportedType(f"no Avro mapping for {hint!r}")
        return target

    def _emit_long(self, target: str, depth: int) -> None:
        pad = "    " * depth
        self.lines += [
            f"{pad}{target} = data[p]",
            f"{pad}if {target} < 128:",  # one byte: the common case, read inline
            f"{pad}    {target} = ({target} >> 1) ^ -({target} & 1)",
            f"{pad}    p += 1",
            f"{pad}else:",
            f"{pad}    {target}, p = _long(data, p)",
        ]

    def _emit_bytes(self, target: str, depth: int) -> None:
        """A length, then that many bytes. A one-byte even varint is a length of 0..63 (zig-zag): read
        inline; longer or negative lengths go through ``_span``."""
        pad, end = "    " * depth, self._local()
        self.lines += [
            f"{pad}{end} = data[p]",
            f"{pad}if {end} & 0x81:",
            f"{pad}    p, {end} = _span(data, p)",
            f"{pad}else:",
            f"{pad}    p += 1",
            f"{pad}    {end} = p + ({end} >> 1)",
            f"{pad}if {end} > size:",
            f"{pad}    raise EOFError('string or bytes')",
            f"{pad}{target} = data[p:{end}]",
            f"{pad}p = {end}",
        ]

    def _emit_array(self, item: Any, target: str, depth: int) -> None:
        """Avro arrays come in blocks: a count (negative: followed by the block's size), then items."""
        pad, count, skipped = "    " * depth, self._local(), self._local()
        self.lines.append(f"{pad}{target} = []")
        self._emit_long(count, depth)
        self.lines += [
            f"{pad}while {count}:",
            f"{pad}    if {count} < 0:",
            f"{pad}        {count} = -{count}",
        ]
        self._emit_long(skipped, depth + 2)
        self.lines.append(f"{pad}    for _ in range({count}):")
        self.lines.append(f"{pad}        {target}.append({self._emit(item, depth + 2)})")
        self._emit_long(count, depth + 1)
        self.lines.append(f"{pad}{target} = tuple({target})")


def _slot_setter(cls: type, name: str) -> Callable[[Any, Any], None]:
    """How to set field ``name`` of a frozen instance: its slot's own setter (the fastest), or
    ``object.__setattr__`` for a class without slots."""
    slot = getattr(cls, name, None)
    if inspect.ismemberdescriptor(slot):
        return slot.__set__
    return lambda obj, value: object.__setattr__(obj, name, value)


def frozen_constructor(cls: type) -> Callable[..., Any]:
    """A positional constructor of the frozen slotted dataclass ``cls`` that sets its slots directly,
    skipping the generated ``__init__``'s ``object.__setattr__`` per field (about half its cost): for
    value objects made once per consumed record. No defaults, no ``__post_init__``: ``cls`` must have
    neither (checked here)."""
    names = field_names(cls)
    if any(f.default is not MISSING or f.default_factory is not MISSING for f in dataclasses.fields(cls)):
        raise TypeError(f"{cls.__qualname__} has defaults: use its own constructor")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__qualname__} has a __post_init__: use its own constructor")
    env: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    lines = [f"def make({', '.join(names)}):", "    obj = _new(_cls)"]
    for index, name in enumerate(names):
        env[f"_set{index}"] = _slot_setter(cls, name)
        lines.append(f"    _set{index}(obj, {name})")
    lines.append("    return obj")
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(lines) + "\n", f"<constructor of {cls.__qualname__}>", "exec"), env, namespace)
    make: Callable[..., Any] = namespace["make"]
    return make


# --- compiled writers -------------------------------------------------------------------------
# The same idea for encoding, which is most of a publish's own cost: one generated function per
# class writes its fields' Avro binary straight from the attributes (no intermediate dict, no walk
# over the schema). It writes the bytes fastavro's writer writes for the same schema.

CompiledWriter = Callable[[Any, Callable[[bytes], None]], None]
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_ONE_BYTE = tuple(bytes([n]) for n in range(128))  # the varints of 0..63 and -64..-1 after zig-zag
_MILLISECOND = timedelta(milliseconds=1)
_WRITERS: dict[type, CompiledWriter] = {}


def compiled_writer(cls: type) -> CompiledWriter:
    """``write(obj, append)``: hands the Avro binary of ``obj`` (a ``cls``) to ``append`` in pieces.
    A value that does not fit raises TypeError, AttributeError, KeyError or OverflowError."""
    if (cached := _WRITERS.get(cls)) is not None:
        return cached
    source = _WriterSource(cls)
    namespace: dict[str, Any] = {}
    exec(compile(source.text(), f"<avro writer of {cls.__qualname__}>", "exec"), source.env, namespace)
    writer: CompiledWriter = namespace["write"]
    _WRITERS[cls] = writer
    return writer


def _long_bytes(n: int) -> bytes:
    """The zig-zag varint of a long."""
    if not _LONG_MIN <= n <= _LONG_MAX:
        raise OverflowError(f"{n} does not fit an Avro long")
    n = (n << 1) ^ (n >> 63)
    if n < 128:
        return _ONE_BYTE[n]
    out = bytearray()
    while n >= 128:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class _WriterSource(_Source):
    """The source of one class's writer: a line or two per field, nested records as calls."""

    def __init__(self, cls: type) -> None:
        self._names = 0
        self.env: dict[str, Any] = {
            "_long": _long_bytes,
            "_one_byte": _ONE_BYTE,
            "_EPOCH": _EPOCH,
            "_MILLISECOND": _MILLISECOND,
            "_double": struct.Struct("<d").pack,
        }
        self.lines = ["def write(obj, append):"]
        hints = _hints(cls)
        for name in field_names(cls):
            self._emit(hints[name], f"obj.{name}", 1)

    def _emit(self, hint: Any, source: str, depth: int) -> None:
        """Append the lines writing the value of expression ``source`` as a ``hint``."""
        pad, value = "    " * depth, self._local()
        self.lines.append(f"{pad}{value} = {source}")
        if (inner := _optional_inner(hint)) is not None:
            self.lines += [f"{pad}if {value} is None:", f"{pad}    append(b'\\x00')", f"{pad}else:"]
            self.lines.append(f"{pad}    append(b'\\x02')")
            self._emit(inner, value, depth + 1)
        elif (item := _tuple_item(hint)) is not None:
            self.lines += [f"{pad}if {value}:", f"{pad}    append(_long(len({value})))"]
            self.lines.append(f"{pad}    for {value}_item in {value}:")
            self._emit(item, f"{value}_item", depth + 2)
            self.lines.append(f"{pad}append(b'\\x00')")
        elif hint is str or hint is uuid.UUID or hint is bytes:
            if hint is not bytes:
                self.lines.append(
                    f"{pad}{value} = {'str(' + value + ')' if hint is uuid.UUID else value}.encode()"
                )
            self.lines.append(
                f"{pad}append(_one_byte[len({value}) << 1] if len({value}) < 64 else _long(len({value})))"
            )
            self.lines.append(f"{pad}append({value})")
        elif hint is int:
            self.lines.append(f"{pad}append(_long({value}))")
        elif hint is datetime:
            self.lines.append(f"{pad}append(_long(({value} - _EPOCH) // _MILLISECOND))")
        elif hint is bool:
            self.lines.append(f"{pad}append(b'\\x01' if {value} else b'\\x00')")
        elif hint is float:
            self.lines.append(f"{pad}append(_double({value}))")
        elif _is_enum(hint):
            indexes = {member.value: _long_bytes(i) for i, member in enumerate(hint)}
            self.lines.append(f"{pad}append({self._bind(indexes)}[{value}])")
        elif _is_record(hint):
            self.lines.append(f"{pad}{self._bind(compiled_writer(hint))}({value}, append)")
        else:
            raise UnsupportedType(f"no Avro mapping for {hint!r}")
