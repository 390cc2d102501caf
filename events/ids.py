"""Derived event ids: the one way a processor names what it decides.

A processor at least once may decide the same thing twice (a redelivered cause, a replay, a restart),
so the id of what it publishes is derived from what it decided on, never drawn at random:
``uuid5(namespace, "part:part:...")``. Re-deciding then yields the same id, and readers drop the
duplicate. Each family of decisions has its own namespace in :class:`IdSpace`, so two families never
share an id even for the same parts.

The namespaces and the ``":"``-joined names are fixed forever: events already on the log carry ids
derived from them, and a replay must derive the same ones.
"""

from __future__ import annotations

import enum
import uuid

__all__ = ["IdSpace", "decision_id"]


class IdSpace(enum.Enum):
    """The uuid5 namespace of each family of derived ids, with the parts its names are made of."""

    LIFECYCLE = uuid.UUID("6f1c3b2e-8d4a-5e7f-9a10-3c5b7d9e1f20")  # cause id, decision's event type
    MODERATION = uuid.UUID("0b6f2a51-3c7d-5e84-9f16-2d4a8c0e7b39")  # cause id, decision's event type
    NOTIFICATION = uuid.UUID("7c3e9a14-5b2d-5f68-a1c9-3e8d2f4b6a17")  # cause id, user id
    POLL_TALLY = uuid.UUID("3d9a7c52-41e8-5b0f-9c6d-2a8e4f1b7c93")  # stream, poll, seq or "final"
    MIGRATED_VOTE = uuid.UUID("7e0b5f4c-93a1-5d28-b6e4-1c8f2a9d3e57")  # poll, voter
    VIEWER_COUNT = uuid.UUID("0b6d8f3a-2c71-5e49-8a1d-7f3e5c9b2a64")  # stream, epoch second
    MATCH_AUDIENCE = uuid.UUID("5c2e9a71-8b34-5f0d-9e6a-1d7b3c4f8a20")  # match, epoch second


def decision_id(space: IdSpace, cause: str, *parts: str | int) -> uuid.UUID:
    """The id of a decision in ``space`` on ``cause`` (the event id or key it was decided on),
    told apart from the other decisions on the same cause by ``parts``."""
    return uuid.uuid5(space.value, ":".join((cause, *map(str, parts))))
