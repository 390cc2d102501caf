"""The read-time rule for a clip request no ingest node answers (``projections.queries.clips.as_seen``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from projections.queries.clips import as_seen

T0 = datetime(2026, 12, 5, 18, 0, tzinfo=UTC)
TIMEOUT_S = 60.0


def row(status: str, *, failure: str | None = None, requested_at: datetime | None = T0) -> dict[str, Any]:
    return {"clip_id": "c1", "status": status, "failure": failure, "requested_at": requested_at}


@pytest.mark.parametrize(
    ("waited_s", "status"), [(0, "pending"), (59.999, "pending"), (60, "failed"), (3600, "failed")]
)
def test_a_pending_clip_fails_once_it_waited_the_timeout(waited_s: float, status: str) -> None:
    seen = as_seen(row("pending"), now=T0 + timedelta(seconds=waited_s), timeout_s=TIMEOUT_S)
    assert seen["status"] == status
    if status == "failed":
        assert seen["failure"] == "no ingest node holds this stream's segments (none answered within 60 s)"
    else:
        assert seen["failure"] is None


@pytest.mark.parametrize(
    "given",
    [
        row("ready"),  # a late ClipCreated wins, however long ago the request was
        row("failed", failure="the range is outside the segments"),  # a node's own reason stays
        row("pending", requested_at=None),  # no request read yet: nothing to time
    ],
)
def test_other_rows_are_as_the_projector_wrote_them(given: dict[str, Any]) -> None:
    assert as_seen(given, now=T0 + timedelta(days=1), timeout_s=TIMEOUT_S) == given


def test_the_reason_names_a_fractional_timeout_as_configured_and_the_row_is_not_changed() -> None:
    given = row("pending")
    seen = as_seen(given, now=T0 + timedelta(seconds=3), timeout_s=2.5)
    assert seen["failure"].endswith("within 2.5 s)") and given["status"] == "pending"
