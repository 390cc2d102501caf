"""Read-your-writes: a query naming log positions (``X-Min-Position``) waits, bounded, for the projector.

The header holds ``topic:partition:offset`` values (repeated or comma separated), as returned in a
command's ``position``/``positions``. When the wait times out the query still answers, from the
read model as it is, with ``X-Read-Model-Lag: stale``.
"""

from __future__ import annotations

import time

from psycopg_pool import AsyncConnectionPool

from events.topics import spec
from infra.kafka import Position
from projections.positions import wait_for_position

MAX_POSITIONS = 16


class InvalidPosition(ValueError):
    """A header value is not ``topic:partition:offset`` of a catalogue topic."""


def parse_positions(values: list[str]) -> list[Position]:
    """Parse header values; raises :class:`InvalidPosition`."""
    items = [item.strip() for value in values for item in value.split(",") if item.strip()]
    if len(items) > MAX_POSITIONS:
        raise InvalidPosition(f"at most {MAX_POSITIONS} positions")
    return [_parse_one(item) for item in items]


def _parse_one(item: str) -> Position:
    parts = item.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        raise InvalidPosition(f"{item!r} is not topic:partition:offset")
    try:
        spec(parts[0])
    except KeyError:
        raise InvalidPosition(f"unknown topic {parts[0]!r}") from None
    return Position(parts[0], int(parts[1]), int(parts[2]))


async def wait_for_positions(
    pool: AsyncConnectionPool, positions: list[Position], timeout_s: float, *, schema: str
) -> bool:
    """True once the read model reached every position, False when ``timeout_s`` ran out first."""
    deadline = time.monotonic() + timeout_s
    for position in positions:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not await wait_for_position(pool, position, remaining, schema=schema):
            return False
    return True
