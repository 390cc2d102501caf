"""An edge node when Kafka goes away: its clients are told sending is paused, writes are refused with an
error (never accepted and lost, never published later), and they are told when it resumes.

Against a private broker (``broker_outage_support``), frozen with SIGSTOP (a node with chat traffic
pauses on its first failed write) and killed with SIGKILL (a quiet node pauses from its own probe).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from edge_ws.messages import CONSUMED_TOPICS
from edge_ws.pause import PROBE_WHILE_PAUSED_S, PROBE_WHILE_SENDING_S
from events.chat import ChatMessageSent
from events.codec import EventCodec
from infra.kafka import FRESH_ANSWER_S
from infra.settings import Settings
from infra.tokens import AccessTokens
from tests.integration.broker_outage_support import PrivateBroker, create_topics, events_on, private_broker
from tests.integration.test_edge_support import SECRET, Client, edge_settings, running_node

pytestmark = pytest.mark.integration

STALLED_S = 5 * FRESH_ANSWER_S

PUBLISH_TIMEOUT_S = 1.5  # the default is 3 s; shorter keeps the file quick, the behaviour is the same
MARGIN_S = 1.5  # a loaded 2-core machine
WRITTEN_TOPICS = (
    "chat.sent",
    "chat.submitted",
    "polls",
    "polls.votes",
    "chat.moderation",
    "viewers.presence",
)


@pytest.fixture(scope="module")
def broker(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBroker]:
    with private_broker(settings, tmp_path_factory.mktemp("kafka")) as private:
        yield private


@pytest.fixture(scope="module")
async def node_settings(broker: PrivateBroker) -> Settings:
    base = broker.settings
    scoped = base.model_copy(
        update={
            "kafka": base.kafka.model_copy(update={"topic_prefix": f"test-{uuid.uuid4().hex[:10]}."}),
            "api": base.api.model_copy(update={"publish_timeout_s": PUBLISH_TIMEOUT_S}),
        }
    )
    await create_topics(scoped, (*CONSUMED_TOPICS, *WRITTEN_TOPICS))
    return edge_settings(scoped)


def token(settings: Settings, user: str) -> str:
    auth = settings.auth
    tokens = AccessTokens(SECRET, issuer=auth.jwt_issuer, audience=auth.jwt_audience, ttl_s=900)
    return tokens.issue(user, "viewer")


async def chatter(port: int, settings: Settings, user: str, stream: str) -> Client:
    client = await Client.open(port, additional_headers={"Authorization": f"Bearer {token(settings, user)}"})
    await client.subscribe(stream)
    return client


async def chat(client: Client, stream: str, text: str, nonce: str) -> tuple[dict[str, Any], float]:
    """Send a chat message; its ack or error, and how long it took."""
    started = time.monotonic()
    await client.send(type="chat", stream=stream, text=text, nonce=nonce)
    answer = await client.wait_for(lambda m: m["type"] in ("ack", "error") and m.get("nonce") == nonce)
    return answer, time.monotonic() - started


def notice(code: str) -> Any:
    return lambda m: m["type"] == "notice" and m["code"] == code


async def test_a_frozen_broker_pauses_chat_refuses_sends_and_resumes(
    broker: PrivateBroker, node_settings: Settings, codec: EventCodec
) -> None:
    stream, run = f"s-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    async with running_node(node_settings, codec) as node:
        sender = await chatter(node.port, node_settings, "u-1", stream)
        viewer = await Client.open(node.port)
        await viewer.subscribe(stream)
        assert (await chat(sender, stream, f"{run} before", "n1"))[0]["type"] == "ack"
        broker.freeze()
        await asyncio.sleep(STALLED_S)  # stalled before the command: its leader is probed, not fresh
        try:
            failed, elapsed = await chat(sender, stream, f"{run} while frozen", "n2")
            assert failed["type"] == "error" and failed["code"] == "unavailable", failed
            assert elapsed <= PUBLISH_TIMEOUT_S + MARGIN_S, f"answered after {elapsed:.2f}s"
            print(f"chat while frozen: error unavailable after {elapsed:.2f}s")
            for client in (sender, viewer):  # everyone is told, not only the one who sent
                paused = await client.wait_for(notice("paused"), timeout_s=MARGIN_S)
                assert paused["since"] <= time.time() * 1000
            refused, elapsed = await chat(sender, stream, f"{run} while paused", "n3")
            assert refused["type"] == "error" and refused["code"] == "paused", refused
            assert elapsed <= MARGIN_S, f"refused after {elapsed:.2f}s, not at once"
            print(f"chat while paused: error paused after {elapsed * 1000:.0f} ms")
            late = await Client.open(node.port)  # arriving during the pause: told right away
            await late.wait_for(notice("paused"), timeout_s=MARGIN_S)
            assert node.health()["sending"] == "paused"
        finally:
            broker.thaw()
        thawed = time.monotonic()
        for client in (sender, viewer, late):
            resumed = await client.wait_for(notice("resumed"), timeout_s=PROBE_WHILE_PAUSED_S + MARGIN_S + 1)
            assert resumed["paused_ms"] > 0
        print(f"resumed notice {time.monotonic() - thawed:.2f}s after the thaw")
        assert (await chat(sender, stream, f"{run} after", "n4"))[0]["type"] == "ack"
        assert node.health()["sending"] == "running" and node.metrics.pauses == 1
        for client in (sender, viewer, late):
            await client.close()
    await asyncio.sleep(1.0)  # anything the frozen broker had buffered is appended by now
    sent = [
        e.text for e in await events_on(node_settings, "chat.sent", codec) if isinstance(e, ChatMessageSent)
    ]
    assert [text for text in sent if text.startswith(run)] == [f"{run} before", f"{run} after"]


async def test_a_quiet_node_pauses_when_the_broker_dies_and_resumes_when_it_is_back(
    broker: PrivateBroker, node_settings: Settings, codec: EventCodec
) -> None:
    stream = f"s-{uuid.uuid4().hex[:8]}"
    async with running_node(node_settings, codec) as node:
        viewer = await chatter(node.port, node_settings, "u-2", stream)
        broker.kill()
        try:
            await viewer.wait_for(
                notice("paused"), timeout_s=PROBE_WHILE_SENDING_S + PUBLISH_TIMEOUT_S + MARGIN_S
            )
            refused, elapsed = await chat(viewer, stream, "while the broker is down", "k1")
            assert refused["code"] == "paused" and elapsed <= MARGIN_S, refused
        finally:
            await broker.restart()
        await viewer.wait_for(notice("resumed"), timeout_s=PROBE_WHILE_PAUSED_S + PUBLISH_TIMEOUT_S + 5)
        assert (await chat(viewer, stream, "back", "k2"))[0]["type"] == "ack"
        await viewer.close()
