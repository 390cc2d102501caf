"""``esports report``'s arguments, apart from the command so the CLI parser imports nothing heavy."""

from __future__ import annotations

import argparse

__all__ = ["add_arguments"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``esports report``'s arguments."""
    parser.add_argument("what", choices=["match"], help="what to report on")
    parser.add_argument("id", help="the match id")
    parser.add_argument("--format", choices=["text", "json"], default="text", help="text (default) or json")
    parser.add_argument("--schema", default="public", help="PostgreSQL schema of the read model (public)")
