"""The schema contract on disk: ``schemas/manifest.json`` and the ``.avsc`` files it lists.

Subjects follow Confluent's RecordNameStrategy: the subject of a schema is its record's full
name, ``io.esports.events.<family>.<EventType>``; several event types share a topic, so a
topic-based subject could not hold them. Each (subject, version) has a permanent integer id
fixed in the manifest; ids are never reused (``next_id`` only grows). The newest version of a
type lives in ``<family>/<EventType>.avsc``, earlier ones in ``<family>/history/<EventType>.vN.avsc``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ManifestError", "SchemaEntry", "load_entries"]


class ManifestError(ValueError):
    """The manifest or a schema file contradicts the rules above."""


@dataclass(frozen=True, slots=True)
class SchemaEntry:
    """One (subject, version) of the manifest with its schema JSON."""

    schema_id: int
    subject: str
    version: int
    path: str
    schema: dict[str, Any]

    @property
    def event_type(self) -> str:
        return self.subject.rsplit(".", 1)[-1]


def load_entries(schemas_dir: Path) -> list[SchemaEntry]:
    """Read the manifest and every schema it lists, checking ids, versions and record names."""
    manifest = json.loads((schemas_dir / "manifest.json").read_text(encoding="utf-8"))
    entries = [_load_entry(schemas_dir, raw) for raw in manifest["schemas"]]
    _check_ids(entries, int(manifest["next_id"]))
    _check_versions(entries)
    return entries


def _load_entry(schemas_dir: Path, raw: dict[str, Any]) -> SchemaEntry:
    schema = json.loads((schemas_dir / raw["path"]).read_text(encoding="utf-8"))
    entry = SchemaEntry(int(raw["id"]), raw["subject"], int(raw["version"]), raw["path"], schema)
    fullname = f"{schema.get('namespace', '')}.{schema.get('name', '')}"
    if fullname != entry.subject:
        raise ManifestError(f"{entry.path}: record {fullname} does not match subject {entry.subject}")
    return entry


def _check_ids(entries: list[SchemaEntry], next_id: int) -> None:
    seen: dict[int, SchemaEntry] = {}
    for entry in entries:
        if entry.schema_id in seen:
            raise ManifestError(f"schema id {entry.schema_id} used twice ({seen[entry.schema_id].path})")
        if not 0 < entry.schema_id < next_id:
            raise ManifestError(f"schema id {entry.schema_id} outside 1..next_id-1 ({next_id})")
        seen[entry.schema_id] = entry


def _check_versions(entries: list[SchemaEntry]) -> None:
    by_subject: dict[str, list[int]] = {}
    for entry in entries:
        by_subject.setdefault(entry.subject, []).append(entry.version)
    for subject, versions in by_subject.items():
        if sorted(versions) != list(range(1, len(versions) + 1)):
            raise ManifestError(f"{subject}: versions {sorted(versions)} are not 1..n without gaps")
