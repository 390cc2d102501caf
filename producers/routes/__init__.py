"""One module per resource, each with its ``APIRouter``; :func:`producers.app.create_api` mounts them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

from producers.commands import Receipt
from producers.models.common import Language, Name, Tag

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


# The browse filters of the stream and match listings (one definition, so they validate alike).
GameFilter = Annotated[Name | None, Query(description="Only this game (exact name).")]
TagFilter = Annotated[
    Tag | None, Query(description="Only streams with this tag (a match: one of its streams).")
]
LanguageFilter = Annotated[
    Language | None,
    Query(description="Only this language, e.g. `en` (a match: one of its streams'); case-insensitive."),
]
