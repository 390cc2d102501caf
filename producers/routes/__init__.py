"""One module per resource, each with its ``APIRouter``; :func:`producers.app.create_api` mounts them."""

from __future__ import annotations

from typing import Any

from producers.commands import Receipt

# Routers carry the full prefix themselves: with FastAPI 0.165 an include-time prefix does not show
# in ``scope["route"].path``, which labels the metrics.
API_PREFIX = "/api/v1"


def accepted(receipt: Receipt) -> dict[str, Any]:
    """The ``event_id``/``position``/``positions`` fields of a command response."""
    return {
        "event_id": receipt.event_id,
        "position": str(receipt.position),
        "positions": [str(p) for p in receipt.positions],
    }
