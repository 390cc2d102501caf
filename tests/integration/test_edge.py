"""Edge nodes against the real Kafka: fan-out over two nodes, acks, deletes, held and restored messages,
resume, kill -9, limits.

Simulated: the moderation agent (built separately). ``Moderator`` reads what the edges published
to ``chat.sent`` and publishes the decision to ``chat.messages`` as the agent would.
"""

from __future__ import annotations

import asyncio
import signal
import uuid

import pytest
from websockets.exceptions import InvalidStatus

from events.chat import ChatMessageDeleted, ChatMessageHeld, ChatMessageRestored
from events.codec import EventCodec
from infra.kafka import EventPublisher
from infra.settings import Settings
from infra.tokens import AccessTokens
from tests.integration.test_edge_support import (
    SECRET,
    Client,
    Moderator,
    NodeProcess,
    accepted,
    chat_ids,
    edge_settings,
    http_json,
    offsets,
    running_node,
)
from tests.ports import free_port

pytestmark = pytest.mark.integration


def token(settings: Settings, user: str, role: str = "viewer") -> str:
    auth = settings.auth
    return AccessTokens(SECRET, issuer=auth.jwt_issuer, audience=auth.jwt_audience, ttl_s=900).issue(
        user, role
    )


def stream_id() -> str:
    return f"s-{uuid.uuid4().hex[:8]}"


async def test_200_clients_on_two_nodes_get_each_message_once_in_log_order(
    namespace: Settings, codec: EventCodec
) -> None:
    settings = edge_settings(namespace)
    stream = stream_id()
    async with (
        running_node(settings, codec) as a,
        running_node(settings, codec) as b,
        EventPublisher(settings.kafka, codec, producer="tests") as publisher,
    ):
        moderator = Moderator(settings, codec, publisher)
        await moderator.submitted.start()
        clients = [await Client.open((a, b)[i % 2].port) for i in range(200)]
        await asyncio.gather(*(c.subscribe(stream) for c in clients))
        sender = await Client.open(
            a.port, additional_headers={"Authorization": f"Bearer {token(settings, 'u-1')}"}
        )

        sent: list[str] = []
        for i in range(10):
            await sender.send(type="chat", stream=stream, text=f"hello {i}", nonce=f"n{i}")
            ack = await sender.wait_for(lambda m, i=i: m["type"] == "ack" and m["nonce"] == f"n{i}")
            submitted = await moderator.next_submitted()
            assert (submitted.message_id, submitted.nonce, submitted.text) == (
                ack["message_id"],
                f"n{i}",
                f"hello {i}",
            )
            assert submitted.edge_id == a.node_id and submitted.user_id == "u-1"
            await moderator.accept(submitted)
            sent.append(submitted.message_id)
        deleted = await moderator.delete(stream, sent[3])

        await asyncio.gather(*(c.wait_for(lambda m: m["type"] == "deleted") for c in clients))
        for client in clients:
            assert chat_ids(client) == sent  # exactly once, in the order the log has them
            assert offsets(client) == sorted(offsets(client))
            assert [m["id"] for m in client.of("deleted")] == [sent[3]]
            assert client.of("deleted")[0]["pos"] == f"{deleted.partition}:{deleted.offset}"
        assert a.metrics.deliveries >= 100 * 11 and b.metrics.deliveries >= 100 * 11
        await asyncio.gather(*(c.close() for c in [*clients, sender]))
        await moderator.submitted.stop()


async def test_a_held_message_is_told_to_its_author_and_a_restored_one_comes_back(
    namespace: Settings, codec: EventCodec
) -> None:
    settings = edge_settings(namespace)
    stream = stream_id()
    async with (
        running_node(settings, codec) as node,
        EventPublisher(settings.kafka, codec, producer="tests") as publisher,
    ):
        author = await Client.open(
            node.port, additional_headers={"Authorization": f"Bearer {token(settings, 'u-1')}"}
        )
        viewer = await Client.open(node.port)
        for client in (author, viewer):
            await client.subscribe(stream)
        held = ChatMessageHeld(
            message_id="h1", stream_id=stream, user_id="u-1", display_name="u-1", text="risky", score=0.9
        )
        await publisher.publish(held)
        notice = await author.wait_for(lambda m: m["type"] == "notice" and m.get("code") == "held")
        assert (notice["id"], notice["stream"]) == ("h1", stream) and "reasons" not in notice

        first = accepted(stream, "gg", "m1")
        await publisher.publish(first)
        await publisher.publish(ChatMessageDeleted(message_id="m1", stream_id=stream, deleted_by="mod-1"))
        restored = ChatMessageRestored(
            message_id="m1",
            stream_id=stream,
            user_id="u-1",
            display_name="u-1",
            text="gg",
            sent_at=first.occurred_at,
            restored_by="mod-1",
        )
        position = await publisher.publish(restored)
        for client in (author, viewer):
            again = await client.wait_for(lambda m: m["type"] == "chat" and m.get("restored"))
            original = client.of("chat")[0]
            assert (again["id"], again["at"], again["text"]) == (original["id"], original["at"], "gg")
            assert again["pos"] == f"{position.partition}:{position.offset}" != original["pos"]
        assert not [m for m in viewer.of("notice") if m.get("code") == "held"]  # the author's only
        late = await Client.open(node.port)
        await late.subscribe(stream)  # the backfill has it twice in log order: shown, deleted, restored
        assert [m["type"] for m in late.messages if m["type"] in ("chat", "deleted")] == [
            "chat",
            "deleted",
            "chat",
        ]
        for client in (author, viewer, late):
            await client.close()


async def test_reconnect_with_since_gets_exactly_the_missed_ones(
    namespace: Settings, codec: EventCodec
) -> None:
    settings = edge_settings(namespace)
    stream = stream_id()
    async with (
        running_node(settings, codec) as a,
        running_node(settings, codec) as b,
        EventPublisher(settings.kafka, codec, producer="tests") as publisher,
    ):
        client = await Client.open(a.port)
        await client.subscribe(stream)
        ids = [f"m{i}" for i in range(12)]
        for message_id in ids[:4]:
            await publisher.publish(accepted(stream, message_id, message_id))
        await client.wait_for(lambda m: m.get("id") == ids[3])
        last = client.of("chat")[-1]["pos"]
        await client.close()

        for message_id in ids[4:9]:  # missed while away
            await publisher.publish(accepted(stream, message_id, message_id))
        watcher = await Client.open(b.port)
        await watcher.subscribe(stream)
        await watcher.wait_for(lambda m: m.get("id") == ids[8])  # node b has read them too

        back = await Client.open(b.port)
        marker = await back.subscribe(stream, since=last)
        assert marker["resumed"] is True
        for message_id in ids[9:]:
            await publisher.publish(accepted(stream, message_id, message_id))
        await back.wait_for(lambda m: m.get("id") == ids[-1])
        assert chat_ids(back) == ids[4:]  # no gap, no duplicate

        # A position the window cannot answer (another partition): told to reload, then backfilled.
        partition, offset = last.split(":")
        stale = await Client.open(b.port)
        await stale.subscribe(stream, since=f"{int(partition) + 1}:{offset}")
        assert [m["code"] for m in stale.of("notice")] == ["reload"]
        assert chat_ids(stale) == ids  # the backfill of a fresh subscriber
        for c in (watcher, back, stale):
            await c.close()


async def test_kill_9_of_a_node_its_clients_resume_on_the_other(
    namespace: Settings, codec: EventCodec
) -> None:
    settings = edge_settings(namespace)
    stream = stream_id()
    port = free_port()
    doomed = NodeProcess(settings, port, f"/tmp/edge-{port}.log")
    try:
        await doomed.wait_healthy()
        async with (
            running_node(settings, codec) as survivor,
            EventPublisher(settings.kafka, codec, producer="tests") as publisher,
        ):
            clients = [await Client.open(port) for _ in range(20)]
            await asyncio.gather(*(c.subscribe(stream) for c in clients))
            ids = [f"k{i}" for i in range(10)]
            for message_id in ids[:5]:
                await publisher.publish(accepted(stream, message_id, message_id))
            await asyncio.gather(*(c.wait_for(lambda m: m.get("id") == ids[4]) for c in clients))

            doomed.process.send_signal(signal.SIGKILL)
            await asyncio.gather(*(c.task for c in clients if c.task is not None))
            for message_id in ids[5:8]:
                await publisher.publish(accepted(stream, message_id, message_id))

            resumed = []
            for old in clients:  # as a client does: reconnect elsewhere with the last position
                new = await Client.open(survivor.port)
                await new.subscribe(stream, since=old.of("chat")[-1]["pos"])
                resumed.append((old, new))
            for message_id in ids[8:]:
                await publisher.publish(accepted(stream, message_id, message_id))
            for old, new in resumed:
                await new.wait_for(lambda m: m.get("id") == ids[-1])
                assert chat_ids(old) + chat_ids(new) == ids
                await new.close()
    finally:
        doomed.stop()


async def test_sigterm_drains_clients_with_reconnect_and_1012(namespace: Settings, codec: EventCodec) -> None:
    settings = edge_settings(namespace)
    port = free_port()
    node = NodeProcess(settings, port, f"/tmp/edge-{port}.log")
    try:
        health = await node.wait_healthy()
        assert health["status"] == "ok" and health["kafka_reader"] == "running"
        client = await Client.open(port)
        await client.subscribe(stream_id())
        node.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(client.task, 15)  # type: ignore[arg-type]
        assert [m["code"] for m in client.of("notice")] == ["reconnect"]
        assert client.ws.close_code == 1012
        assert await asyncio.to_thread(node.process.wait, 15) == 0
    finally:
        node.stop()


async def test_oversized_malformed_and_unauthorised_frames(namespace: Settings, codec: EventCodec) -> None:
    settings = edge_settings(namespace)
    stream = stream_id()
    async with running_node(settings, codec) as node:
        client = await Client.open(node.port)
        await client.ws.send("{not json")
        error = await client.wait_for(lambda m: m["type"] == "error")
        assert error["code"] == "bad_request"
        await client.subscribe(stream)  # the connection survived the malformed frame

        await client.send(type="chat", stream=stream, text="hi", nonce="anon")
        denied = await client.wait_for(lambda m: m["type"] == "error" and m.get("nonce") == "anon")
        assert denied["code"] == "unauthorized"

        await client.send(type="auth", token=token(settings, "u-2"))
        await client.wait_for(lambda m: m.get("code") == "authenticated")
        await client.send(type="chat", stream=stream, text="x" * 501, nonce="long")
        too_long = await client.wait_for(lambda m: m["type"] == "error" and m.get("nonce") == "long")
        assert too_long["code"] == "too_long"
        await client.send(type="chat", stream=stream, text="fine", nonce="ok")
        assert (await client.wait_for(lambda m: m["type"] == "ack"))["nonce"] == "ok"

        await client.ws.send("x" * (settings.edge.max_frame_bytes + 1))
        await asyncio.wait_for(client.task, 10)  # type: ignore[arg-type]
        assert client.ws.close_code == 1009

        with pytest.raises(InvalidStatus) as refused:
            await Client.open(node.port, additional_headers={"Origin": "https://evil.example"})
        assert refused.value.response.status_code == 403
        with pytest.raises(InvalidStatus) as unauthorised:
            await Client.open(node.port, additional_headers={"Authorization": "Bearer nope"})
        assert unauthorised.value.response.status_code == 401
        allowed = await Client.open(node.port, additional_headers={"Origin": settings.api.public_url})
        await allowed.close()

        health = await asyncio.to_thread(http_json, f"http://127.0.0.1:{node.port}/health")
        assert health["status"] == "ok" and health["client_errors"] >= 3


async def test_slow_consumer_is_dropped_not_waited_for(namespace: Settings, codec: EventCodec) -> None:
    settings = edge_settings(namespace, send_buffer_bytes=4096)
    stream = stream_id()
    async with (
        running_node(settings, codec) as node,
        EventPublisher(settings.kafka, codec, producer="tests") as publisher,
    ):
        fast = await Client.open(node.port)
        await fast.subscribe(stream)
        slow = await Client.open(node.port, max_queue=1)
        await slow.subscribe(stream)
        slow.task.cancel()  # type: ignore[union-attr]  # stops reading: its socket buffers fill up
        slow.ws.transport.pause_reading()
        # 8 MB: more than the loopback socket buffers hold, so the node's own buffer must grow.
        events = [accepted(stream, "y" * 4000, f"b{i}") for i in range(2000)]
        await publisher.publish_many(events)
        await fast.wait_for(lambda m: m.get("id") == "b1999", timeout_s=60)
        assert node.metrics.drops == 1
        assert len(chat_ids(fast)) == 2000
