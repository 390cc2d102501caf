"""``esports ingest`` and ``esports demo``: the ingest tier's commands (declared in ``pyproject.toml``,
loaded by :mod:`infra.cli`)."""

from __future__ import annotations

import argparse

from infra.cli import Command
from infra.settings import Settings


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    """Run the ingest node (RTMP/SRT, transcoders, HLS origin and cache tier), or pull a feed."""
    if args.action == "pull":
        from ingest_workers import pull

        return pull.run(settings, args.stream, args.url)
    from ingest_workers import node

    return node.run(settings)


def _ingest_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    pull = actions.add_parser("pull", help="transcode an external feed (rtmp://, srt://, HLS, file)")
    pull.add_argument("--stream", required=True, help="stream id the feed is published as")
    pull.add_argument("url")


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    """Push a test pattern with a clock and a tone to the demo channel until interrupted."""
    from ingest_workers import demo

    return demo.run(settings)


INGEST = Command("ingest", _ingest, _ingest_arguments)
DEMO = Command("demo", _demo)
