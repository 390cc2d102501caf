"""The streamer's ingest health: transcoder reports projected to Redis (redis.ingest) and read by the
owner through the API; a silent or disconnected publisher shows nothing, an old report is never shown."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from events.ingest import IngestDisconnected, IngestHealthReported
from tests.integration.test_api_support import ApiStack, api_stack, eventually

pytestmark = pytest.mark.integration
__all__ = ["api_stack"]


def report(stream_id: str, session: str, *, kbps: float, at: datetime | None = None) -> IngestHealthReported:
    return IngestHealthReported(
        stream_id=stream_id,
        session_id=session,
        input_bitrate_kbps=kbps,
        fps=29.97,
        encoder_speed=1.6,
        dropped_frames=3,
        restarts=1,
        occurred_at=at or datetime.now(UTC),
    )


async def test_the_owner_reads_the_latest_report_until_the_publisher_leaves(api_stack: ApiStack) -> None:
    owner, viewer = await api_stack.register(), await api_stack.register()
    channel = await api_stack.command(
        "POST", "/api/v1/channels", owner, {"slug": f"h-{uuid.uuid4().hex[:12]}", "display_name": "H"}
    )
    created = await api_stack.command(
        "POST", "/api/v1/streams", owner, {"channel_id": channel["channel_id"], "title": "T"}, expect=201
    )
    stream_id = created["stream_id"]
    await api_stack.query(f"/api/v1/streams/{stream_id}", after=created["positions"])
    url = f"/api/v1/streams/{stream_id}/ingest"

    async def health(kbps: float) -> httpx.Response | None:
        response = await api_stack.client.get(url, headers=owner.auth)
        return (
            response
            if response.status_code == 200 and response.json()["input_bitrate_kbps"] == kbps
            else None
        )

    # Nothing reported yet: a clear 404, not an empty body.
    missing = await api_stack.client.get(url, headers=owner.auth)
    assert missing.status_code == 404 and "no recent ingest report" in missing.json()["detail"]

    # A report measured a minute ago is already stale: it is never shown, even the first time.
    session = uuid.uuid4().hex
    await api_stack.publisher.publish(
        report(stream_id, session, kbps=999, at=datetime.now(UTC) - timedelta(minutes=1))
    )
    await api_stack.publisher.publish(report(stream_id, session, kbps=4500))
    shown = (await eventually(lambda: health(4500))).json()
    assert shown == {
        "session_id": session,
        "input_bitrate_kbps": 4500,
        "fps": 29.97,
        "encoder_speed": 1.6,
        "dropped_frames": 3,
        "restarts": 1,
        "reported_at": shown["reported_at"],
    }
    # The latest report replaces the previous one.
    await api_stack.publisher.publish(report(stream_id, session, kbps=3200))
    await eventually(lambda: health(3200))

    # Only the owner (or an admin) sees it; unknown streams are 404; no token is 401.
    assert (await api_stack.client.get(url, headers=viewer.auth)).status_code == 403
    assert (await api_stack.client.get(url)).status_code == 401
    unknown = await api_stack.client.get("/api/v1/streams/no-such-stream/ingest", headers=owner.auth)
    assert unknown.status_code == 404

    # The publisher leaves: the report goes at once.
    await api_stack.publisher.publish(IngestDisconnected(stream_id=stream_id, session_id=session))

    async def gone() -> bool:
        return (await api_stack.client.get(url, headers=owner.auth)).status_code == 404

    await eventually(gone)
