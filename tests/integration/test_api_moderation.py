"""Chat moderation over REST: who may, what is checked, and the command that reaches the log."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from events.chat import ModerationAction, ModerationActionRequested
from infra.kafka import TopicNames
from projections.positions import parse_position
from tests.integration.test_api_support import ApiStack, User, api_stack

pytestmark = pytest.mark.integration
__all__ = ["api_stack"]


async def _stream_with_staff(stack: ApiStack) -> tuple[str, User, User, User]:
    owner, moderator, stranger = await stack.register(), await stack.register(), await stack.register()
    channel = await stack.command(
        "POST", "/api/v1/channels", owner, {"slug": f"m-{uuid.uuid4().hex[:12]}", "display_name": "M"}
    )
    appointed = await stack.command(
        "PUT", f"/api/v1/channels/{channel['channel_id']}/moderators/{moderator.user_id}", owner
    )
    created = await stack.command(
        "POST", "/api/v1/streams", owner, {"channel_id": channel["channel_id"], "title": "Quarter final"}
    )
    await stack.query(
        f"/api/v1/streams/{created['stream_id']}", after=[*created["positions"], *appointed["positions"]]
    )
    return created["stream_id"], owner, moderator, stranger


async def _logged(stack: ApiStack, position: str) -> ModerationActionRequested:
    """The record at a command's position, read straight from the broker."""
    where = parse_position(position)
    partition = TopicPartition(
        TopicNames(stack.settings.kafka.topic_prefix).physical(where.topic), where.partition
    )
    reader = AIOKafkaConsumer(bootstrap_servers=stack.settings.kafka.bootstrap_servers)
    async with reader:
        reader.assign([partition])
        reader.seek(partition, where.offset)
        record = await reader.getone()
    event = stack.services.codec.decode(record.value)
    assert isinstance(event, ModerationActionRequested)
    return event


async def test_a_channel_moderator_times_out_a_viewer_and_the_command_is_on_the_log(
    api_stack: ApiStack,
) -> None:
    stream_id, _owner, moderator, stranger = await _stream_with_staff(api_stack)
    url = f"/api/v1/streams/{stream_id}/moderation"
    body = {"action": "timeout", "user_id": stranger.user_id, "duration_s": 600, "reason": "spoilers"}
    accepted = await api_stack.command("POST", url, moderator, body, expect=202)
    assert accepted["position"].startswith("chat.moderation:")
    event = await _logged(api_stack, accepted["position"])
    assert (event.stream_id, event.action, event.actor_id) == (
        stream_id,
        ModerationAction.TIMEOUT,
        moderator.user_id,
    )
    assert (event.target_user_id, event.duration_s, event.reason) == (stranger.user_id, 600, "spoilers")


async def test_only_staff_may_moderate_and_targets_are_checked(api_stack: ApiStack) -> None:
    stream_id, owner, _moderator, stranger = await _stream_with_staff(api_stack)
    url = f"/api/v1/streams/{stream_id}/moderation"
    ban = {"action": "ban", "user_id": owner.user_id, "reason": "mutiny"}
    refused = await api_stack.client.post(url, json=ban, headers=stranger.auth)
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    for incomplete in ({"action": "ban"}, {"action": "delete"}, {"action": "timeout", "user_id": "u-1"}):
        response = await api_stack.client.post(url, json=incomplete, headers=owner.auth)
        assert response.status_code == 422, incomplete
    unknown = await api_stack.client.post(
        "/api/v1/streams/no-such-stream/moderation", json={"action": "clear"}, headers=owner.auth
    )
    assert unknown.status_code == 404
    anonymous = await api_stack.client.post(url, json={"action": "clear"})
    assert anonymous.status_code == 401
