"""Channel rules over REST, decided by the real moderation agent (the processors worker of the API
stack): a term blocked with ``POST /streams/{id}/moderation`` refuses a viewer's message, unique chat
refuses a repeat, link policy ``deny`` refuses a link; each change is one ``ChatSettingsChanged``
caused by the request and listed in the moderation log. Bad values are the API's problem+json 422.
"""

from __future__ import annotations

import asyncio
import random
import string
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from events.base import Event
from events.chat import (
    ChatMessageAccepted,
    ChatMessageRejected,
    ChatMessageSubmitted,
    ChatSettingsChanged,
    LinkPolicy,
    RejectionReason,
)
from infra.kafka import DeadLetters, EventConsumer, TopicNames
from tests.integration.test_api_support import ApiStack, User, api_stack, eventually

pytestmark = pytest.mark.integration
__all__ = ["api_stack"]

TIMEOUT_S = 60.0  # the first decision includes the worker's warm-up


class Decisions:
    """``chat.messages`` of the stack's namespace, read in the background."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.arrived = asyncio.Event()

    async def collect(self, consumer: EventConsumer) -> None:
        async for batch in consumer.batches(timeout_ms=100):
            self.events.extend(c.event for c in batch)
            if batch:
                self.arrived.set()

    async def wait(self, found: Callable[[Event], bool]) -> Event:
        deadline = time.monotonic() + TIMEOUT_S
        while not (hits := [e for e in self.events if found(e)]):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no such decision in {TIMEOUT_S}s; have {self.events[-5:]}"
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), remaining)
            except TimeoutError:
                pass
        return hits[0]

    async def about(self, message_id: str) -> Event:
        return await self.wait(lambda e: getattr(e, "message_id", None) == message_id)

    async def caused_by(self, request_id: str) -> ChatSettingsChanged:
        event = await self.wait(lambda e: e.causation_id == request_id)
        assert isinstance(event, ChatSettingsChanged), event
        return event


@pytest.fixture
async def decisions(api_stack: ApiStack) -> AsyncIterator[Decisions]:
    settings = api_stack.settings
    consumer = EventConsumer(
        settings.kafka,
        api_stack.services.codec,
        topics=["chat.messages"],
        group_id=None,
        dead_letters=DeadLetters(
            api_stack.publisher, TopicNames(settings.kafka.topic_prefix).physical("deadletter")
        ),
        from_beginning=True,
    )
    log = Decisions()
    async with consumer:
        task = asyncio.create_task(log.collect(consumer))
        yield log
        task.cancel()


async def _stream_with_staff(stack: ApiStack) -> tuple[str, User, User, User]:
    owner, moderator, viewer = await stack.register(), await stack.register(), await stack.register()
    channel = await stack.command(
        "POST", "/api/v1/channels", owner, {"slug": f"r-{uuid.uuid4().hex[:12]}", "display_name": "R"}
    )
    appointed = await stack.command(
        "PUT", f"/api/v1/channels/{channel['channel_id']}/moderators/{moderator.user_id}", owner
    )
    created = await stack.command(
        "POST", "/api/v1/streams", owner, {"channel_id": channel["channel_id"], "title": "Rules final"}
    )
    await stack.query(
        f"/api/v1/streams/{created['stream_id']}", after=[*created["positions"], *appointed["positions"]]
    )
    return created["stream_id"], owner, moderator, viewer


async def _rule(stack: ApiStack, stream_id: str, who: User, body: dict[str, Any]) -> str:
    """POST the rule; the id of the request it published."""
    accepted = await stack.command("POST", f"/api/v1/streams/{stream_id}/moderation", who, body, expect=202)
    return str(accepted["event_id"])


async def _say(stack: ApiStack, stream_id: str, user: User, text: str) -> ChatMessageSubmitted:
    """A viewer's message as an edge publishes it (``chat.submitted``)."""
    message = ChatMessageSubmitted(
        message_id=f"m-{uuid.uuid4().hex[:10]}",
        stream_id=stream_id,
        user_id=user.user_id,
        display_name=user.username,
        text=text,
        edge_id="edge-test",
    )
    await stack.publisher.publish(message)
    return message


async def _verdict(stack: ApiStack, log: Decisions, stream_id: str, user: User, text: str) -> Event:
    return await log.about((await _say(stack, stream_id, user, text)).message_id)


def _refused(event: Event, reason: RejectionReason) -> bool:
    return isinstance(event, ChatMessageRejected) and event.reason is reason


async def test_rules_set_over_rest_are_applied_by_the_moderation_agent(
    api_stack: ApiStack, decisions: Decisions
) -> None:
    stream_id, owner, moderator, viewer = await _stream_with_staff(api_stack)
    other = await api_stack.register()
    term = "spoil" + "".join(random.choices(string.ascii_lowercase, k=6))  # normalised already (no digits)

    # A term blocked by a moderator over REST refuses a viewer's message with it.
    blocked = await decisions.caused_by(
        await _rule(
            api_stack, stream_id, moderator, {"action": "block_term", "term": term, "reason": "leaks"}
        )
    )
    assert (blocked.stream_id, blocked.actor_id, blocked.reason) == (stream_id, moderator.user_id, "leaks")
    assert (blocked.blocked_terms, blocked.blocked_terms_added) == ((term,), (term,))
    event = await _verdict(api_stack, decisions, stream_id, viewer, f"the ending: {term.upper()}!")
    assert _refused(event, RejectionReason.BLOCKED_TERM), event

    # Unique chat on: the same text from someone else shortly after is refused.
    unique = await decisions.caused_by(
        await _rule(api_stack, stream_id, owner, {"action": "unique_chat", "enabled": True})
    )
    assert unique.unique_chat and unique.blocked_terms == (term,)  # the other rules are kept
    said = f"what a clutch {uuid.uuid4().hex[:6]}"
    assert isinstance(await _verdict(api_stack, decisions, stream_id, viewer, said), ChatMessageAccepted)
    assert _refused(await _verdict(api_stack, decisions, stream_id, other, said), RejectionReason.UNIQUE_CHAT)

    # Link policy deny: a link is refused; the allow-list then lets its domain through.
    deny = await decisions.caused_by(
        await _rule(api_stack, stream_id, moderator, {"action": "link_policy", "link_policy": "deny"})
    )
    assert deny.link_policy is LinkPolicy.DENY
    link = f"clip at example.com/{uuid.uuid4().hex[:6]}"
    assert _refused(await _verdict(api_stack, decisions, stream_id, viewer, link), RejectionReason.LINK)
    listed = await decisions.caused_by(
        await _rule(
            api_stack,
            stream_id,
            moderator,
            {"action": "link_policy", "link_policy": "allowlist", "link_allowlist": ["www.Example.com"]},
        )
    )
    assert (listed.link_policy, listed.link_allowlist) == (LinkPolicy.ALLOWLIST, ("example.com",))
    link = f"clip at example.com/{uuid.uuid4().hex[:6]}"
    assert isinstance(await _verdict(api_stack, decisions, stream_id, viewer, link), ChatMessageAccepted)

    # Unblocked: the term is fine again; the moderation log lists every change with its request.
    unblock_id = await _rule(api_stack, stream_id, owner, {"action": "unblock_term", "term": term})
    unblocked = await decisions.caused_by(unblock_id)
    assert (unblocked.blocked_terms, unblocked.blocked_terms_removed) == ((), (term,))
    fine = f"no more {term} {uuid.uuid4().hex[:6]}"
    assert isinstance(await _verdict(api_stack, decisions, stream_id, viewer, fine), ChatMessageAccepted)

    async def logged() -> list[dict[str, Any]]:
        url = f"/api/v1/streams/{stream_id}/moderation/log?action=settings"
        return [e for e in (await api_stack.query(url, owner))["items"] if e["request_id"] == unblock_id]

    [entry] = await eventually(logged)
    assert entry["actor_id"] == owner.user_id


async def test_rules_from_a_viewer_are_refused_and_bad_values_are_problems(
    api_stack: ApiStack, decisions: Decisions
) -> None:
    stream_id, owner, _moderator, viewer = await _stream_with_staff(api_stack)
    url = f"/api/v1/streams/{stream_id}/moderation"
    refused = await api_stack.client.post(
        url, json={"action": "block_term", "term": "gg"}, headers=viewer.auth
    )
    assert refused.status_code == 403
    for bad, field in (
        ({"action": "block_term"}, "term"),
        ({"action": "block_term", "term": "?!"}, "term"),
        ({"action": "link_policy", "link_policy": "sometimes"}, "link_policy"),
        ({"action": "link_policy", "link_policy": "allowlist"}, "link_allowlist"),
        ({"action": "link_policy", "link_policy": "allowlist", "link_allowlist": ["no domain"]}, "no domain"),
        ({"action": "unique_chat"}, "enabled"),
    ):
        response = await api_stack.client.post(url, json=bad, headers=owner.auth)
        assert response.status_code == 422, bad
        assert response.headers["content-type"].startswith("application/problem+json")
        assert field in response.text, (bad, response.text)
    # Nothing was decided for this stream: no settings change reached chat.messages.
    marker = await _verdict(api_stack, decisions, stream_id, viewer, f"still here {uuid.uuid4().hex[:6]}")
    assert isinstance(marker, ChatMessageAccepted)
    assert not [
        e for e in decisions.events if isinstance(e, ChatSettingsChanged) and e.stream_id == stream_id
    ]
