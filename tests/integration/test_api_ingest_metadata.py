"""A pushed stream keeps the channel's metadata: the ingest authorisation creates the next stream with
the title, game, tags and language of the channel's last stream (set once on the dashboard, as on
Twitch); a channel's first stream is titled ``"{slug} live"``."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from events.ingest import IngestConnected, IngestProtocol
from tests.integration.test_api_support import ApiStack, User, api_stack, stream_state

pytestmark = pytest.mark.integration
__all__ = ["api_stack"]

AUTHORIZE = "/internal/ingest/authorize"


def _internal(stack: ApiStack) -> dict[str, str]:
    token = stack.settings.auth.internal_token
    assert token is not None
    return {"Authorization": f"Bearer {token.get_secret_value()}"}


async def _pushed(stack: ApiStack, stream_key: str) -> dict[str, Any]:
    """What the ingest hook does on a publish: the stream it was given, once the read model has it."""
    answer = await stack.client.post(AUTHORIZE, json={"stream_key": stream_key}, headers=_internal(stack))
    assert answer.status_code == 200 and answer.json()["created"] is True, answer.text
    return await stack.query(
        f"/api/v1/streams/{answer.json()['stream_id']}", after=[answer.json()["position"]]
    )


async def _end(stack: ApiStack, owner: User, stream_id: str) -> None:
    await stack.publisher.publish(
        IngestConnected(
            stream_id=stream_id, session_id=uuid.uuid4().hex, protocol=IngestProtocol.RTMP, node="t"
        )
    )
    await stream_state(stack, stream_id, "live")
    await stack.command("POST", f"/api/v1/streams/{stream_id}/end", owner, expect=202)
    await stream_state(stack, stream_id, "ended")


async def test_a_pushed_stream_takes_the_last_streams_title_and_game(api_stack: ApiStack) -> None:
    owner = await api_stack.register()
    slug = f"m-{uuid.uuid4().hex[:12]}"
    channel = await api_stack.command("POST", "/api/v1/channels", owner, {"slug": slug, "display_name": "M"})
    key = await api_stack.command(
        "POST", f"/api/v1/channels/{channel['channel_id']}/stream-key", owner, expect=201
    )
    first = await _pushed(api_stack, key["stream_key"])
    assert (first["title"], first["game"], first["tags"]) == (f"{slug} live", "", [])

    metadata = {"title": "Ranked grind", "game": "Dota 2", "tags": ["ranked", "emea"], "language": "de"}
    patched = await api_stack.command("PATCH", f"/api/v1/streams/{first['stream_id']}", owner, metadata)
    await api_stack.query(f"/api/v1/streams/{first['stream_id']}", after=patched["positions"])
    await _end(api_stack, owner, first["stream_id"])

    second = await _pushed(api_stack, key["stream_key"])
    assert second["stream_id"] != first["stream_id"]
    assert {k: second[k] for k in metadata} == metadata


async def test_another_channels_streams_are_not_carried_over(api_stack: ApiStack) -> None:
    other = await api_stack.register()
    other_channel = await api_stack.command(
        "POST", "/api/v1/channels", other, {"slug": f"o-{uuid.uuid4().hex[:12]}", "display_name": "O"}
    )
    created = await api_stack.command(
        "POST",
        "/api/v1/streams",
        other,
        {"channel_id": other_channel["channel_id"], "title": "Not yours", "game": "Chess"},
        expect=201,
    )
    await api_stack.query(f"/api/v1/streams/{created['stream_id']}", after=created["positions"])
    owner = await api_stack.register()
    slug = f"n-{uuid.uuid4().hex[:12]}"
    channel = await api_stack.command("POST", "/api/v1/channels", owner, {"slug": slug, "display_name": "N"})
    key = await api_stack.command(
        "POST", f"/api/v1/channels/{channel['channel_id']}/stream-key", owner, expect=201
    )
    first = await _pushed(api_stack, key["stream_key"])
    assert (first["title"], first["game"]) == (f"{slug} live", "")


async def test_the_ingest_hook_answers_with_the_channels_dvr_window(api_stack: ApiStack) -> None:
    """A channel that never chose leaves the node's DVR window (null); once it chose, every push is told."""
    owner = await api_stack.register()
    channel = await api_stack.command(
        "POST", "/api/v1/channels", owner, {"slug": f"d-{uuid.uuid4().hex[:12]}", "display_name": "D"}
    )
    url = f"/api/v1/channels/{channel['channel_id']}"
    key = await api_stack.command("POST", f"{url}/stream-key", owner, expect=201)
    await api_stack.query(url, after=channel["positions"])

    async def dvr_window() -> Any:
        answer = await api_stack.client.post(
            AUTHORIZE, json={"stream_key": key["stream_key"]}, headers=_internal(api_stack)
        )
        assert answer.status_code == 200, answer.text
        return answer.json()["dvr_window_s"]

    assert await dvr_window() is None
    await api_stack.command("PATCH", url, owner, {"dvr_window_s": 12 * 3600 + 1}, expect=422)
    await api_stack.command("PATCH", url, owner, {"dvr_window_s": -1}, expect=422)
    for seconds in (1800, 0):
        patched = await api_stack.command("PATCH", url, owner, {"dvr_window_s": seconds})
        assert (await api_stack.query(url, after=patched["positions"]))["dvr_window_s"] == seconds
        assert await dvr_window() == seconds
