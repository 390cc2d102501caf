"""The schema contract on disk: ``schemas/manifest.json`` and the ``.avsc`` files it lists.

Subjects follow Confluent's RecordNameStrategy: the subject of a schema is its record's full
name, ``io.esports.events.<family>.<EventType>``; several event types share a topic, so a
topic-based subject could not hold them. Each (subject, version) has a permanent integer id
fixed in the manifest; ids are never reused (``next_id`` only grows). The newest version of a
type lives in ``<family>/<EventType>.avsc``, earlier ones in ``<family>/history/<EventType>.vN.avsc``.

A type that is gone keeps its manifest entries, marked ``"retired": true`` and without a
``path``: its ids stay taken (checked like any other), but nothing is loaded for it, so a record
still carrying such an id decodes as an unknown schema id. A subject retires whole, every
version at once, and never comes back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ManifestError", "SchemaEntry", "load_entries", "load_ids"]


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
    """Read the manifest and every live schema it lists, checking ids (retired ones included),
    versions and record names."""
    manifest = _read_manifest(schemas_dir)
    return [_load_entry(schemas_dir, raw) for raw in manifest["schemas"] if not raw.get("retired")]


def load_ids(schemas_dir: Path) -> dict[tuple[str, int], int]:
    """Every (subject, version) the manifest ever gave an id, retired ones included."""
    manifest = _read_manifest(schemas_dir)
    return {(raw["subject"], int(raw["version"])): int(raw["id"]) for raw in manifest["schemas"]}


def _read_manifest(schemas_dir: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((schemas_dir / "manifest.json").read_text(encoding="utf-8"))
    raws = manifest["schemas"]
    _check_ids(raws, int(manifest["next_id"]))
    _check_versions(raws)
    _check_retired(raws)
    return manifest


def _load_entry(schemas_dir: Path, raw: dict[str, Any]) -> SchemaEntry:
    schema = json.loads((schemas_dir / raw["path"]).read_text(encoding="utf-8"))
    entry = SchemaEntry(int(raw["id"]), raw["subject"], int(raw["version"]), raw["path"], schema)
    fullname = f"{schema.get('namespace', '')}.{schema.get('name', '')}"
    if fullname != entry.subject:
        raise ManifestError(f"{entry.path}: record {fullname} does not match subject {entry.subject}")
    return entry


def _check_ids(raws: list[dict[str, Any]], next_id: int) -> None:
    seen: dict[int, str] = {}
    for raw in raws:
        schema_id, where = int(raw["id"]), f"{raw['subject']} v{raw['version']}"
        if schema_id in seen:
            raise ManifestError(f"schema id {schema_id} used twice ({seen[schema_id]}, {where})")
        if not 0 < schema_id < next_id:
            raise ManifestError(f"schema id {schema_id} outside 1..next_id-1 ({next_id})")
        seen[schema_id] = where


def _check_versions(raws: list[dict[str, Any]]) -> None:
    by_subject: dict[str, list[int]] = {}
    for raw in raws:
        by_subject.setdefault(raw["subject"], []).append(int(raw["version"]))
    for subject, versions in by_subject.items():
        if sorted(versions) != list(range(1, len(versions) + 1)):
            raise ManifestError(f"{subject}: versions {sorted(versions)} are not 1..n without gaps")


def _check_retired(raws: list[dict[str, Any]]) -> None:
    retired = {raw["subject"] for raw in raws if raw.get("retired")}
    for raw in raws:
        if raw["subject"] in retired and not raw.get("retired"):
            raise ManifestError(
                f"{raw['subject']} v{raw['version']}: a retired subject retires every version"
            )
        if raw.get("retired") and "path" in raw:
            raise ManifestError(f"{raw['subject']} v{raw['version']}: a retired entry has no schema file")
