"""Secrets for local runs: generated once into .run/secrets.env (mode 0600), never committed or logged.

Deployments set the same variables from their own secret store; real environment variables win over
the file (pydantic-settings reads both, the environment first).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from infra.settings import REPO_ROOT

SECRETS_FILE = REPO_ROOT / ".run" / "secrets.env"
GENERATED = ("ESPORTS_AUTH__JWT_SECRET", "ESPORTS_AUTH__INTERNAL_TOKEN")


def ensure_local_secrets(path: Path = SECRETS_FILE) -> list[str]:
    """Add any missing generated secret to the file; returns the names added (never the values)."""
    existing = path.read_text().splitlines() if path.exists() else []
    have = {line.split("=", 1)[0] for line in existing if "=" in line}
    added = [name for name in GENERATED if name not in have and name not in os.environ]
    if not added:
        return []
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [*existing, *(f"{name}={secrets.token_urlsafe(48)}" for name in added)]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(lines) + "\n")
    return added
