"""Streams end to end with the projector and the lifecycle agent: create, update, schedule, the ingest
authorisation by stream key, going live (decided by the agent), the live listing, ending by a
moderator, and the 403/409 refusals."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events.ingest import IngestConnected, IngestProtocol
from tests.integration.test_api_support import ApiStack, User, api_stack, eventually, stream_state

pytestmark = pytest.mark.integration
__all__ = ["api_stack"]


async def _streamer(stack: ApiStack) -> tuple[User, dict[str, Any]]:
    owner = await stack.register()
    channel = await stack.command(
        "POST", "/api/v1/channels", owner, {"slug": f"s-{uuid.uuid4().hex[:12]}", "display_name": "S"}
    )
    return owner, channel


def _internal(stack: ApiStack) -> dict[str, str]:
    token = stack.settings.auth.internal_token
    assert token is not None
    return {"Authorization": f"Bearer {token.get_secret_value()}"}


async def _go_live(stack: ApiStack, stream_id: str) -> dict[str, Any]:
    """What an ingest worker does once the publisher connected; the agent decides StreamWentLive."""
    await stack.publisher.publish(
        IngestConnected(
            stream_id=stream_id, session_id=uuid.uuid4().hex, protocol=IngestProtocol.RTMP, node="t"
        )
    )
    return await stream_state(stack, stream_id, "live")


async def test_create_update_and_schedule(api_stack: ApiStack) -> None:
    owner, channel = await _streamer(api_stack)
    created = await api_stack.command(
        "POST",
        "/api/v1/streams",
        owner,
        {"channel_id": channel["channel_id"], "title": "Scrims", "game": "Valorant", "tags": ["scrim"]},
        expect=201,
    )
    url = f"/api/v1/streams/{created['stream_id']}"
    stream = await api_stack.query(url, after=created["positions"])
    assert (stream["state"], stream["title"], stream["tags"], stream["owner_id"]) == (
        "created",
        "Scrims",
        ["scrim"],
        owner.user_id,
    )
    updated = await api_stack.command("PATCH", url, owner, {"title": "Ranked", "language": "fr"})
    stream = await api_stack.query(url, after=updated["positions"])
    assert (stream["title"], stream["language"], stream["game"]) == ("Ranked", "fr", "Valorant")
    start = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    scheduled = await api_stack.command(
        "POST", f"{url}/schedule", owner, {"scheduled_start": start.isoformat()}
    )
    stream = await api_stack.query(url, after=scheduled["positions"])
    assert stream["state"] == "scheduled" and datetime.fromisoformat(stream["scheduled_start"]) == start
    listed = await api_stack.query(f"/api/v1/streams?state=scheduled&channel={channel['slug']}")
    assert [s["stream_id"] for s in listed["items"]] == [created["stream_id"]]
    naive = await api_stack.client.post(
        f"{url}/schedule", json={"scheduled_start": "2030-01-01T10:00:00"}, headers=owner.auth
    )
    assert naive.status_code == 422


async def test_streamers_cannot_touch_each_others_streams(api_stack: ApiStack) -> None:
    owner, channel = await _streamer(api_stack)
    intruder, _ = await _streamer(api_stack)
    viewer = await api_stack.register()
    await api_stack.command(
        "POST",
        "/api/v1/streams",
        intruder,
        {"channel_id": channel["channel_id"], "title": "mine now"},
        expect=403,
    )
    created = await api_stack.command(
        "POST", "/api/v1/streams", owner, {"channel_id": channel["channel_id"], "title": "t"}
    )
    url = f"/api/v1/streams/{created['stream_id']}"
    await api_stack.query(url, after=created["positions"])
    await api_stack.command("PATCH", url, intruder, {"title": "hijacked"}, expect=403)
    await api_stack.command(
        "POST", f"{url}/schedule", intruder, {"scheduled_start": "2030-01-01T10:00:00Z"}, expect=403
    )
    await api_stack.command("POST", f"{url}/end", viewer, expect=403)
    await api_stack.command(
        "POST", "/api/v1/streams", owner, {"channel_id": "nope", "title": "t"}, expect=404
    )
    await api_stack.command("GET", "/api/v1/streams/nope", None, expect=404)


async def test_ingest_authorisation_by_stream_key(api_stack: ApiStack) -> None:
    owner, channel = await _streamer(api_stack)
    key = await api_stack.command(
        "POST", f"/api/v1/channels/{channel['channel_id']}/stream-key", owner, expect=201
    )
    authorize = "/internal/ingest/authorize"
    wrong_token = await api_stack.client.post(
        authorize, json={"stream_key": key["stream_key"]}, headers={"Authorization": "Bearer nope"}
    )
    assert wrong_token.status_code == 401
    wrong_key = await api_stack.client.post(
        authorize, json={"stream_key": "live_guess"}, headers=_internal(api_stack)
    )
    assert wrong_key.status_code == 403
    # no open stream yet: one is created for the channel
    first = await api_stack.client.post(
        authorize, json={"stream_key": key["stream_key"]}, headers=_internal(api_stack)
    )
    assert first.status_code == 200 and first.json()["created"] is True
    assert first.json()["channel_id"] == channel["channel_id"]
    await api_stack.query(f"/api/v1/streams/{first.json()['stream_id']}", after=[first.json()["position"]])
    again = await api_stack.client.post(
        authorize, json={"stream_key": key["stream_key"]}, headers=_internal(api_stack)
    )
    assert again.json() == {**first.json(), "created": False, "position": None}
    # a rotated key stops working
    await api_stack.command("POST", f"/api/v1/channels/{channel['channel_id']}/stream-key", owner, expect=201)
    old = await api_stack.client.post(
        authorize, json={"stream_key": key["stream_key"]}, headers=_internal(api_stack)
    )
    assert old.status_code == 403


async def test_live_listing_and_ending_by_a_moderator(api_stack: ApiStack) -> None:
    owner, channel = await _streamer(api_stack)
    moderator, stranger = await api_stack.register(), await api_stack.register()
    appointed = await api_stack.command(
        "PUT", f"/api/v1/channels/{channel['channel_id']}/moderators/{moderator.user_id}", owner
    )
    created = await api_stack.command(
        "POST", "/api/v1/streams", owner, {"channel_id": channel["channel_id"], "title": "Grand final"}
    )
    url = f"/api/v1/streams/{created['stream_id']}"
    await api_stack.query(url, after=[*created["positions"], *appointed["positions"]])
    await api_stack.command("POST", f"{url}/end", owner, expect=409)  # not live yet
    live = await _go_live(api_stack, created["stream_id"])
    assert live["started_at"] is not None

    async def in_listing() -> dict[str, Any] | None:
        listing = await api_stack.query("/api/v1/streams/live?limit=100")
        return listing if created["stream_id"] in [s["stream_id"] for s in listing["items"]] else None

    assert (await eventually(in_listing, timeout_s=10))["source"] == "redis"
    assert (await api_stack.query("/api/v1/streams?state=live"))["items"][0]["stream_id"] == created[
        "stream_id"
    ]
    await api_stack.command(
        "POST", f"{url}/schedule", owner, {"scheduled_start": "2030-01-01T10:00:00Z"}, expect=409
    )
    await api_stack.command("POST", f"{url}/end", stranger, expect=403)
    await api_stack.command("POST", f"{url}/end", moderator, expect=202)
    ended = await stream_state(api_stack, created["stream_id"], "ended")
    assert ended["end_reason"] == "ended_by_moderator"
    await api_stack.command("POST", f"{url}/end", owner, expect=409)
    await api_stack.command("PATCH", url, owner, {"title": "too late"}, expect=409)

    async def gone_from_listing() -> bool:  # the listing is cached per process for a second
        listing = await api_stack.query("/api/v1/streams/live?limit=100")
        return created["stream_id"] not in [s["stream_id"] for s in listing["items"]]

    await eventually(gone_from_listing, timeout_s=10)


async def test_live_listing_falls_back_to_postgres(api_stack: ApiStack) -> None:
    owner, channel = await _streamer(api_stack)
    created = await api_stack.command(
        "POST", "/api/v1/streams", owner, {"channel_id": channel["channel_id"], "title": "x"}
    )
    await api_stack.query(f"/api/v1/streams/{created['stream_id']}", after=created["positions"])
    await _go_live(api_stack, created["stream_id"])
    reader = api_stack.services.streams
    real = reader._redis
    reader._redis = _BrokenRedis()  # type: ignore[assignment]
    reader._live_pages.clear()
    try:
        listing = await api_stack.query("/api/v1/streams/live?limit=99")
    finally:
        reader._redis = real
    assert listing["source"] == "postgres"
    assert created["stream_id"] in [s["stream_id"] for s in listing["items"]]


async def test_listing_streams_pages_with_cursors(api_stack: ApiStack) -> None:
    owner, channel = await _streamer(api_stack)
    ids, positions = [], []
    for i in range(5):
        created = await api_stack.command(
            "POST", "/api/v1/streams", owner, {"channel_id": channel["channel_id"], "title": f"part {i}"}
        )
        ids.append(created["stream_id"])
        positions += created["positions"]
    seen, cursor = [], None
    while True:
        page = await api_stack.query(
            f"/api/v1/streams?channel={channel['channel_id']}&limit=2"
            + (f"&cursor={cursor}" if cursor else ""),
            after=positions,
        )
        seen += [s["stream_id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))


class _BrokenRedis:
    async def zrevrange(self, *args: object, **kwargs: object) -> object:
        from redis.exceptions import ConnectionError

        raise ConnectionError("redis is down (simulated)")
