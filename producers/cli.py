"""``esports users``: the command side's command (declared in ``pyproject.toml``, loaded by
:mod:`infra.cli`)."""

from __future__ import annotations

import argparse
import asyncio

from infra.cli import Command, fail
from infra.settings import Settings


async def _grant_role(settings: Settings, username: str, role: str) -> int:
    from producers import roles
    from producers.services import Services

    async with Services.open(settings) as services:
        receipt = await roles.grant(services, username, role)
    if receipt is None:
        return fail(f"no user named {username!r} (register first: POST /api/v1/auth/register)")
    print(f"{username} is now {role} (event {receipt.event_id} at {receipt.position})")
    return 0


def _users(args: argparse.Namespace, settings: Settings) -> int:
    """Set a user's platform role from the command line (bootstraps the first admin)."""
    return asyncio.run(_grant_role(settings, args.username, args.role))


def _users_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["role"], help="role: set USERNAME's platform role")
    parser.add_argument("username")
    parser.add_argument("role", choices=["viewer", "streamer", "admin"])


USERS = Command("users", _users, _users_arguments)
