"""`esports users role`: the bootstrap path for the first admin, against the real stack."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime

from infra.settings import Settings
from producers.services import Services
from producers.store.accounts import Credential


def _esports(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )


async def test_users_role_promotes_an_existing_account_and_publishes_the_change(settings: Settings) -> None:
    username = f"boot_{uuid.uuid4().hex[:8]}"
    async with Services.open(settings) as services:
        created = await services.accounts.create(
            Credential(
                f"u-{uuid.uuid4().hex}", username, username, "not-a-real-hash", "viewer", datetime.now(UTC)
            )
        )
        assert created
        done = _esports("users", "role", username, "admin")
        assert done.returncode == 0, done.stderr
        assert f"{username} is now admin" in done.stdout
        account = await services.accounts.by_username(username)
        assert account is not None and account.role == "admin"


def test_users_role_for_an_unknown_user_fails_clearly(settings: Settings) -> None:
    done = _esports("users", "role", f"ghost_{uuid.uuid4().hex[:6]}", "admin")
    assert done.returncode == 1
    assert "no user named" in done.stderr
