"""Channels: creation (the owner becomes a streamer), unique slugs, updates only by the owner or an
admin, listing with cursors, stream-key rotation and moderators."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.integration.test_api_support import ApiStack, User, api_stack

pytestmark = pytest.mark.integration
__all__ = ["api_stack"]


async def _channel(stack: ApiStack, owner: User) -> dict[str, Any]:
    slug = f"ch-{uuid.uuid4().hex[:12]}"
    created = await stack.command(
        "POST",
        "/api/v1/channels",
        owner,
        {"slug": slug, "display_name": "Channel", "language": "en"},
        expect=201,
    )
    return created


async def test_creating_a_channel_makes_a_streamer(api_stack: ApiStack) -> None:
    owner = await api_stack.register()
    created = await _channel(api_stack, owner)
    assert len(created["positions"]) == 2  # ChannelCreated, UserRoleChanged
    channel = await api_stack.query(f"/api/v1/channels/{created['slug']}", after=created["positions"])
    assert channel["owner_id"] == owner.user_id and channel["moderators"] == []
    by_id = await api_stack.query(f"/api/v1/channels/{created['channel_id']}")
    assert by_id["slug"] == created["slug"]
    assert (await api_stack.query("/api/v1/me", owner))["role"] == "streamer"
    profile = await api_stack.query(f"/api/v1/users/{owner.user_id}", after=created["positions"])
    assert profile["role"] == "streamer"


async def test_slugs_are_unique(api_stack: ApiStack) -> None:
    created = await _channel(api_stack, await api_stack.register())
    other = await api_stack.register()
    await api_stack.command(
        "POST", "/api/v1/channels", other, {"slug": created["slug"], "display_name": "Copy"}, expect=409
    )


async def test_only_the_owner_or_an_admin_updates_a_channel(api_stack: ApiStack) -> None:
    owner, intruder = await api_stack.register(), await api_stack.register()
    created = await _channel(api_stack, owner)
    await _channel(api_stack, intruder)  # a streamer too, of another channel
    url = f"/api/v1/channels/{created['channel_id']}"
    await api_stack.command("PATCH", url, intruder, {"description": "hijacked"}, expect=403)
    await api_stack.command("PATCH", url, None, {"description": "anonymous"}, expect=401)
    await api_stack.command("PATCH", url, owner, {}, expect=422)
    updated = await api_stack.command("PATCH", url, owner, {"description": "Finals week", "language": "de"})
    channel = await api_stack.query(url, after=updated["positions"])
    assert (channel["description"], channel["language"], channel["low_latency"]) == (
        "Finals week",
        "de",
        True,
    )
    await api_stack.command(
        "PATCH", url, owner, {"low_latency": None}, expect=422
    )  # null = unchanged: nothing
    await api_stack.command("PATCH", url, owner, {"low_latency": "sometimes"}, expect=422)
    standard = await api_stack.command("PATCH", url, owner, {"low_latency": False})
    channel = await api_stack.query(url, after=standard["positions"])
    assert (channel["low_latency"], channel["description"]) == (False, "Finals week")
    admin = await api_stack.make_admin(await api_stack.register())
    by_admin = await api_stack.command("PATCH", url, admin, {"display_name": "Renamed by admin"})
    assert (await api_stack.query(url, after=by_admin["positions"]))["display_name"] == "Renamed by admin"
    await api_stack.command(
        "PATCH", "/api/v1/channels/no-such-channel", owner, {"description": "x"}, expect=404
    )


async def test_channels_are_listed_with_cursors(api_stack: ApiStack) -> None:
    owner = await api_stack.register()
    created = [await _channel(api_stack, owner) for _ in range(3)]
    positions = [p for c in created for p in c["positions"]]
    first = await api_stack.query(f"/api/v1/channels?owner={owner.user_id}&limit=2", after=positions)
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = await api_stack.query(
        f"/api/v1/channels?owner={owner.user_id}&limit=2&cursor={first['next_cursor']}"
    )
    slugs = [c["slug"] for c in first["items"] + second["items"]]
    assert sorted(slugs) == sorted(c["slug"] for c in created)
    assert second["next_cursor"] is None
    bad = await api_stack.client.get("/api/v1/channels?cursor=bm90LWEtY3Vyc29y")
    assert bad.status_code == 400 and bad.headers["content-type"].startswith("application/problem+json")
    too_many = await api_stack.client.get("/api/v1/channels?limit=101")
    assert too_many.status_code == 422


async def test_stream_key_rotation(api_stack: ApiStack) -> None:
    owner, intruder = await api_stack.register(), await api_stack.register()
    created = await _channel(api_stack, owner)
    url = f"/api/v1/channels/{created['channel_id']}/stream-key"
    await api_stack.command("POST", url, intruder, expect=403)
    first = await api_stack.command("POST", url, owner, expect=201)
    assert first["stream_key"].startswith("live_") and len(first["stream_key"]) > 40
    second = await api_stack.command("POST", url, owner, expect=201)
    assert second["stream_key"] != first["stream_key"] and second["key_id"] != first["key_id"]
    channel = await api_stack.query(f"/api/v1/channels/{created['slug']}", after=second["positions"])
    assert channel["stream_key_id"] == second["key_id"]
    assert first["stream_key"] not in str(channel) and second["stream_key"] not in str(channel)


async def test_moderators_are_appointed_by_the_owner_only(api_stack: ApiStack) -> None:
    owner, moderator, intruder = [await api_stack.register() for _ in range(3)]
    created = await _channel(api_stack, owner)
    url = f"/api/v1/channels/{created['channel_id']}/moderators/{moderator.user_id}"
    await api_stack.command("PUT", url, intruder, expect=403)
    await api_stack.command(
        "PUT", f"/api/v1/channels/{created['channel_id']}/moderators/nobody", owner, expect=404
    )
    appointed = await api_stack.command("PUT", url, owner, expect=202)
    channel = await api_stack.query(f"/api/v1/channels/{created['slug']}", after=appointed["positions"])
    assert [m["user_id"] for m in channel["moderators"]] == [moderator.user_id]
    assert channel["moderators"][0]["appointed_by"] == owner.user_id
    await api_stack.command("DELETE", url, intruder, expect=403)
    removed = await api_stack.command("DELETE", url, owner, expect=202)
    channel = await api_stack.query(f"/api/v1/channels/{created['slug']}", after=removed["positions"])
    assert channel["moderators"] == []
