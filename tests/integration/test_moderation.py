"""The moderation agent in a real worker process, with the chat projections, against real services.

Causes go in on ``users``, ``streams``, ``chat.submitted`` and ``chat.moderation``; decisions come out on
``chat.messages``; the projector service (in-process) turns them into the PostgreSQL archive and the
Redis recent list. Held messages are approved and denied, a deleted message is undeleted, channel
rules change by chat command and land in ``chat_settings``. Then the worker restarts and replayed
causes must not yield new decisions.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from events.base import Event
from events.chat import (
    ChatMessageAccepted,
    ChatMessageDeleted,
    ChatMessageHeld,
    ChatMessageRejected,
    ChatMessageRestored,
    ChatMessageSubmitted,
    ChatSettingsChanged,
    ModerationAction,
    ModerationActionRequested,
    RejectionReason,
    UserBanned,
    UserUnbanned,
)
from events.codec import EventCodec
from events.streams import StreamCreated
from events.users import ModeratorAppointed
from infra.kafka import DeadLetters, EventConsumer, EventPublisher, TopicAdmin, TopicNames
from infra.settings import Settings
from projections.chat_recent import ChatKeys
from stream_processors.topology import internal_topics
from tests.integration.projections_support import read_model, redis_space, running_service, unique_schema
from tests.integration.test_lifecycle import WorkerProcess

pytestmark = pytest.mark.integration

TIMEOUT_S = 20.0


class ChatLog:
    """Reads chat.messages in the background."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.arrived = asyncio.Event()

    async def collect(self, consumer: EventConsumer) -> None:
        async for batch in consumer.batches(timeout_ms=100):
            self.events.extend(c.event for c in batch)
            if batch:
                self.arrived.set()

    async def wait(self, found: Callable[[Event], bool], timeout_s: float = TIMEOUT_S) -> Event:
        deadline = time.monotonic() + timeout_s
        while True:
            hits = [e for e in self.events if found(e)]
            if hits:
                return hits[0]
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no such decision in {timeout_s}s; have {self.events[-5:]}"
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), remaining)
            except TimeoutError:
                pass

    async def about(self, message_id: str) -> Event:
        return await self.wait(lambda e: getattr(e, "message_id", None) == message_id)


@pytest.fixture
async def kafka_io(namespace: Settings, codec: EventCodec) -> AsyncIterator[tuple[EventPublisher, ChatLog]]:
    names = TopicNames(namespace.kafka.topic_prefix)
    async with EventPublisher(namespace.kafka, codec, producer="tests.moderation") as publisher:
        consumer = EventConsumer(
            namespace.kafka,
            codec,
            topics=["chat.messages"],
            group_id=None,
            dead_letters=DeadLetters(publisher, names.physical("deadletter")),
            from_beginning=True,
        )
        log = ChatLog()
        async with consumer:
            task = asyncio.create_task(log.collect(consumer))
            yield publisher, log
            task.cancel()
    async with TopicAdmin(namespace.kafka) as admin:
        await admin.delete([names.physical(t.name) for t in internal_topics(1)])


def message(stream: str, user: str, text: str) -> ChatMessageSubmitted:
    return ChatMessageSubmitted(
        message_id=f"m-{uuid.uuid4().hex[:10]}",
        stream_id=stream,
        user_id=user,
        display_name=user.title(),
        text=text,
        edge_id="edge-test",
    )


def request(stream: str, actor: str, action: ModerationAction, **kw: object) -> ModerationActionRequested:
    return ModerationActionRequested(stream_id=stream, action=action, actor_id=actor, **kw)  # type: ignore[arg-type]


async def test_moderation_end_to_end(
    namespace: Settings, tmp_path: Path, kafka_io: tuple[EventPublisher, ChatLog]
) -> None:
    publisher, log = kafka_io
    stream = f"stream-{uuid.uuid4().hex[:8]}"
    await publisher.publish(ModeratorAppointed(user_id="mod", channel_id="chan", appointed_by="owner"))
    await publisher.publish(
        StreamCreated(stream_id=stream, channel_id="chan", owner_id="owner", title="final")
    )
    worker = WorkerProcess(namespace, tmp_path / "faust", tmp_path / "worker.log")
    worker.env["ESPORTS_CHAT__BLOCKED_TERMS"] = '["badword"]'
    schema = unique_schema()
    worker.start()
    try:
        async with (
            read_model(namespace, schema) as pool,
            redis_space(namespace) as (client, prefix),
            running_service(namespace, schema, prefix),
        ):
            await worker.wait_healthy()
            await _scenario(worker, publisher, log, stream, pool, client, ChatKeys(prefix))
    finally:
        worker.kill()


async def _scenario(
    worker: WorkerProcess,
    publisher: EventPublisher,
    log: ChatLog,
    stream: str,
    pool: AsyncConnectionPool,
    client: aioredis.Redis,
    keys: ChatKeys,
) -> None:
    started = time.monotonic()
    hello, other = message(stream, "troll", "hello all"), message(stream, "viewer", "gg wp")
    await publisher.publish_many([hello, other])
    assert isinstance(await log.about(hello.message_id), ChatMessageAccepted), worker.log_tail()
    assert isinstance(await log.about(other.message_id), ChatMessageAccepted)
    print(f"\nfirst decisions after {time.monotonic() - started:.2f}s (worker warm-up included)")
    evasive = message(stream, "viewer", "what a b\u0430dw0rd")
    rejected = await _decided(publisher, log, evasive)
    assert isinstance(rejected, ChatMessageRejected) and rejected.reason is RejectionReason.BLOCKED_TERM

    # a viewer's ban does nothing: the troll's next message (same partition, after it) is accepted
    await publisher.publish(request(stream, "viewer", ModerationAction.BAN, target_user_id="troll"))
    assert isinstance(
        await _decided(publisher, log, message(stream, "troll", "still here")), ChatMessageAccepted
    )

    # a moderator's ban takes effect on the next message
    ban = request(stream, "mod", ModerationAction.BAN, target_user_id="troll", reason="spam")
    await publisher.publish(ban)
    banned = await log.wait(lambda e: isinstance(e, UserBanned))
    assert (banned.actor_id, banned.reason) == ("mod", "spam")  # type: ignore[attr-defined]
    refused = await _decided(publisher, log, message(stream, "troll", "hello?"))
    assert isinstance(refused, ChatMessageRejected) and refused.reason is RejectionReason.BANNED

    # delete: the event, the archive row hidden, the recent list without it
    await publisher.publish(
        request(stream, "mod", ModerationAction.DELETE, target_message_id=other.message_id)
    )
    deleted = await log.wait(lambda e: isinstance(e, ChatMessageDeleted))
    assert deleted.deleted_by == "mod"  # type: ignore[attr-defined]
    await _eventually(lambda: _visibility(pool, other.message_id), (False, "deleted"))
    await _eventually(lambda: _visibility(pool, hello.message_id), (False, "banned"))
    await _eventually(lambda: _recent_ids(client, keys, stream), [])

    # unban restores what the ban hid
    await publisher.publish(
        request(stream, "owner", ModerationAction.UNBAN, target_user_id="troll", reason="ok")
    )
    await log.wait(lambda e: isinstance(e, UserUnbanned))
    await _eventually(lambda: _visibility(pool, hello.message_id), (True, None))
    troll_messages = [
        e.message_id for e in log.events if isinstance(e, ChatMessageAccepted) and e.user_id == "troll"
    ]
    await _eventually(lambda: _recent_ids(client, keys, stream), troll_messages)
    await _eventually(
        lambda: _logged_actions(pool, stream), [("ban", "spam"), ("delete", ""), ("unban", "ok")]
    )
    await _held_rules_and_undelete(publisher, log, stream, pool, client, keys, (hello, other))

    # restart: replayed causes decide nothing new
    assert await worker.stop() == 0, worker.log_tail()
    worker.start()
    await worker.wait_healthy()
    before = len([e for e in log.events if getattr(e, "message_id", None) == hello.message_id])
    await publisher.publish_many([hello, ban])
    sentinel = message(stream, "viewer", "after the restart")
    assert isinstance(await _decided(publisher, log, sentinel), ChatMessageAccepted)
    decided_hello = {e.event_id for e in log.events if getattr(e, "message_id", None) == hello.message_id}
    assert len(decided_hello) == 1 and before == 1
    assert len({e.event_id for e in log.events if isinstance(e, UserBanned)}) == 1
    assert await worker.stop() == 0, worker.log_tail()


async def _held_rules_and_undelete(
    publisher: EventPublisher,
    log: ChatLog,
    stream: str,
    pool: AsyncConnectionPool,
    client: aioredis.Redis,
    keys: ChatKeys,
    first_two: tuple[ChatMessageSubmitted, ChatMessageSubmitted],
) -> None:
    """``first_two``: the stream's first messages; the second was deleted."""
    deleted = first_two[1]
    # a channel rule by chat command: an event, the settings table, and the rule in force
    await publisher.publish(message(stream, "mod", "/block Sp0iler"))
    rule = await log.wait(lambda e: isinstance(e, ChatSettingsChanged) and bool(e.blocked_terms_added))
    assert rule.blocked_terms == ("spoiler",) and rule.actor_id == "mod"  # type: ignore[attr-defined]
    refused = await _decided(publisher, log, message(stream, "viewer", "huge spoiler ahead"))
    assert isinstance(refused, ChatMessageRejected) and refused.reason is RejectionReason.BLOCKED_TERM
    await _eventually(lambda: _settings_terms(pool, stream), ["spoiler"])

    # held messages: approved by chat command, denied through chat.moderation
    first, second = message(stream, "viewer", "ba dword"), message(stream, "viewer", "ba-dword")
    assert isinstance(await _decided(publisher, log, first), ChatMessageHeld)
    assert isinstance(await _decided(publisher, log, second), ChatMessageHeld)
    await publisher.publish(message(stream, "mod", f"/approve {first.message_id}"))
    approved = await log.wait(
        lambda e: isinstance(e, ChatMessageAccepted) and e.message_id == first.message_id
    )
    assert approved.approved_by == "mod"  # type: ignore[attr-defined]
    deny = request(stream, "owner", ModerationAction.DENY, target_message_id=second.message_id, reason="no")
    await publisher.publish(deny)
    denied = await log.wait(
        lambda e: isinstance(e, ChatMessageRejected) and e.reason is RejectionReason.DENIED
    )
    assert (denied.message_id, denied.denied_by) == (second.message_id, "owner")  # type: ignore[attr-defined]
    await _eventually(lambda: _visibility(pool, first.message_id), (True, None))
    assert await _visibility(pool, second.message_id) is None  # never shown, never archived

    # undelete: the deleted message is back in the archive and the recent list, in its place
    await publisher.publish(
        request(stream, "mod", ModerationAction.UNDELETE, target_message_id=deleted.message_id, reason="oops")
    )
    restored = await log.wait(lambda e: isinstance(e, ChatMessageRestored))
    assert (restored.message_id, restored.text) == (deleted.message_id, deleted.text)  # type: ignore[attr-defined]
    await _eventually(lambda: _visibility(pool, deleted.message_id), (True, None))
    # sent together by two senders, decided on their partitions: the stream's order is chat.messages'
    firsts = {m.message_id for m in first_two}
    first_ids = [
        e.message_id for e in log.events if isinstance(e, ChatMessageAccepted) and e.message_id in firsts
    ]
    await _eventually(lambda: _first_recent_two(client, keys, stream), first_ids)
    await _eventually(
        lambda: _logged_actions(pool, stream),
        [
            ("ban", "spam"),
            ("delete", ""),
            ("unban", "ok"),
            ("settings", ""),
            ("hold", "obfuscated_term"),
            ("hold", "obfuscated_term"),
            ("approve", ""),
            ("deny", "no"),
            ("undelete", "oops"),
        ],
    )


async def _settings_terms(pool: AsyncConnectionPool, stream: str) -> list[str] | None:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT blocked_terms FROM chat_settings WHERE stream_id = %s", (stream,))
        row = await cur.fetchone()
    return None if row is None else list(row[0])


async def _first_recent_two(client: aioredis.Redis, keys: ChatKeys, stream: str) -> list[str]:
    return (await _recent_ids(client, keys, stream))[:2]


async def _decided(publisher: EventPublisher, log: ChatLog, cause: ChatMessageSubmitted) -> Event:
    await publisher.publish(cause)
    return await log.about(cause.message_id)


async def _visibility(pool: AsyncConnectionPool, message_id: str) -> tuple[bool, str | None] | None:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT visible, hidden_reason FROM chat_messages WHERE message_id = %s", (message_id,)
        )
        row = await cur.fetchone()
    return None if row is None else (row[0], row[1])


async def _recent_ids(client: aioredis.Redis, keys: ChatKeys, stream: str) -> list[str]:
    return [json.loads(item)["message_id"] for item in await client.lrange(keys.recent(stream), 0, -1)]


async def _logged_actions(pool: AsyncConnectionPool, stream: str) -> list[tuple[str, str]]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT action, reason FROM moderation_log WHERE stream_id = %s ORDER BY at", (stream,)
        )
        return [(a, r) for a, r in await cur.fetchall()]


async def _eventually(read: Callable[[], object], expected: object, timeout_s: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await read()  # type: ignore[misc]
        if value == expected:
            return
        assert time.monotonic() < deadline, f"{value!r} != {expected!r}"
        await asyncio.sleep(0.1)
