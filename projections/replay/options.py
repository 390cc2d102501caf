"""The options of `esports replay`, importable without pyarrow (the CLI builds every parser at start)."""

from __future__ import annotations

import argparse
from pathlib import Path

from events.topics import CATALOGUE
from projections.replay.window import parse_time

FORMATS = ("jsonl", "csv", "parquet")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `esports replay` (shared by infra/cli.py and :func:`main`)."""
    topics = [t.name for t in CATALOGUE if t.event_types]
    parser.add_argument("--topic", required=True, choices=topics, metavar="TOPIC", help=f"one of {topics}")
    parser.add_argument("--from", dest="start", type=parse_time, metavar="TIME", help="ISO-8601, inclusive")
    parser.add_argument("--to", dest="end", type=parse_time, metavar="TIME", help="ISO-8601, exclusive")
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--out", required=True, type=Path, metavar="PATH", help="data file to write")
    parser.add_argument("--strict", action="store_true", help="exit 1 if any record could not be decoded")
