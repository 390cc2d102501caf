"""``esports report``'s arguments, apart from the command so the CLI parser imports nothing heavy."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

__all__ = ["add_arguments", "instant"]


def instant(text: str) -> datetime:
    """An ISO 8601 date or time (``2024-05-01``, ``2024-05-01T18:00``, ``...+02:00``); UTC if it names
    no offset."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date or time: {text!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``esports report``'s arguments."""
    parser.add_argument(
        "what",
        choices=["match", "stream", "channel"],
        help="what to report on: a match (by id), a stream (by id) or a channel (by slug, with --from/--to)",
    )
    parser.add_argument("id", help="the match id, the stream id or the channel's slug")
    parser.add_argument(
        "--from",
        dest="start",
        metavar="ISO",
        type=instant,
        help="channel reports: the streams that went live at or after this ISO 8601 time (UTC if no offset)",
    )
    parser.add_argument(
        "--to",
        dest="end",
        metavar="ISO",
        type=instant,
        help="channel reports: ... and before this ISO 8601 time",
    )
    parser.add_argument(
        "--format",
        choices=["text", "json", "html"],
        default="text",
        help="text (default), json, or html (one self-contained page with plots)",
    )
    parser.add_argument("--schema", default="public", help="PostgreSQL schema of the read model (public)")
