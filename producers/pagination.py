"""Cursor pagination: an opaque, URL-safe cursor holding the sort key of the last item returned."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from producers.problems import ApiProblem

MAX_LIMIT = 100
DEFAULT_LIMIT = 20
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,512}$"


class InvalidCursor(ApiProblem):
    """The cursor was not made by this API (or by this version of the listing)."""

    status, code, title = 400, "invalid-cursor", "Invalid cursor"


def encode_cursor(*values: Any) -> str:
    raw = json.dumps([v.isoformat() if isinstance(v, datetime) else v for v in values], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, kinds: tuple[type, ...]) -> list[Any]:
    """The cursor's values, each converted to ``kinds[i]`` (``datetime`` from ISO, ``int``, ``str``)."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(values, list) or len(values) != len(kinds):
            raise InvalidCursor("cursor does not fit this listing")
        return [_convert(value, kind) for value, kind in zip(values, kinds, strict=True)]
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as e:
        raise InvalidCursor(f"invalid cursor: {e}") from None


def _convert(value: Any, kind: type) -> Any:
    if kind is datetime:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise InvalidCursor("cursor time without zone")
        return moment
    if kind is int and isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31:
        return value
    if kind is str and isinstance(value, str) and "\x00" not in value and len(value) <= 200:
        return value
    raise InvalidCursor("cursor value of the wrong type")


def sort_key(cursor: str | None, kinds: tuple[type, ...]) -> tuple[Any, ...] | None:
    """The sort key of the last row shown that ``cursor`` holds (what a query's ``after`` takes);
    None for the first page (no cursor)."""
    return None if not cursor else tuple(decode_cursor(cursor, kinds))
