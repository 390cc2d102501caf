"""``esports api``: the web tier's command (declared in ``pyproject.toml``, loaded by :mod:`infra.cli`)."""

from __future__ import annotations

import argparse

from infra.cli import Command
from infra.settings import Settings


def _api(args: argparse.Namespace, settings: Settings) -> int:
    """Run the web pages + REST API (uvicorn) until interrupted."""
    from web import server

    return server.run(settings)


API = Command("api", _api)
