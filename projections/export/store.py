"""The dataset's root: a local folder or S3-compatible object storage, through pyarrow's filesystems.

A file is always written locally first (:meth:`DatasetStore.staging_path`), then made visible whole:

- folder: the staging file sits beside its final name (hidden: ``.part-...``), is flushed to disk and
  renamed over (atomic on POSIX), then the folder is flushed so the rename survives a power cut;
- S3: the staging file sits in a local scratch folder (one per dataset URL, emptied at start) and
  is uploaded under its final key, which S3 shows only once the upload is complete (a killed upload
  leaves no object). An upload that fails with an error deletes the key, in case the client
  completed a partial object on its way out.

Errors are pyarrow's ``OSError``s (and ``OSError`` from the local disk); the command reports them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from infra.settings import ExportSettings
from projections.export.layout import DataFile, is_staging, parse, staging_name

__all__ = ["DatasetStore", "Listing"]

log = logging.getLogger(__name__)

S3_SCHEME = "s3://"


@dataclass(slots=True)
class Listing:
    """What the root holds: committed data files, and staging files a killed writer left."""

    files: list[DataFile]
    leftovers: list[str]


class DatasetStore:
    """The dataset below ``root`` on ``fs``; ``local`` stores stage beside the data, others in ``scratch``."""

    def __init__(self, fs: pafs.FileSystem, root: str, *, url: str, scratch: Path | None = None) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.url = url
        self.local = scratch is None
        self._scratch = scratch

    @classmethod
    def open(cls, url: str, settings: ExportSettings) -> DatasetStore:
        """The store of ``url``: a folder path, or ``s3://bucket/prefix`` with the S3 settings."""
        if not url.startswith(S3_SCHEME):
            root = Path(url).expanduser().resolve()
            root.mkdir(parents=True, exist_ok=True)
            return cls(pafs.LocalFileSystem(), root.as_posix(), url=str(root))
        bucket_and_prefix = url[len(S3_SCHEME) :].strip("/")
        if not bucket_and_prefix:
            raise ValueError(f"{url!r}: name a bucket (s3://bucket/prefix)")
        # One scratch folder per dataset, emptied at start: a killed exporter's staging files go too.
        scratch = (
            Path(tempfile.gettempdir()) / f"esports-export-{hashlib.sha256(url.encode()).hexdigest()[:16]}"
        )
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        return cls(s3_filesystem(settings), bucket_and_prefix, url=url, scratch=scratch)

    def _full(self, relative: str) -> str:
        return f"{self.root}/{relative}"

    def listing(self) -> Listing:
        """Every data file and staging leftover below the root."""
        selector = pafs.FileSelector(self.root, recursive=True, allow_not_found=True)
        files, leftovers = [], []
        for info in self.fs.get_file_info(selector):
            if info.type != pafs.FileType.File:
                continue
            relative = info.path[len(self.root) + 1 :]
            if is_staging(relative):
                leftovers.append(relative)
            elif (found := parse(relative)) is not None:
                files.append(found)
        return Listing(sorted(files), leftovers)

    def delete(self, relative: str) -> None:
        self.fs.delete_file(self._full(relative))

    def is_whole(self, f: DataFile) -> bool:
        """Whether ``f`` is a readable Parquet file (its footer parses): a check of the newest file of
        each partition at start, the only one a crash could have left torn."""
        try:
            with self.fs.open_input_file(self._full(f.path)) as source:
                pq.read_metadata(source)
        except (OSError, ValueError) as e:
            log.warning("export: %s is not a whole Parquet file (%s): it will be written again", f.path, e)
            return False
        return True

    def staging_path(self, folder: str, partition: int, first: int) -> Path:
        """Where to write the file of ``partition`` starting at ``first`` until it is committed."""
        base = Path(self.root) if self._scratch is None else self._scratch
        path = base / folder / staging_name(partition, first)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def commit(self, staged: Path, final: DataFile) -> None:
        """Make the staged file visible under its final name, whole or not at all."""
        if self._scratch is None:
            _flush_file(staged)
            os.replace(staged, Path(self.root) / final.path)
            _flush_folder(staged.parent)
            return
        target = self._full(final.path)
        try:
            pafs.copy_files(
                str(staged), target, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=self.fs
            )
        except BaseException:
            self._forget(target)
            raise
        staged.unlink()

    def _forget(self, target: str) -> None:
        try:
            self.fs.delete_file(target)
        except OSError:
            pass  # nothing was completed: the usual case

    def write_text(self, relative: str, text: str) -> None:
        """A small file (schema, manifest), replaced whole."""
        data = text.encode()
        if self._scratch is None:
            path = Path(self.root) / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.tmp")
            partial.write_bytes(data)
            os.replace(partial, path)
            return
        with self.fs.open_output_stream(self._full(relative)) as out:
            out.write(data)

    def read_json(self, relative: str) -> Any | None:
        """A small JSON file's content, None if there is none."""
        if self.fs.get_file_info(self._full(relative)).type != pafs.FileType.File:
            return None
        with self.fs.open_input_stream(self._full(relative)) as source:
            return json.loads(source.read().decode())

    def close(self) -> None:
        """Remove the local scratch folder of an object store."""
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)


def s3_filesystem(settings: ExportSettings) -> pafs.S3FileSystem:
    """pyarrow's S3 client from the settings only (it reads no AWS_* variable or file of its own)."""
    options: dict[str, Any] = {"region": settings.s3_region}
    if settings.s3_endpoint:
        scheme, _, host = settings.s3_endpoint.rpartition("://")
        options.update(endpoint_override=host or settings.s3_endpoint, scheme=scheme or "https")
    if settings.s3_access_key and settings.s3_secret_key is not None:
        options.update(
            access_key=settings.s3_access_key, secret_key=settings.s3_secret_key.get_secret_value()
        )
    else:
        options["anonymous"] = True
    return pafs.S3FileSystem(**options)


def _flush_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _flush_folder(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
