"""The edge's moderator route against the real Kafka: held messages reach the connections that showed a
moderator pass for the stream, and no viewer's; a pass for another user or stream is refused; the
channel-rule actions sent as ``mod`` frames are published with their fields."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from edge_ws.protocol import LogPosition
from events.chat import (
    ChatMessageAccepted,
    ChatMessageHeld,
    ChatMessageRejected,
    LinkPolicy,
    ModerationAction,
    ModerationActionRequested,
    RejectionReason,
)
from events.codec import EventCodec
from events.topics import Topic
from infra.kafka import DeadLetters, EventConsumer, EventPublisher
from infra.moderator_passes import ModeratorPasses
from infra.settings import Settings
from infra.tokens import AccessTokens
from tests.integration.test_edge_support import SECRET, Client, edge_settings, running_node

pytestmark = pytest.mark.integration


def _token(settings: Settings, user: str) -> dict[str, str]:
    auth = settings.auth
    tokens = AccessTokens(SECRET, issuer=auth.jwt_issuer, audience=auth.jwt_audience, ttl_s=900)
    return {"Authorization": f"Bearer {tokens.issue(user, 'viewer')}"}


def _pass(settings: Settings, user: str, stream: str) -> str:
    auth = settings.auth
    return ModeratorPasses(SECRET, issuer=auth.jwt_issuer, audience=auth.jwt_audience).issue(user, stream)


def _held(stream: str, message_id: str) -> ChatMessageHeld:
    return ChatMessageHeld(
        message_id=message_id,
        stream_id=stream,
        user_id="u-author",
        display_name="Author",
        text=f"risky {message_id}",
        score=0.8,
        reasons=("link",),
    )


async def test_held_messages_and_their_resolution_reach_moderators_only(
    namespace: Settings, codec: EventCodec
) -> None:
    settings = edge_settings(namespace)
    stream, elsewhere = f"s-{uuid.uuid4().hex[:8]}", f"s-{uuid.uuid4().hex[:8]}"
    async with (
        running_node(settings, codec) as node,
        EventPublisher(settings.kafka, codec, producer="tests") as publisher,
    ):
        moderator = await Client.open(node.port, additional_headers=_token(settings, "u-mod"))
        author = await Client.open(node.port, additional_headers=_token(settings, "u-author"))
        viewer = await Client.open(node.port)
        other_mod = await Client.open(node.port, additional_headers=_token(settings, "u-other"))
        for client in (moderator, author, viewer):
            await client.subscribe(stream)
        await moderator.send(
            type="moderate", stream=stream, nonce="n1", **{"pass": _pass(settings, "u-mod", stream)}
        )
        await moderator.wait_for(lambda m: m["type"] == "ack" and m.get("nonce") == "n1")
        await other_mod.send(
            type="moderate", stream=elsewhere, nonce="n2", **{"pass": _pass(settings, "u-other", elsewhere)}
        )
        await other_mod.wait_for(lambda m: m["type"] == "ack" and m.get("nonce") == "n2")

        await publisher.publish_many([_held(stream, "h1"), _held(stream, "h2")])
        approve = ChatMessageAccepted(
            message_id="h1",
            stream_id=stream,
            user_id="u-author",
            display_name="Author",
            text="risky h1",
            approved_by="u-mod",
        )
        deny = ChatMessageRejected(
            message_id="h2",
            stream_id=stream,
            user_id="u-author",
            reason=RejectionReason.DENIED,
            detail="nope",
            denied_by="u-mod",
        )
        positions = await publisher.publish_many([approve, deny])
        last = await moderator.wait_for(lambda m: m["type"] == "resolved" and m["id"] == "h2")
        assert LogPosition.parse(last["pos"]) == LogPosition(positions[1].partition, positions[1].offset)
        queue = [(m["type"], m["id"]) for m in moderator.messages if m["type"] in ("held", "resolved")]
        assert queue == [("held", "h1"), ("held", "h2"), ("resolved", "h1"), ("resolved", "h2")]
        held = moderator.of("held")[0]
        assert (held["text"], held["reasons"], held["user"]) == ("risky h1", ["link"], "u-author")
        assert [(m["outcome"], m["by"]) for m in moderator.of("resolved")] == [
            ("approved", "u-mod"),
            ("denied", "u-mod"),
        ]
        await viewer.wait_for(lambda m: m["type"] == "chat" and m["id"] == "h1")  # the approved one, for all
        for client in (viewer, author, other_mod):
            assert not client.of("held") and not client.of("resolved")
            assert "risky h2" not in str(client.messages)
        for client in (moderator, author, viewer, other_mod):
            await client.close()


async def test_a_pass_must_be_the_connections_user_and_the_streams(
    namespace: Settings, codec: EventCodec
) -> None:
    settings = edge_settings(namespace)
    stream = f"s-{uuid.uuid4().hex[:8]}"
    async with running_node(settings, codec) as node:
        anonymous = await Client.open(node.port)
        await anonymous.send(
            type="moderate", stream=stream, nonce="a", **{"pass": _pass(settings, "u-mod", stream)}
        )
        refused = await anonymous.wait_for(lambda m: m["type"] == "error" and m.get("nonce") == "a")
        assert refused["code"] == "unauthorized"
        someone = await Client.open(node.port, additional_headers=_token(settings, "u-someone"))
        for nonce, moderator_pass, code in (
            ("b", _pass(settings, "u-mod", stream), "forbidden"),  # someone else's pass
            ("c", _pass(settings, "u-someone", "s-other"), "forbidden"),  # another stream's
            ("d", "not-a-pass", "unauthorized"),
            ("e", _token(settings, "u-someone")["Authorization"].removeprefix("Bearer "), "unauthorized"),
        ):
            await someone.send(type="moderate", stream=stream, nonce=nonce, **{"pass": moderator_pass})
            answer = await someone.wait_for(lambda m, n=nonce: m.get("nonce") == n)
            assert (answer["type"], answer["code"]) == ("error", code), nonce
        assert node.hub.moderators == {}
        for client in (anonymous, someone):
            await client.close()


async def test_rule_actions_sent_as_mod_frames_are_published_with_their_fields(
    namespace: Settings, codec: EventCodec
) -> None:
    """``block_term``, ``unblock_term``, ``link_policy`` and ``unique_chat`` over the ``mod`` frame reach
    ``chat.moderation`` as the REST route would publish them; malformed ones are refused, not published."""
    settings = edge_settings(namespace)
    stream = f"s-{uuid.uuid4().hex[:8]}"
    frames = [
        {"action": "block_term", "term": "spoiler", "reason": "leaks"},
        {"action": "unblock_term", "term": "spoiler"},
        {"action": "link_policy", "link_policy": "allowlist", "link_allowlist": ["WWW.Example.com"]},
        {"action": "link_policy", "link_policy": "deny"},
        {"action": "unique_chat", "enabled": True},
    ]
    refused = [
        {"action": "block_term"},
        {"action": "link_policy", "link_policy": "sometimes"},
        {"action": "link_policy", "link_policy": "allowlist"},
        {"action": "link_policy", "link_policy": "allowlist", "link_allowlist": ["no domain"]},
        {"action": "unique_chat", "enabled": "yes"},
        {"action": "ban", "user": "u-x", "term": "spoiler"},
    ]
    async with running_node(settings, codec) as node:
        moderator = await Client.open(node.port, additional_headers=_token(settings, "u-mod"))
        for i, frame in enumerate(refused):
            await moderator.send(type="mod", stream=stream, nonce=f"r{i}", **frame)
            answer = await moderator.wait_for(lambda m, n=f"r{i}": m.get("nonce") == n)
            assert (answer["type"], answer["code"]) == ("error", "bad_request"), frame
        for i, frame in enumerate(frames):
            await moderator.send(type="mod", stream=stream, nonce=f"a{i}", **frame)
            answer = await moderator.wait_for(lambda m, n=f"a{i}": m.get("nonce") == n)
            assert answer["type"] == "ack", answer
        await moderator.close()

    published: list[ModerationActionRequested] = []
    async with (
        EventPublisher(settings.kafka, codec, producer="tests") as publisher,
        EventConsumer(
            settings.kafka,
            codec,
            topics=[Topic.CHAT_MODERATION.value],
            group_id=None,
            dead_letters=DeadLetters(publisher, "deadletter"),
            from_beginning=True,
        ) as requests,
    ):

        async def collect() -> None:
            async for consumed in requests:
                if (
                    isinstance(consumed.event, ModerationActionRequested)
                    and consumed.event.stream_id == stream
                ):
                    published.append(consumed.event)
                    if len(published) == len(frames):
                        return

        await asyncio.wait_for(collect(), 30)
    assert [(e.action, e.actor_id) for e in published] == [
        (ModerationAction(f["action"]), "u-mod") for f in frames
    ]
    block, unblock, allowlist, deny, unique = published
    assert (block.term, block.reason, unblock.term) == ("spoiler", "leaks", "spoiler")
    assert (allowlist.link_policy, allowlist.link_allowlist) == (LinkPolicy.ALLOWLIST, ("www.example.com",))
    assert (deny.link_policy, deny.link_allowlist, unique.enabled) == (LinkPolicy.DENY, (), True)
    assert block.enabled is None and unique.term == "" and unique.link_policy is None
