"""The options of `esports export`, importable without pyarrow (the CLI builds every parser at start)."""

from __future__ import annotations

import argparse

from events.topics import CATALOGUE
from projections.replay.window import parse_time

__all__ = ["EXPORTABLE", "add_arguments", "topic_list"]

EXPORTABLE = tuple(t.name for t in CATALOGUE if t.event_types)


def topic_list(text: str) -> list[str]:
    """``a,b,c`` as catalogue topics, in order, without repeats; a usage error for an unknown one."""
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in EXPORTABLE]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown topics {unknown or [text]}; have {list(EXPORTABLE)}")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `esports export` (shared by infra/cli.py and the command's ``main``)."""
    parser.add_argument(
        "--topics",
        type=topic_list,
        metavar="T1,T2",
        help="topics to export, comma separated (default: ESPORTS_EXPORT__TOPICS)",
    )
    parser.add_argument(
        "--out", metavar="DIR|s3://BUCKET/PREFIX", help="the dataset's root (default: ESPORTS_EXPORT__ROOT)"
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="export up to the end offsets found at start, then exit (default: run as a service)",
    )
    one_shot = parser.add_argument_group("filters (with --once; a filtered dataset keeps its filters)")
    one_shot.add_argument(
        "--stream", action="append", metavar="ID", help="events of this stream (repeatable)"
    )
    one_shot.add_argument("--channel", metavar="SLUG|ID", help="events of this channel and its streams")
    one_shot.add_argument("--match", metavar="ID", help="events of this match and its streams")
    one_shot.add_argument("--from", dest="start", type=parse_time, metavar="TIME", help="ISO-8601, inclusive")
    one_shot.add_argument("--to", dest="end", type=parse_time, metavar="TIME", help="ISO-8601, exclusive")
    one_shot.add_argument(
        "--schema", default="public", help="PostgreSQL schema of the catalog read model (--channel, --match)"
    )
    parser.add_argument(
        "--strict", action="store_true", help="with --once: exit 1 if a record was undecodable"
    )
