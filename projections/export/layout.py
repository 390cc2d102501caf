"""The dataset's layout: where a file goes, what its name says, and where an export resumes.

Pure: names and offsets only, no I/O. A data file is::

    <root>/topic=<topic>/date=<YYYY-MM-DD>/part-<partition>-<first offset>-<last offset>.parquet

holding records of one partition of one topic, with record timestamps (UTC) on that date, whose
offsets run from ``first`` to ``last`` (both inclusive; offsets in between that were undecodable,
filtered out, transaction markers or compacted away are simply not there). The files of one
partition never overlap: the exporter keeps one file open per partition and commits it before it
opens the next one, so what the dataset holds of a partition is always everything up to the
newest file's ``last`` (and nothing after it): an export resumes at ``last + 1``.

A file is written under a temporary name starting with ``.`` (:func:`staging_name`), which Hive
readers (pyarrow, DuckDB's ``*.parquet`` globs, Spark) skip, and renamed when complete; on object
storage it is uploaded under its final key only once complete. Beside the data, per topic,
``_schema/<EventType>.avsc`` (the newest Avro schema of each of its event types) and
``_schema/schema.json`` (subjects, schema ids and the Arrow schema of the files); at the root,
``_export.json`` says which filters and time window made the dataset.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

__all__ = [
    "STAGING_PREFIX",
    "DataFile",
    "date_of",
    "is_staging",
    "newest_per_partition",
    "overlaps",
    "parse",
    "resume_offsets",
    "schema_dir",
    "staging_name",
]

STAGING_PREFIX = ".part-"
STAGING_SUFFIX = ".parquet.tmp"
_DATA = re.compile(
    r"(?:^|/)topic=(?P<topic>[A-Za-z0-9._-]+)/date=(?P<date>\d{4}-\d{2}-\d{2})/"
    r"part-(?P<partition>\d+)-(?P<first>\d+)-(?P<last>\d+)\.parquet$"
)


@dataclass(frozen=True, slots=True, order=True)
class DataFile:
    """One committed data file: a topic's partition, a date, and the offsets it covers."""

    topic: str
    partition: int
    first: int
    last: int
    day: date

    @property
    def path(self) -> str:
        """The file's path below the dataset root (``/`` separated, on every store)."""
        return f"{self.folder}/part-{self.partition}-{self.first}-{self.last}.parquet"

    @property
    def folder(self) -> str:
        return f"topic={self.topic}/date={self.day.isoformat()}"


def parse(path: str) -> DataFile | None:
    """The data file a path (relative to the root, or ending in one) names; None for anything else."""
    found = _DATA.search(path)
    if found is None:
        return None
    first, last = int(found["first"]), int(found["last"])
    if first > last:
        return None
    return DataFile(found["topic"], int(found["partition"]), first, last, date.fromisoformat(found["date"]))


def date_of(timestamp_ms: int) -> date:
    """The UTC date of a record timestamp: the file's ``date=`` folder."""
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).date()


def staging_name(partition: int, first: int) -> str:
    """The temporary name of a file being written (hidden from readers until renamed)."""
    return f"{STAGING_PREFIX}{partition}-{first}{STAGING_SUFFIX}"


def is_staging(path: str) -> bool:
    """Whether ``path`` is a file left half-written (its writer was killed): deleted at start."""
    name = path.rsplit("/", 1)[-1]
    return name.startswith(STAGING_PREFIX) and name.endswith(STAGING_SUFFIX)


def schema_dir(topic: str) -> str:
    """The folder of a topic's schema files, below the root."""
    return f"topic={topic}/_schema"


def newest_per_partition(files: Iterable[DataFile]) -> dict[tuple[str, int], DataFile]:
    """Per (topic, partition), its file with the highest offsets."""
    newest: dict[tuple[str, int], DataFile] = {}
    for f in files:
        key = (f.topic, f.partition)
        if key not in newest or f.last > newest[key].last:
            newest[key] = f
    return newest


def resume_offsets(files: Iterable[DataFile]) -> dict[tuple[str, int], int]:
    """Per (topic, partition) in the dataset, the next offset to export: the newest file's ``last + 1``."""
    return {key: f.last + 1 for key, f in newest_per_partition(files).items()}


def overlaps(files: Iterable[DataFile]) -> list[tuple[DataFile, DataFile]]:
    """Pairs of files of one partition whose offset ranges overlap: never written by the exporter,
    so a sign that two exporters wrote one dataset (reported at start)."""
    by_partition: dict[tuple[str, int], list[DataFile]] = {}
    for f in files:
        by_partition.setdefault((f.topic, f.partition), []).append(f)
    found = []
    for group in by_partition.values():
        group.sort(key=lambda f: (f.first, f.last))
        found += [(a, b) for a, b in itertools.pairwise(group) if b.first <= a.last]
    return found
