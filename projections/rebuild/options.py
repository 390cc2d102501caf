"""``esports rebuild``'s options, apart from the command so the CLI parser imports nothing heavy."""

from __future__ import annotations

import argparse

__all__ = ["add_arguments"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``esports rebuild``'s options (kept here, beside what they drive)."""
    parser.add_argument(
        "projections",
        nargs="*",
        metavar="PROJECTION",
        help="postgres, redis or a projector name (default: all; `--list` names them). PostgreSQL"
        " projectors share one schema: naming one rebuilds them all",
    )
    parser.add_argument("--list", action="store_true", help="list the registered projectors and exit")
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="discard a shadow left by an interrupted run instead of resuming it",
    )
    parser.add_argument(
        "--schema", default="public", help="PostgreSQL schema of the live read model (default: public)"
    )
    parser.add_argument("--redis-prefix", default="", help="key prefix of the live Redis read model (none)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="events per transaction (default: 2000)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        help="1, or 2: a second process applies a share of the projectors (default: 2 on 2+ cores)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
