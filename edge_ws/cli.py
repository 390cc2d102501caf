"""``esports edge``: the edge node's command (declared in ``pyproject.toml``, loaded by :mod:`infra.cli`)."""

from __future__ import annotations

import argparse

from infra.cli import Command
from infra.settings import Settings


def _edge(args: argparse.Namespace, settings: Settings) -> int:
    """Run a websocket edge node (chat, counts, polls) until SIGTERM; drains its clients on the way out.
    With ``edge.workers`` > 1 (``--workers N``) the node is N worker processes sharing the port."""
    if args.workers is not None:
        settings = settings.model_copy(
            update={"edge": settings.edge.model_copy(update={"workers": args.workers})}
        )
    port = settings.edge.second_port if args.second else args.port
    if settings.edge.workers > 1:
        from edge_ws import workers

        return workers.run_node(settings, port)
    from edge_ws import node

    return node.run(settings, port)


def _edge_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--port", type=int, default=None, help="listen here instead of ESPORTS_EDGE__PORT")
    where.add_argument("--second", action="store_true", help="listen on ESPORTS_EDGE__SECOND_PORT")
    parser.add_argument(
        "--workers",
        type=_positive,
        default=None,
        help="worker processes sharing the port (instead of ESPORTS_EDGE__WORKERS; see edge_ws/workers.py)",
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"at least 1, not {value}")
    return value


EDGE = Command("edge", _edge, _edge_arguments)
