"""Schema evolution: every earlier version still decodes, versions are backward compatible,
the manifest's ids are permanent, and the dataclasses match their newest schemas."""

from __future__ import annotations

import importlib.util
import io
import itertools
import json
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from events.avro_mapping import to_avro_converter
from events.codec import DecodeError, EventCodec, schema_difference
from events.schema_store import ManifestError, SchemaEntry, load_entries, load_ids
from events.topics import all_event_types
from schemas import MANIFEST_PATH, SCHEMAS_DIR

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "avro"
ENTRIES = load_entries(SCHEMAS_DIR)
NEWEST = {e.subject: e for e in sorted(ENTRIES, key=lambda e: e.version)}


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("avro_fixture_generator", FIXTURES / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATOR = _load_generator()


@pytest.fixture(scope="module")
def codec() -> EventCodec:
    return EventCodec.load(SCHEMAS_DIR)


def _id(entry: SchemaEntry) -> str:
    return f"{entry.event_type}.v{entry.version}"


@pytest.mark.parametrize("entry", ENTRIES, ids=_id)
def test_fixture_exists_and_matches_generator(entry: SchemaEntry) -> None:
    path = GENERATOR.fixture_path(entry.event_type, entry.version)
    assert path.exists(), f"run `python tests/fixtures/avro/generate.py` to freeze {path.name}"
    assert path.read_bytes() == GENERATOR.fixture_bytes(entry.schema, entry.schema_id), (
        f"{path.name} no longer matches its schema or the generator: a committed version was edited"
    )


@pytest.mark.parametrize("entry", ENTRIES, ids=_id)
def test_fixture_of_every_version_decodes_with_newest(codec: EventCodec, entry: SchemaEntry) -> None:
    value = GENERATOR.fixture_path(entry.event_type, entry.version).read_bytes()
    event = codec.decode(value)
    assert event.event_type() == entry.event_type
    as_avro = to_avro_converter(type(event))(event)
    written = GENERATOR.sample_record(entry.schema)
    newest = NEWEST[entry.subject].schema
    renamed = _renamed(newest)
    types = {f["name"]: f["type"] for f in newest["fields"]}
    for name, value_written in written.items():
        now = renamed.get(name, name)
        assert as_avro[now] == _with_defaults(value_written, types.get(now)), name
    for field in newest["fields"]:
        if not {field["name"], *field.get("aliases", ())} & set(written):  # added later: the default
            assert as_avro[field["name"]] == field["default"], field["name"]


def _with_defaults(value: Any, avro_type: Any) -> Any:
    """``value`` written by an older schema, with the fields a nested record gained since (in the newest
    ``avro_type``) at their defaults: what the newest reader makes of it."""
    if isinstance(avro_type, list):  # a union: the record branch, for a record value
        records = [t for t in avro_type if isinstance(t, dict) and t.get("type") == "record"]
        return _with_defaults(value, records[0]) if isinstance(value, dict) and len(records) == 1 else value
    if isinstance(avro_type, dict) and avro_type.get("type") == "array" and isinstance(value, list):
        return [_with_defaults(item, avro_type["items"]) for item in value]
    if isinstance(avro_type, dict) and avro_type.get("type") == "record" and isinstance(value, dict):
        return {
            f["name"]: _with_defaults(value[f["name"]], f["type"]) if f["name"] in value else f["default"]
            for f in avro_type["fields"]
        }
    return value


def _renamed(schema: dict[str, Any]) -> dict[str, str]:
    """Earlier names of ``schema``'s fields (their Avro ``aliases``) -> today's names."""
    return {alias: f["name"] for f in schema["fields"] for alias in f.get("aliases", ())}


@pytest.mark.parametrize(
    ("event_type", "version", "old_name"),
    [
        ("StreamWentLive", 2, "cause_event_id"),
        ("StreamEnded", 2, "cause_event_id"),
        ("StreamTransitionRejected", 1, "cause_event_id"),
        ("ChatActionRouted", 1, "cause_event_id"),
        ("ChatMessageHeld", 1, "cause_event_id"),
        ("ChatMessageRestored", 1, "cause_event_id"),
        ("UserUnbanned", 2, "cause_event_id"),
        ("ChatSettingsChanged", 2, "cause_event_id"),
        ("ChatCleared", 2, "cause_event_id"),
        ("NotificationIssued", 1, "cause_id"),
    ],
)
def test_a_cause_written_under_its_old_name_is_read_as_causation_id(
    codec: EventCodec, event_type: str, version: int, old_name: str
) -> None:
    """fastavro resolves a field by its reader-side ``aliases``, so the per-type cause fields that the
    head's ``causation_id`` replaced still come out of every record written before."""
    event = codec.decode(GENERATOR.fixture_path(event_type, version).read_bytes())
    assert event.causation_id == f"{old_name}-fixture"


def _consecutive_pairs() -> list[tuple[SchemaEntry, SchemaEntry]]:
    by_subject: dict[str, list[SchemaEntry]] = {}
    for entry in ENTRIES:
        by_subject.setdefault(entry.subject, []).append(entry)
    pairs: list[tuple[SchemaEntry, SchemaEntry]] = []
    for versions in by_subject.values():
        versions.sort(key=lambda e: e.version)
        pairs.extend(itertools.pairwise(versions))
    return pairs


PAIRS = _consecutive_pairs()


def test_some_types_have_evolved() -> None:
    assert {new.event_type for _, new in PAIRS} >= {
        "ChatMessageSubmitted",
        "StreamUpdated",
        "StreamWentLive",
        "StreamEnded",
        "ModerationActionRequested",
        "ChatMessageRejected",
        "UserUnbanned",
        "ChatSettingsChanged",
        "ChatCleared",
    }


@pytest.mark.parametrize(
    ("event_type", "field", "newer", "fallback"),
    [
        ("ChatMessageRejected", "reason", "unique_chat", "other"),
        ("ModerationActionRequested", "action", "undelete", "unknown"),
    ],
)
def test_a_reader_on_an_older_version_lands_appended_symbols_on_the_default(
    event_type: str, field: str, newer: str, fallback: str
) -> None:
    """Forward compatibility: a service not yet upgraded still reads what an upgraded one writes."""
    versions = sorted((e for e in ENTRIES if e.event_type == event_type), key=lambda e: e.version)
    old, new = versions[0], versions[-1]  # v1 had not the symbol yet
    record = {**GENERATOR.sample_record(new.schema), field: newer}
    buf = io.BytesIO()
    schemaless_writer(buf, parse_schema(new.schema), record)
    buf.seek(0)
    read = cast(dict[str, Any], schemaless_reader(buf, parse_schema(new.schema), parse_schema(old.schema)))
    assert read[field] == fallback


@pytest.mark.parametrize(("old", "new"), PAIRS, ids=lambda e: _id(e))
def test_consecutive_versions_are_backward_compatible(old: SchemaEntry, new: SchemaEntry) -> None:
    """The new reader can read old data: added fields have defaults, kept fields keep their types
    (an enum may gain symbols, keeping its default, which is where older readers land), and a field
    renamed keeps its old name among its ``aliases``."""
    old_fields = {f["name"]: f for f in old.schema["fields"]}
    for field in new.schema["fields"]:
        earlier = [name for name in (field["name"], *field.get("aliases", ())) if name in old_fields]
        if earlier:
            old_type = old_fields[earlier[0]]["type"]
            assert _type_key(_symbols_of(old_type, field["type"])) == _type_key(old_type), field["name"]
        if field["name"] not in old_fields:
            assert "default" in field, (
                f"{new.subject} v{new.version}: new field {field['name']} needs a default"
            )
    kept = set(_renamed(new.schema)) | {f["name"] for f in new.schema["fields"]}
    removed = set(old_fields) - kept
    assert not removed, f"removing fields {removed} breaks readers still on v{old.version}"


def _type_key(avro_type: Any) -> str:
    return json.dumps(_without_docs(avro_type), sort_keys=True)


def _without_docs(avro_type: Any) -> Any:
    """Docs are for people: a nested record's doc may change between versions."""
    if isinstance(avro_type, dict):
        return {k: _without_docs(v) for k, v in avro_type.items() if k != "doc"}
    if isinstance(avro_type, list):
        return [_without_docs(t) for t in avro_type]
    return avro_type


def _symbols_of(old: Any, new: Any) -> Any:
    """``new`` with each enum's symbols cut back to ``old``'s, after checking that the enum only
    gained symbols at the end (what Avro resolves, given the unchanged default)."""
    if isinstance(new, dict) and isinstance(old, dict):
        if new.get("type") == "enum" and old.get("type") == "enum":
            kept = new["symbols"][: len(old["symbols"])]
            assert kept == old["symbols"], f"enum {new['name']}: symbols may only be appended"
            return {**new, "symbols": kept}
        if new.get("type") == "record" and old.get("type") == "record":
            # A nested record may gain fields with defaults: seen from the old version, they are not there.
            old_fields = {f["name"]: f for f in old["fields"]}
            added = [f["name"] for f in new["fields"] if f["name"] not in old_fields]
            assert all("default" in f for f in new["fields"] if f["name"] in added), (
                f"record {new['name']}: new fields {added} need defaults"
            )
            kept = [_symbols_of(old_fields[f["name"]], f) for f in new["fields"] if f["name"] in old_fields]
            return {**new, "fields": kept}
        return {k: _symbols_of(old.get(k), v) for k, v in new.items()}
    if isinstance(new, list) and isinstance(old, list) and len(new) == len(old):
        return [_symbols_of(o, n) for o, n in zip(old, new, strict=True)]
    return new


def test_enum_symbol_check_refuses_reordering() -> None:
    old = {"type": "enum", "name": "E", "symbols": ["a", "b"], "default": "a"}
    appended = {**old, "symbols": ["a", "b", "c"]}
    assert _symbols_of(["null", old], ["null", appended]) == ["null", old]
    assert _symbols_of(old, appended) == old
    with pytest.raises(AssertionError, match="appended"):
        _symbols_of(old, {**old, "symbols": ["b", "a", "c"]})


def test_manifest_ids_unique_and_below_next_id() -> None:
    manifest = json.loads(MANIFEST_PATH.read_text())
    ids = [raw["id"] for raw in manifest["schemas"]]
    assert len(ids) == len(set(ids))
    assert all(0 < i < manifest["next_id"] for i in ids)
    keys = [(raw["subject"], raw["version"]) for raw in manifest["schemas"]]
    assert len(keys) == len(set(keys))


def test_manifest_ids_never_change() -> None:
    """Ids once published are permanent: this frozen copy may only grow, never change."""
    frozen = json.loads((FIXTURES / "schema_ids.json").read_text())
    current = {f"{subject}/v{version}": i for (subject, version), i in load_ids(SCHEMAS_DIR).items()}
    for key, schema_id in frozen.items():
        assert current.get(key) == schema_id, f"{key} had id {schema_id}"
    assert len(set(current.values())) == len(current)


def test_frozen_ids_list_every_manifest_id() -> None:
    """New ids are frozen as they are added, so ``never_change`` guards them from then on."""
    frozen = json.loads((FIXTURES / "schema_ids.json").read_text())
    current = {f"{subject}/v{version}": i for (subject, version), i in load_ids(SCHEMAS_DIR).items()}
    assert frozen == current


def _retired() -> list[dict[str, Any]]:
    return [raw for raw in json.loads(MANIFEST_PATH.read_text())["schemas"] if raw.get("retired")]


def test_retired_types_keep_their_ids_but_nothing_else() -> None:
    retired = _retired()
    assert {raw["subject"] for raw in retired} >= {"io.esports.events.streams.StreamKeyRotated"}
    live_ids = {e.schema_id for e in ENTRIES}
    for raw in retired:
        event_type = raw["subject"].rsplit(".", 1)[-1]
        assert raw["id"] not in live_ids
        assert load_ids(SCHEMAS_DIR)[(raw["subject"], raw["version"])] == raw["id"]
        assert "path" not in raw and not list(SCHEMAS_DIR.rglob(f"{event_type}.*avsc"))
        assert not GENERATOR.fixture_path(event_type, raw["version"]).exists()
        assert event_type not in {cls.__name__ for cls in all_event_types()}


def test_a_retired_id_does_not_decode(codec: EventCodec) -> None:
    for raw in _retired():
        with pytest.raises(DecodeError) as caught:
            codec.decode(b"\x00" + raw["id"].to_bytes(4, "big") + b"\x02a")
        assert caught.value.reason == "unknown_schema_id"


def _write_manifest(tmp_path: Path, schemas: list[dict[str, Any]], next_id: int) -> Path:
    (tmp_path / "manifest.json").write_text(json.dumps({"next_id": next_id, "schemas": schemas}))
    return tmp_path


def test_a_retired_id_is_still_never_reused(tmp_path: Path) -> None:
    retired = {"id": 1, "subject": "io.esports.events.x.Gone", "version": 1, "retired": True}
    reuse = {"id": 1, "subject": "io.esports.events.x.New", "version": 1, "path": "x/New.avsc"}
    with pytest.raises(ManifestError, match="used twice"):
        load_entries(_write_manifest(tmp_path, [retired, reuse], 2))
    with pytest.raises(ManifestError, match="outside"):
        load_entries(_write_manifest(tmp_path, [retired], 1))
    assert load_entries(_write_manifest(tmp_path, [retired], 2)) == []


def test_a_retired_subject_retires_every_version(tmp_path: Path) -> None:
    gone = {"id": 1, "subject": "io.esports.events.x.Gone", "version": 1, "retired": True}
    back = {"id": 2, "subject": "io.esports.events.x.Gone", "version": 2, "path": "x/Gone.avsc"}
    with pytest.raises(ManifestError, match="retires every version"):
        load_entries(_write_manifest(tmp_path, [gone, back], 3))


def test_no_orphan_fixtures() -> None:
    assert GENERATOR.orphan_fixtures(ENTRIES) == []


@pytest.mark.parametrize("entry", ENTRIES, ids=_id)
def test_every_schema_parses_and_has_head_first(entry: SchemaEntry) -> None:
    parse_schema(entry.schema)
    newest = NEWEST[entry.subject]
    head = [f["name"] for f in entry.schema["fields"][:5]]
    if entry is newest:
        assert head == ["event_id", "occurred_at", "producer", "trace_id", "causation_id"]
    else:  # versions before causation_id had a head of four
        assert head[:4] == ["event_id", "occurred_at", "producer", "trace_id"]
    assert entry.schema["namespace"].startswith("io.esports.events.")
    expected_path = f"{entry.schema['namespace'].rsplit('.', 1)[-1]}/{entry.event_type}"
    if entry is newest:
        assert entry.path == f"{expected_path}.avsc"
    else:
        assert entry.path == f"{expected_path.replace('/', '/history/')}.v{entry.version}.avsc"


@pytest.mark.parametrize("cls", all_event_types(), ids=lambda c: c.__name__)
def test_every_dataclass_has_exactly_one_newest_schema_that_matches(cls: type) -> None:
    files = list(SCHEMAS_DIR.glob(f"*/{cls.__name__}.avsc"))
    assert len(files) == 1, files
    newest = [e for e in NEWEST.values() if e.event_type == cls.__name__]
    assert len(newest) == 1
    assert schema_difference(cls, newest[0].schema) == ""


def test_every_schema_file_is_in_the_manifest() -> None:
    listed = {e.path for e in ENTRIES}
    on_disk = {str(p.relative_to(SCHEMAS_DIR)) for p in SCHEMAS_DIR.rglob("*.avsc")}
    assert on_disk == listed


def test_enums_declare_defaults() -> None:
    """Adding a symbol later is only compatible if readers have a symbol to fall back to."""

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "enum":
                assert node.get("default") in node["symbols"], node["name"]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for entry in ENTRIES:
        walk(entry.schema)
