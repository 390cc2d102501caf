"""The moderators' views over REST against real Kafka and PostgreSQL: the held queue and the log.

Decisions are published to ``chat.messages`` as the moderation agent would (the agent itself is
exercised in ``test_moderation.py`` and the browser test); the projector service turns them into
``held_messages`` and ``moderation_log``, and the API serves them to the channel's staff only.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events.base import Event
from events.chat import (
    ChatMessageAccepted,
    ChatMessageHeld,
    ChatMessageRejected,
    RejectionReason,
    UserBanned,
    UserUnbanned,
)
from infra.moderator_passes import ModeratorPasses
from tests.integration.test_api_support import ApiStack, User, api_stack

pytestmark = pytest.mark.integration
__all__ = ["api_stack"]

T0 = datetime.now(UTC).replace(microsecond=0)


async def _stream_with_staff(stack: ApiStack) -> tuple[str, User, User, User]:
    owner, moderator, stranger = await stack.register(), await stack.register(), await stack.register()
    channel = await stack.command(
        "POST", "/api/v1/channels", owner, {"slug": f"q-{uuid.uuid4().hex[:12]}", "display_name": "Q"}
    )
    appointed = await stack.command(
        "PUT", f"/api/v1/channels/{channel['channel_id']}/moderators/{moderator.user_id}", owner
    )
    created = await stack.command(
        "POST", "/api/v1/streams", owner, {"channel_id": channel["channel_id"], "title": "Semi final"}
    )
    await stack.query(
        f"/api/v1/streams/{created['stream_id']}", after=[*created["positions"], *appointed["positions"]]
    )
    return created["stream_id"], owner, moderator, stranger


def _held(stream: str, message_id: str, seconds: int) -> ChatMessageHeld:
    return ChatMessageHeld(
        message_id=message_id,
        stream_id=stream,
        user_id="u-author",
        display_name="Author",
        text=f"look at spoi ler {message_id}",
        score=0.7,
        reasons=("obfuscated_term", "link"),
        occurred_at=T0 + timedelta(seconds=seconds),
    )


async def _publish(stack: ApiStack, events: list[Event]) -> list[str]:
    return [str(p) for p in await stack.publisher.publish_many(events)]


async def test_the_held_queue_lists_what_waits_and_drops_what_was_decided(api_stack: ApiStack) -> None:
    stream, owner, moderator, _stranger = await _stream_with_staff(api_stack)
    m1, m2, m3, m4 = (f"m-{uuid.uuid4().hex[:8]}" for _ in range(4))
    positions = await _publish(
        api_stack,
        [
            _held(stream, m1, 1),
            _held(stream, m2, 2),
            _held(stream, m3, 3),
            ChatMessageAccepted(
                message_id=m1,
                stream_id=stream,
                user_id="u-author",
                display_name="Author",
                text="x",
                approved_by=moderator.user_id,
            ),
            ChatMessageRejected(
                message_id=m2,
                stream_id=stream,
                user_id="u-author",
                reason=RejectionReason.DENIED,
                detail="no spoilers",
                denied_by=owner.user_id,
            ),
            # a replay may apply a denial before its hold: the message is still not pending
            ChatMessageRejected(
                message_id=m4,
                stream_id=stream,
                user_id="u-author",
                reason=RejectionReason.DENIED,
                denied_by=owner.user_id,
            ),
            _held(stream, m4, 4),
        ],
    )
    url = f"/api/v1/streams/{stream}/moderation/held"
    queue = await api_stack.query(url, moderator, after=positions[-1:])
    assert [item["message_id"] for item in queue["items"]] == [m3]
    (item,) = queue["items"]
    assert item["text"] == f"look at spoi ler {m3}" and item["reasons"] == ["obfuscated_term", "link"]
    assert item["display_name"] == "Author" and item["score"] == pytest.approx(0.7)
    assert queue["next_cursor"] is None
    owners_view = await api_stack.query(url, owner)
    assert owners_view["items"] == queue["items"]


async def test_the_queue_pages_oldest_first(api_stack: ApiStack) -> None:
    stream, _owner, moderator, _stranger = await _stream_with_staff(api_stack)
    ids = [f"m-{n}-{uuid.uuid4().hex[:6]}" for n in range(3)]
    positions = await _publish(api_stack, [_held(stream, m, n) for n, m in enumerate(ids)])
    url = f"/api/v1/streams/{stream}/moderation/held"
    first = await api_stack.query(f"{url}?limit=2", moderator, after=positions[-1:])
    assert [i["message_id"] for i in first["items"]] == ids[:2] and first["next_cursor"]
    rest = await api_stack.query(f"{url}?limit=2&cursor={first['next_cursor']}", moderator)
    assert [i["message_id"] for i in rest["items"]] == ids[2:] and rest["next_cursor"] is None


async def test_the_moderation_log_names_actor_target_and_reason_newest_first(api_stack: ApiStack) -> None:
    stream, owner, moderator, _stranger = await _stream_with_staff(api_stack)
    held_id = f"m-{uuid.uuid4().hex[:8]}"
    positions = await _publish(
        api_stack,
        [
            _held(stream, held_id, 1),
            UserBanned(
                stream_id=stream,
                user_id="u-troll",
                actor_id=moderator.user_id,
                reason="spam",
                occurred_at=T0 + timedelta(seconds=2),
            ),
            UserUnbanned(
                stream_id=stream,
                user_id="u-troll",
                actor_id=owner.user_id,
                reason="appeal granted",
                occurred_at=T0 + timedelta(seconds=3),
            ),
        ],
    )
    url = f"/api/v1/streams/{stream}/moderation/log"
    log = await api_stack.query(url, moderator, after=positions[-1:])
    rows = [(e["action"], e["actor_id"], e["target_user_id"], e["reason"]) for e in log["items"]]
    assert rows == [
        ("unban", owner.user_id, "u-troll", "appeal granted"),
        ("ban", moderator.user_id, "u-troll", "spam"),
        ("hold", "automod", "u-author", "obfuscated_term, link"),
    ]
    assert log["items"][2]["target_message_id"] == held_id
    page = await api_stack.query(f"{url}?limit=2", owner)
    assert [e["action"] for e in page["items"]] == ["unban", "ban"]
    after = await api_stack.query(f"{url}?limit=2&cursor={page['next_cursor']}", owner)
    assert [e["action"] for e in after["items"]] == ["hold"] and after["next_cursor"] is None
    bans = await api_stack.query(f"{url}?action=ban", owner)
    assert [e["action"] for e in bans["items"]] == ["ban"]


async def test_only_the_channels_staff_may_read_the_views_or_get_a_pass(api_stack: ApiStack) -> None:
    stream, _owner, moderator, stranger = await _stream_with_staff(api_stack)
    base = f"/api/v1/streams/{stream}/moderation"
    for method, path in (("GET", "/held"), ("GET", "/log"), ("POST", "/pass")):
        refused = await api_stack.client.request(method, base + path, headers=stranger.auth)
        assert refused.status_code == 403, (path, refused.text)
        assert refused.headers["content-type"].startswith("application/problem+json")
        anonymous = await api_stack.client.request(method, base + path)
        assert anonymous.status_code == 401, path
        unknown = await api_stack.client.request(
            method, f"/api/v1/streams/no-such-stream/moderation{path}", headers=moderator.auth
        )
        assert unknown.status_code == 404, path
    bad = await api_stack.client.get(f"{base}/log?action=explode", headers=moderator.auth)
    assert bad.status_code == 422
    forged = await api_stack.client.get(f"{base}/held?cursor=bm90LWEtY3Vyc29y", headers=moderator.auth)
    assert forged.status_code == 400 and forged.json()["type"] == "/problems/invalid-cursor"


async def test_a_moderator_pass_is_for_that_moderator_and_stream_and_never_stored(
    api_stack: ApiStack,
) -> None:
    stream, _owner, moderator, _stranger = await _stream_with_staff(api_stack)
    url, headers = (
        f"/api/v1/streams/{stream}/moderation/pass",
        {**moderator.auth, "Idempotency-Key": uuid.uuid4().hex},
    )
    response = await api_stack.client.post(url, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    issued: dict[str, Any] = response.json()
    auth = api_stack.settings.auth
    assert auth.jwt_secret is not None
    passes = ModeratorPasses(
        auth.jwt_secret.get_secret_value(), issuer=auth.jwt_issuer, audience=auth.jwt_audience
    )
    granted = passes.verify(issued["moderator_pass"])
    assert (granted.user_id, granted.stream_id) == (moderator.user_id, stream)
    assert issued["expires_in_s"] == passes.ttl_s
    replayed = await api_stack.client.post(url, headers=headers)  # the idempotency layer kept no copy
    assert replayed.status_code == 409 and issued["moderator_pass"] not in replayed.text
