"""Commands when Kafka goes away: a 503 problem with Retry-After within ``api.publish_timeout_s``,
nothing published behind the caller's back after it, and an Idempotency-Key retry once Kafka is back
that does the work exactly once; the API also starts (and answers /health) without Kafka.

Against a private broker (``broker_outage_support``) that is frozen (SIGSTOP: connections still open,
bytes still accepted by the host, no answer) and killed (SIGKILL: connections refused), then brought
back. PostgreSQL and Redis are the shared ones, in the test's own schemas and key prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
import redis.asyncio as aioredis
from psycopg import sql

from events.channels import ChannelCreated
from events.codec import EventCodec
from events.streams import StreamCreated
from events.users import UserRegistered
from infra.kafka import FRESH_ANSWER_S, EventPublisher, NotPublished, PublishInDoubt
from infra.settings import Settings
from producers.auth.passwords import Passwords
from producers.services import Namespace, Services
from tests.integration.broker_outage_support import PrivateBroker, create_topics, events_on, private_broker
from tests.integration.test_api_support import FAST_HASHER, PASSWORD
from web.app import create_app

pytestmark = pytest.mark.integration

STALLED_S = 5 * FRESH_ANSWER_S

PUBLISH_TIMEOUT_S = 2.0  # the default is 3 s; shorter keeps the file quick, the behaviour is the same
RETRY_AFTER_S = 7
MARGIN_S = 1.5  # the request's own work (password hash, SQL) and a loaded 2-core machine
TOPICS = ("users", "channels", "streams")


@dataclass
class Api:
    """An API process's app on its own services, talked to over ASGI."""

    services: Services
    client: httpx.AsyncClient

    async def post(self, url: str, body: dict[str, Any], *, key: str = "", token: str = "") -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return await self.client.post(url, json=body, headers=headers)

    async def timed_post(self, url: str, body: dict[str, Any], **kwargs: str) -> tuple[httpx.Response, float]:
        started = time.monotonic()
        response = await self.post(url, body, **kwargs)
        return response, time.monotonic() - started


@pytest.fixture(scope="module")
def broker(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBroker]:
    with private_broker(settings, tmp_path_factory.mktemp("kafka")) as private:
        yield private


@pytest.fixture(scope="module")
async def api_settings(broker: PrivateBroker) -> Settings:
    base = broker.settings
    scoped = base.model_copy(
        update={
            "kafka": base.kafka.model_copy(update={"topic_prefix": f"test-{uuid.uuid4().hex[:10]}."}),
            "api": base.api.model_copy(
                update={"publish_timeout_s": PUBLISH_TIMEOUT_S, "retry_after_s": RETRY_AFTER_S}
            ),
        }
    )
    await create_topics(scoped, TOPICS)
    return scoped


@contextlib.asynccontextmanager
async def running_api(settings: Settings) -> AsyncIterator[Api]:
    """The API's own composition (``Services.open`` + ``create_app``) in its own schemas."""
    tag = uuid.uuid4().hex[:10]
    namespace = Namespace(read_schema=f"rm_{tag}", command_schema=f"cmd_{tag}", redis_prefix=f"test-{tag}:")
    try:
        async with Services.open(settings, namespace, passwords=Passwords(FAST_HASHER)) as services:
            transport = httpx.ASGITransport(app=create_app(settings, services), client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://api", timeout=60) as client:
                yield Api(services, client)
    finally:
        await _drop(settings, namespace)


async def _drop(settings: Settings, namespace: Namespace) -> None:
    async with await psycopg.AsyncConnection.connect(settings.postgres.dsn, autocommit=True) as conn:
        for schema in (namespace.read_schema, namespace.command_schema):
            await conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    client = aioredis.Redis(host=settings.redis.host, port=settings.redis.port, db=settings.redis.db)
    try:
        keys = [k async for k in client.scan_iter(match=f"{namespace.redis_prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(scope="module")
async def api(api_settings: Settings) -> AsyncIterator[Api]:
    async with running_api(api_settings) as running:
        yield running


def assert_fast_503(response: httpx.Response, elapsed_s: float) -> dict[str, Any]:
    """A 503 problem+json with the configured Retry-After, answered within the publish timeout."""
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["retry-after"] == str(RETRY_AFTER_S)
    assert elapsed_s <= PUBLISH_TIMEOUT_S + MARGIN_S, f"answered after {elapsed_s:.2f}s"
    print(f"{response.request.method} {response.request.url.path}: 503 after {elapsed_s:.2f}s")
    problem = response.json()
    assert problem["status"] == 503 and problem["type"] == "/problems/service-unavailable"
    assert "nothing was recorded" in problem["detail"]
    return dict(problem)


async def register(api: Api, username: str, *, key: str = "") -> tuple[httpx.Response, float]:
    body = {"username": username, "password": PASSWORD}
    return await api.timed_post("/api/v1/auth/register", body, key=key)


async def streamer(api: Api) -> tuple[str, str]:
    """A registered user with a channel (while Kafka is up): (access token, channel id)."""
    username = f"u{uuid.uuid4().hex[:12]}"
    assert (await register(api, username))[0].status_code == 201
    login = await api.post("/api/v1/auth/login", {"username": username, "password": PASSWORD})
    token = login.json()["access_token"]
    channel = await api.post("/api/v1/channels", {"slug": username, "display_name": username}, token=token)
    assert channel.status_code in (200, 201, 202), channel.text
    login = await api.post("/api/v1/auth/login", {"username": username, "password": PASSWORD})
    return login.json()["access_token"], channel.json()["channel_id"]


async def test_a_frozen_broker_gets_503_fast_nothing_later_and_the_retry_done_once(
    broker: PrivateBroker, api_settings: Settings, api: Api, codec: EventCodec
) -> None:
    token, channel_id = await streamer(api)
    username, title = f"u{uuid.uuid4().hex[:12]}", f"t-{uuid.uuid4().hex[:8]}"
    stream = {"channel_id": channel_id, "title": title}
    broker.freeze()
    await asyncio.sleep(STALLED_S)  # stalled before the command: its leader is probed, not fresh
    try:
        refused, elapsed = await register(api, username, key="reg-1")
        assert_fast_503(refused, elapsed)
        refused, elapsed = await api.timed_post("/api/v1/streams", stream, key="stream-1", token=token)
        assert_fast_503(refused, elapsed)
        health = await api.client.get("/health")
        assert health.status_code == 503 and not health.json()["checks"]["kafka"]["ok"]
        await an_api_starts_and_fails_fast_without_kafka(api_settings)
    finally:
        broker.thaw()
    await asyncio.sleep(1.0)  # whatever the broker had buffered while frozen is appended by now

    retried, _ = await register(api, username, key="reg-1")
    assert retried.status_code == 201, retried.text
    again, _ = await register(api, username, key="reg-1")
    assert again.headers.get("idempotent-replayed") == "true" and again.json() == retried.json()
    created, _ = await api.timed_post("/api/v1/streams", stream, key="stream-1", token=token)
    assert created.status_code == 201, created.text

    registered = [e for e in await events_on(api_settings, "users", codec) if isinstance(e, UserRegistered)]
    assert [e.user_id for e in registered if e.username == username] == [retried.json()["user_id"]]
    streams = [e for e in await events_on(api_settings, "streams", codec) if isinstance(e, StreamCreated)]
    assert [e.stream_id for e in streams if e.title == title] == [created.json()["stream_id"]]


async def an_api_starts_and_fails_fast_without_kafka(settings: Settings) -> None:
    """A second API process started while Kafka is away comes up, reports it, and fails fast."""
    started = time.monotonic()
    async with running_api(settings) as fresh:
        assert time.monotonic() - started <= PUBLISH_TIMEOUT_S + MARGIN_S + 2.0  # + migrations
        health = await fresh.client.get("/health")
        assert health.status_code == 503
        assert not health.json()["checks"]["kafka"]["ok"] and health.json()["checks"]["postgres"]["ok"]
        refused, elapsed = await register(fresh, f"u{uuid.uuid4().hex[:12]}")
        assert_fast_503(refused, elapsed)


async def test_a_killed_broker_gets_503_at_once_and_a_restarted_one_takes_the_retry_once(
    broker: PrivateBroker, api_settings: Settings, api: Api, codec: EventCodec
) -> None:
    token, channel_id = await streamer(api)
    username = f"u{uuid.uuid4().hex[:12]}"
    broker.kill()
    await asyncio.sleep(STALLED_S)
    refused, elapsed = await register(api, username, key="reg-2")
    assert_fast_503(refused, elapsed)
    async with running_api(api_settings) as fresh:  # started without Kafka: connects on first use
        assert (await fresh.client.get("/health")).status_code == 503
        await broker.restart()
        retried, _ = await register(api, username, key="reg-2")
        assert retried.status_code == 201, retried.text
        later, _ = await register(fresh, f"u{uuid.uuid4().hex[:12]}")
        assert later.status_code == 201, later.text
    created, _ = await api.timed_post(
        "/api/v1/streams", {"channel_id": channel_id, "title": "after"}, token=token
    )
    assert created.status_code == 201, created.text
    registered = [e for e in await events_on(api_settings, "users", codec) if isinstance(e, UserRegistered)]
    assert [e.user_id for e in registered if e.username == username] == [retried.json()["user_id"]]
    assert len({e.user_id for e in registered}) == len(registered)  # no registration twice
    assert [e for e in await events_on(api_settings, "channels", codec) if isinstance(e, ChannelCreated)]


async def test_an_outcome_unknown_keeps_its_idempotency_key_and_the_username(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In doubt (Kafka may still append the event) nothing is undone and the key is not run twice:
    the same key gets the same answer back, and the username stays taken."""

    async def stalled(*args: object, **kwargs: object) -> None:
        raise PublishInDoubt("a broker stalled holding the record")

    monkeypatch.setattr(api.services.bus._publisher, "publish_many", stalled)
    username = f"u{uuid.uuid4().hex[:12]}"
    first, _ = await register(api, username, key="reg-3")
    assert first.status_code == 503 and first.json()["type"] == "/problems/outcome-unknown"
    assert first.headers["retry-after"] == str(RETRY_AFTER_S) and "x-idempotency-outcome" not in first.headers
    monkeypatch.undo()
    again, _ = await register(api, username, key="reg-3")
    assert again.status_code == 503 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert (await register(api, username, key="reg-4"))[0].status_code == 409


async def test_past_the_probe_queued_records_are_taken_back_and_sent_ones_are_in_doubt(
    broker: PrivateBroker, api_settings: Settings, codec: EventCodec, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the probe saves commands from, forced by skipping it: a frozen broker takes the first
    record's bytes (in flight: PublishInDoubt, the producer is retired), the second waits in aiokafka's
    queue behind it (taken back: NotPublished) and never reaches the log; a fresh producer then works."""

    async def answered(*args: object) -> set[int]:
        return set()  # as if every leader had just answered

    run = uuid.uuid4().hex[:8]
    async with EventPublisher(api_settings.kafka, codec, producer="tests.outage") as publisher:
        await publisher.publish(stream_created(f"{run}-before"), timeout_s=PUBLISH_TIMEOUT_S)
        monkeypatch.setattr(publisher, "_leaders_answer", answered)
        broker.freeze()
        try:
            on_the_wire = asyncio.create_task(publisher.publish(stream_created(f"{run}-sent"), timeout_s=2.0))
            await asyncio.sleep(0.5)  # its produce request is written to the frozen broker's socket
            with pytest.raises(NotPublished):
                await publisher.publish(stream_created(f"{run}-queued"), timeout_s=2.0)
            with pytest.raises(PublishInDoubt):
                await on_the_wire
        finally:
            broker.thaw()
        monkeypatch.undo()
        await publisher.publish(stream_created(f"{run}-after"), timeout_s=PUBLISH_TIMEOUT_S)
    await asyncio.sleep(1.0)
    titles = [
        e.title for e in await events_on(api_settings, "streams", codec) if isinstance(e, StreamCreated)
    ]
    ours = {title for title in titles if title.startswith(run)}
    assert {f"{run}-before", f"{run}-after"} <= ours and f"{run}-queued" not in ours
    print(f"in doubt, then {'appended' if f'{run}-sent' in ours else 'not appended'} by the thawed broker")


def stream_created(title: str) -> StreamCreated:
    return StreamCreated(stream_id=str(uuid.uuid4()), channel_id="c-outage", owner_id="u-outage", title=title)
