"""``esports processors``: the stream processors' command (declared in ``pyproject.toml``, loaded by
:mod:`infra.cli`)."""

from __future__ import annotations

import argparse

from infra.cli import Command
from infra.settings import Settings
from stream_processors.topology import FAMILIES


def _processors(args: argparse.Namespace, settings: Settings) -> int:
    """Run the stream-processor worker (every agent family, or --only one) until interrupted."""
    from stream_processors import worker

    return worker.run(settings, args.only)


def _processors_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--only",
        metavar="FAMILY",
        choices=FAMILIES,
        default=None,
        help=f"run one agent family in its own worker group ({', '.join(FAMILIES)}); "
        "start several to share its partitions (default: every family in one group)",
    )


PROCESSORS = Command("processors", _processors, _processors_arguments)
