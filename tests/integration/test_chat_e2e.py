"""Chat end to end, nothing simulated: the API, the real processors worker, two edge nodes, 200 clients.

``open_api_stack`` gives an isolated namespace with the API (in-process, ASGI), the projector and the
processors worker as a subprocess (``esports processors``: the lifecycle *and* the moderation agent).
A streamer registers, opens a channel (so owns it and moderates it) and a stream that goes live
(the ingest's ``IngestConnected``, decided by the lifecycle agent). Two edge nodes run in this
process with the API's JWT secret; 200 websocket clients, half on each node, watch the stream:

1. Four signed-in chatters on both nodes send ten messages at once: each sender is acked after the
   broker (``chat.sent``, keyed by sender), the chat workers accept them, and every client gets each
   exactly once, in the same order (``chat.messages``'), each sender's in the order sent.
2. A viewer's ``/ban`` is refused to that viewer alone; the owner's ``/ban name reason`` typed in chat
   is acted on: its ``state`` reaches every client, and the banned viewer's next message is rejected
   to its author alone.
3. The owner deletes an accepted message with a ``mod`` frame: its ``deleted`` reaches every client.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from events.codec import EventCodec
from events.ingest import IngestConnected, IngestProtocol
from infra.settings import Settings
from tests.integration.test_api_support import ApiStack, User, open_api_stack, stream_state
from tests.integration.test_edge_support import Client, edge_settings, running_node

pytestmark = pytest.mark.integration

CLIENTS = 200
TIMEOUT_S = 20.0
CHAT_LOG = ("chat", "deleted", "state")  # the chat-log messages (their `pos` is in chat.messages)


def offset(pos: str) -> int:
    return int(pos.split(":")[1])


def log_entries(client: Client) -> list[dict[str, Any]]:
    """The client's chat-log messages after its subscribe marker (not the `live` snapshot)."""
    return [
        m
        for m in client.messages
        if m["type"] in CHAT_LOG and (m["type"] != "state" or m["kind"] not in ("subscribed", "live"))
    ]


def rejections(client: Client) -> list[dict[str, Any]]:
    return [m for m in client.of("notice") if m["code"] == "rejected"]


async def everyone(clients: list[Client], predicate: Any) -> None:
    await asyncio.gather(*(c.wait_for(predicate, timeout_s=TIMEOUT_S) for c in clients))


async def live_stream(stack: ApiStack) -> tuple[User, list[User], str]:
    """A streamer (channel owner, token re-issued with its new role), three viewers, a live stream."""
    owner, *viewers = await asyncio.gather(*(stack.register() for _ in range(4)))
    channel = await stack.command(
        "POST", "/api/v1/channels", owner, {"slug": f"c-{uuid.uuid4().hex[:12]}", "display_name": "C"}
    )
    await stack.relogin(owner)  # the channel made it a streamer
    created = await stack.command(
        "POST", "/api/v1/streams", owner, {"channel_id": channel["channel_id"], "title": "Grand final"}
    )
    stream = created["stream_id"]
    await stack.publisher.publish(
        IngestConnected(stream_id=stream, session_id=uuid.uuid4().hex, protocol=IngestProtocol.RTMP, node="t")
    )
    await stream_state(stack, stream, "live", timeout_s=TIMEOUT_S)
    return owner, viewers, stream


async def test_chat_through_the_real_agent_reaches_200_clients_on_two_nodes(
    settings: Settings, codec: EventCodec, tmp_path: Path
) -> None:
    started = time.monotonic()
    async with open_api_stack(settings, tmp_path) as stack:
        owner, (ana, bob, troll), stream = await live_stream(stack)
        # The stack's settings (namespace, the API's JWT secret) with the edge limits of the edge tests.
        edge = edge_settings(stack.settings).model_copy(update={"auth": stack.settings.auth})
        async with running_node(edge, codec) as a, running_node(edge, codec) as b:
            ready = time.monotonic()

            async def signed_in(user: User, port: int) -> Client:
                return await Client.open(port, additional_headers=user.auth)

            chatters = {
                "ana": await signed_in(ana, a.port),
                "troll": await signed_in(troll, a.port),
                "bob": await signed_in(bob, b.port),
                "owner": await signed_in(owner, b.port),
            }
            anonymous = [await Client.open((a, b)[i % 2].port) for i in range(CLIENTS - len(chatters))]
            clients = [*chatters.values(), *anonymous]
            assert len(clients) == CLIENTS
            await asyncio.gather(*(c.subscribe(stream) for c in clients))
            for client in clients:  # the live snapshot comes with the subscribe once the node has read
                # the decision (a node started a moment ago may still be catching up): never twice
                kinds = [m["kind"] for m in client.of("state")]
                assert kinds in (["live", "subscribed"], ["subscribed"]), client.messages
            users = {"ana": ana, "troll": troll, "bob": bob, "owner": owner}

            try:
                await _scenario(stream, chatters, users, clients)
            except BaseException:
                print(stack.worker.log_text()[-4000:])
                raise
            finally:
                await asyncio.gather(*(c.close() for c in clients))
            assert a.metrics.deliveries >= CLIENTS // 2 * 13 and b.metrics.deliveries >= CLIENTS // 2 * 13
        print(
            f"\nstack up in {ready - started:.1f}s, scenario {time.monotonic() - ready:.1f}s "
            f"(200 clients, 2 nodes)"
        )
    print(f"total {time.monotonic() - started:.1f}s with teardown")


async def _scenario(
    stream: str,
    chatters: dict[str, Client],
    users: dict[str, User],
    clients: list[Client],
) -> None:
    # 1. Ten messages from four senders on both nodes, sent at once (each sender's in its order).
    script = [
        ("ana", "gl hf everyone"),
        ("bob", "what a clutch in round one"),
        ("troll", "first time watching this team"),
        ("owner", "welcome to the grand final"),
        ("ana", "that smoke was perfect"),
        ("bob", "eco round incoming"),
        ("ana", "the crowd is loud today"),
        ("troll", "who is casting this one"),
        ("bob", "overtime please"),
        ("ana", "gg"),
    ]

    async def send_all(name: str) -> list[dict[str, Any]]:
        mine = [(i, text) for i, (who, text) in enumerate(script) if who == name]
        for i, text in mine:
            await chatters[name].send(type="chat", stream=stream, text=text, nonce=f"n{i}")
        return [
            await chatters[name].wait_for(lambda m, i=i: m["type"] == "ack" and m["nonce"] == f"n{i}")
            for i, _ in mine
        ]

    acks = {ack["nonce"]: ack for batch in await asyncio.gather(*map(send_all, users)) for ack in batch}
    assert len(acks) == len(script) and {a["stream"] for a in acks.values()} == {stream}
    # Stored in chat.sent keyed by sender: each sender's on one partition, in the order sent. The
    # stream's order is chat.messages', where the chat workers' decisions land: every client's.
    sender_of = {acks[f"n{i}"]["message_id"]: (who, text) for i, (who, text) in enumerate(script)}
    for name in users:
        mine = [acks[f"n{i}"]["pos"] for i, (who, _) in enumerate(script) if who == name]
        assert len({p.split(":")[0] for p in mine}) == 1 and [offset(p) for p in mine] == sorted(
            map(offset, mine)
        )
    for message_id in sender_of:
        await everyone(clients, lambda m, i=message_id: m["type"] == "chat" and m["id"] == i)
    expected = [m["id"] for m in clients[0].of("chat")]
    assert sorted(expected) == sorted(sender_of)  # each exactly once
    for client in clients:
        shown = client.of("chat")
        assert [m["id"] for m in shown] == expected  # each exactly once, in log order
        assert [offset(m["pos"]) for m in shown] == sorted({offset(m["pos"]) for m in shown})
    for name in users:  # a sender's messages in the order sent
        sent = [acks[f"n{i}"]["message_id"] for i, (who, _) in enumerate(script) if who == name]
        assert [m for m in expected if sender_of[m][0] == name] == sent
    for message in chatters["ana"].of("chat"):
        who, text = sender_of[message["id"]]
        assert (message["user"], message["text"], message["stream"]) == (users[who].user_id, text, stream)
        assert message["badges"] == (["streamer"] if who == "owner" else [])
        assert isinstance(message["media_time_ms"], int)  # the agent's media clock (from the ingest)

    # 2. A ban: refused from a viewer, effective from the owner on the very next message.
    troll = users["troll"]
    await chatters["bob"].send(type="chat", stream=stream, text=f"/ban {troll.username}", nonce="bob-ban")
    bob_ban = await chatters["bob"].wait_for(lambda m: m.get("nonce") == "bob-ban")
    refused = await chatters["bob"].wait_for(
        lambda m: m["type"] == "notice" and m.get("id") == bob_ban["message_id"], timeout_s=TIMEOUT_S
    )
    assert (refused["code"], refused["reason"]) == ("rejected", "other"), refused

    ban_text = f"/ban {troll.username} spamming the chat"
    await chatters["owner"].send(type="chat", stream=stream, text=ban_text, nonce="ban")
    ban_ack = await chatters["owner"].wait_for(lambda m: m.get("nonce") == "ban")
    assert ban_ack["type"] == "ack", ban_ack
    # The ban is decided by the stream's moderation, then reaches the troll's partition of chat.sent
    # (before its decision is published): the troll's next message once they see it is refused.
    await chatters["troll"].wait_for(lambda m: m["type"] == "state" and m.get("kind") == "ban", TIMEOUT_S)
    await chatters["troll"].send(type="chat", stream=stream, text="am I still here", nonce="after-ban")
    after_ban = await chatters["troll"].wait_for(lambda m: m.get("nonce") == "after-ban")
    assert after_ban["type"] == "ack"
    told = await chatters["troll"].wait_for(
        lambda m: m["type"] == "notice" and m.get("id") == after_ban["message_id"], timeout_s=TIMEOUT_S
    )
    assert (told["code"], told["reason"], told["stream"]) == ("rejected", "banned", stream), told
    await chatters["ana"].send(type="chat", stream=stream, text="bye troll", nonce="sentinel")
    sentinel = (await chatters["ana"].wait_for(lambda m: m.get("nonce") == "sentinel"))["message_id"]
    # Its ack says it is stored in chat.sent; its decision (chat.messages) comes from ana's chat
    # partition, the delete's from the stream's moderation: wait for it before deleting, or the two may
    # land in either order (seen under load).
    await everyone(clients, lambda m: m["type"] == "chat" and m["id"] == sentinel)

    # 3. The owner deletes an accepted message (bob's first) with a `mod` frame.
    victim = next(m for m in expected if sender_of[m][0] == "bob")
    await chatters["owner"].send(
        type="mod", stream=stream, action="delete", message_id=victim, reason="spoiler", nonce="del"
    )
    assert (await chatters["owner"].wait_for(lambda m: m.get("nonce") == "del"))["type"] == "ack"
    await everyone(clients, lambda m: m["type"] == "deleted")

    # Every client: the same chat log, in log order; the refused ones seen only by their senders.
    for client in clients:
        entries = log_entries(client)
        assert [(m["type"], m.get("id") or m.get("user")) for m in entries] == [
            *(("chat", m) for m in expected),
            ("state", troll.user_id),
            ("chat", sentinel),
            ("deleted", victim),
        ], entries[-4:]
        ban, deleted = entries[-3], entries[-1]
        assert (ban["kind"], ban["reason"]) == ("ban", "spamming the chat")
        assert (deleted["by"], deleted["reason"]) == (users["owner"].user_id, "spoiler")
        positions = [offset(m["pos"]) for m in entries]
        assert positions == sorted(set(positions))
    assert [m["id"] for m in rejections(chatters["bob"])] == [bob_ban["message_id"]]
    assert [m["id"] for m in rejections(chatters["troll"])] == [after_ban["message_id"]]
    others = [c for c in clients if c not in (chatters["bob"], chatters["troll"])]
    assert not [m for c in others for m in rejections(c)]
