"""``esports projector|rebuild|replay|report|export``: the read side's commands (declared in
``pyproject.toml``, loaded by :mod:`infra.cli`). Each imports its work only when it runs, so
``esports --help`` stays light."""

from __future__ import annotations

import argparse

from infra.cli import Command
from infra.settings import Settings
from projections.export.options import add_arguments as add_export_arguments
from projections.rebuild.options import add_arguments as add_rebuild_arguments
from projections.replay.options import add_arguments as add_replay_arguments
from projections.report.options import add_arguments as add_report_arguments


def _projector(args: argparse.Namespace, settings: Settings) -> int:
    """Run the projectors into PostgreSQL and Redis until interrupted."""
    from projections import service

    return service.run(settings)


def _rebuild(args: argparse.Namespace, settings: Settings) -> int:
    """Rebuild read models from the topics into a shadow schema and key prefix, then swap them in
    atomically; resumable (an interrupted run continues where it stopped)."""
    from projections.rebuild import command

    return command.run(args, settings)


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    """Export a topic's decoded events in a time range as JSON lines, CSV or Parquet, schema beside."""
    from projections.replay import command

    return command.run(args, settings)


def _report(args: argparse.Namespace, settings: Settings) -> int:
    """Print the analytics of a match, a stream or a channel over a time range (audience, unique
    viewers, watch time, retention, chat, moderation, polls) as text, JSON or an HTML page."""
    from projections.report import command as report

    return report.run(args, settings)


def _export(args: argparse.Namespace, settings: Settings) -> int:
    """Export topics into a Parquet dataset partitioned by topic and date, exactly once across
    restarts, to a folder or S3-compatible storage: a service, or one run with --once (and filters)."""
    from projections.export import command

    return command.run(args, settings)


PROJECTOR = Command("projector", _projector)
REBUILD = Command("rebuild", _rebuild, add_rebuild_arguments)
REPLAY = Command("replay", _replay, add_replay_arguments)
REPORT = Command("report", _report, add_report_arguments)
EXPORT = Command("export", _export, add_export_arguments)
