"""``esports report match|stream|channel``: the command's ``run``, and the report functions by kind.

Each report is a function of a pool returning a JSON-ready dict (:func:`match_report`,
:func:`stream_report`, :func:`channel_report`), printed as text, JSON or an HTML page. Exit codes:
0 printed, 1 nothing with that id/slug or a database error (the reason on stderr), 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from infra.postgres import DatabaseError
from infra.settings import Settings
from projections.database import checked_schema, make_pool
from projections.report.html import render_html
from projections.report.match import MatchNotFound, match_report
from projections.report.stream import ChannelNotFound, StreamNotFound, channel_report, stream_report
from projections.report.text import render_text

__all__ = [
    "ChannelNotFound",
    "MatchNotFound",
    "StreamNotFound",
    "UsageError",
    "channel_report",
    "check_usage",
    "match_report",
    "render",
    "render_html",
    "render_text",
    "run",
    "stream_report",
]

NOT_FOUND = (MatchNotFound, StreamNotFound, ChannelNotFound)


class UsageError(ValueError):
    """The arguments do not make a report (exit code 2)."""


def render(report: dict[str, Any], form: str) -> str:
    """``report`` as ``text``, ``json`` or ``html``."""
    if form == "json":
        return json.dumps(report, indent=2, ensure_ascii=False)
    return render_html(report) if form == "html" else render_text(report)


def check_usage(args: argparse.Namespace) -> str:
    """The schema, once the arguments fit together (``UsageError``, ``ValueError`` otherwise)."""
    channel = args.what == "channel"
    if channel and (args.start is None or args.end is None):
        raise UsageError("a channel report needs --from and --to")
    if channel and args.start >= args.end:
        raise UsageError("--from must be before --to")
    if not channel and (args.start is not None or args.end is not None):
        raise UsageError(f"--from and --to are for channel reports, not {args.what} reports")
    return checked_schema(args.schema)


async def _report(settings: Settings, schema: str, args: argparse.Namespace) -> dict[str, Any]:
    async with make_pool(settings.postgres, name="report", schema=schema, max_size=1) as pool:
        if args.what == "match":
            return await match_report(pool, args.id)
        if args.what == "stream":
            return await stream_report(pool, args.id)
        return await channel_report(pool, args.id, args.start, args.end)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """The ``esports report`` command: 0 printed, 1 not found or database error, 2 usage."""
    try:
        schema = check_usage(args)
    except ValueError as e:
        print(f"esports report: {e}", file=sys.stderr)
        return 2
    try:
        report = asyncio.run(_report(settings, schema, args))
    except (*NOT_FOUND, DatabaseError) as e:
        print(f"esports report: {e}", file=sys.stderr)
        return 1
    print(render(report, args.format))
    return 0
