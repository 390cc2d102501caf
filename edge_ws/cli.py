"""``esports edge``: the edge node's command (declared in ``pyproject.toml``, loaded by :mod:`infra.cli`)."""

from __future__ import annotations

import argparse

from infra.cli import Command
from infra.settings import Settings


def _edge(args: argparse.Namespace, settings: Settings) -> int:
    """Run a websocket edge node (chat, counts, polls) until SIGTERM; drains its clients on the way out."""
    from edge_ws import node

    return node.run(settings, settings.edge.second_port if args.second else args.port)


def _edge_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--port", type=int, default=None, help="listen here instead of ESPORTS_EDGE__PORT")
    where.add_argument("--second", action="store_true", help="listen on ESPORTS_EDGE__SECOND_PORT")


EDGE = Command("edge", _edge, _edge_arguments)
