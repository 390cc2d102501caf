"""A private broker with TLS + SASL/SCRAM + ACLs (`esports infra up kafka` with ESPORTS_KAFKA__SECURE=1,
in its own run folder and ports; the shared broker on 9092 is not touched), and the platform over it.

- a service's publisher and consumer work over it as that service's user;
- the same user writing a topic its package does not write is refused by the broker
  (TopicAuthorizationFailed, as our NotAuthorized);
- a wrong password fails at once with a clear AuthenticationFailed, and a client without the local
  CA fails the certificate check;
- the processors and the API run as their own users over it: a command's event goes through an
  agent to its projection (stream created -> went live -> the lifecycle agent's decision).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from events.codec import EventCodec
from events.ingest import IngestConnected, IngestProtocol
from events.streams import StreamCreated
from events.topics import CATALOGUE, Topic
from infra.kafka import EventConsumer, EventPublisher, LoggedDeadLetters, TopicAdmin, wait_for_broker
from infra.kafka.errors import AuthenticationFailed, NotAuthorized
from infra.settings import KafkaSettings, Settings
from infra.stack import secure_broker
from schemas import SCHEMAS_DIR
from tests.chaos.load import Api
from tests.chaos.platform import Platform, infrastructure

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    """The private secure broker (one node) and a PostgreSQL and Redis of its own, stopped after."""
    with infrastructure(Settings(), ("postgres", "redis"), KAFKA__SECURE=1, KAFKA__BROKERS=1) as platform:
        asyncio.run(_create_topics(platform.settings.kafka))
        yield platform


async def _create_topics(admin: KafkaSettings) -> None:
    async with TopicAdmin(admin) as topics:
        await topics.ensure(CATALOGUE)


def as_user(platform: Platform, user: str, password: str | None = None) -> KafkaSettings:
    """The private broker's client settings for ``user`` (its own password unless one is given)."""
    kafka = platform.settings.kafka
    secret = {"password": SecretStr(password), "password_file": None} if password else {}
    path = secure_broker.password_file(platform.settings, user)
    return kafka.model_copy(update={"username": user, "password_file": path, **secret})


def _created(name: str) -> StreamCreated:
    return StreamCreated(stream_id=f"s-{uuid.uuid4().hex[:8]}", channel_id="c-1", owner_id="u-1", title=name)


async def test_a_service_publishes_and_reads_its_topic_over_tls_and_scram(platform: Platform) -> None:
    kafka = as_user(platform, "producers")
    codec = EventCodec.load(SCHEMAS_DIR)
    event = _created("secure")
    async with EventPublisher(kafka, codec, producer="api") as publisher:
        position = await publisher.publish(event)
    assert position.topic == Topic.STREAMS
    consumer = EventConsumer(
        kafka,
        codec,
        topics=[Topic.STREAMS],
        group_id=None,
        dead_letters=LoggedDeadLetters("test"),
        from_beginning=True,
    )
    async with consumer:
        async with asyncio.timeout(30):
            async for batch in consumer.batches():
                if any(consumed.event.event_id == event.event_id for consumed in batch):
                    break


async def test_a_service_writing_a_topic_it_does_not_own_is_refused(platform: Platform) -> None:
    # streams belongs to the API (producers); the projector only reads it
    codec = EventCodec.load(SCHEMAS_DIR)
    async with EventPublisher(as_user(platform, "projections"), codec, producer="projector") as publisher:
        with pytest.raises(NotAuthorized, match="TopicAuthorizationFailed"):
            await publisher.publish(_created("not mine"))


async def test_a_wrong_password_fails_with_a_clear_error(platform: Platform) -> None:
    wrong = as_user(platform, "producers", password="not-the-password")
    with pytest.raises(
        AuthenticationFailed, match="refused the SCRAM-SHA-512 credentials of user 'producers'"
    ):
        await wait_for_broker(wrong, timeout_s=10)


async def test_a_client_without_the_local_ca_fails_the_certificate_check(platform: Platform) -> None:
    untrusting = as_user(platform, "producers").model_copy(update={"ssl_cafile": None})
    with pytest.raises(AuthenticationFailed, match="TLS certificate"):
        await wait_for_broker(untrusting, timeout_s=10)


def _as_service(platform: Platform, user: str) -> dict[str, object]:
    return {
        "KAFKA__USERNAME": user,
        "KAFKA__PASSWORD_FILE": secure_broker.password_file(platform.settings, user),
    }


async def test_the_platform_runs_over_the_secure_broker(platform: Platform) -> None:
    """The API, the processors and the projector, each as its own user: a stream created over REST goes
    live when its ingest connects (ingest's user publishes), through the lifecycle agent's decision and
    the projection the API reads."""
    apps = [
        platform.app("api", ("api",), **_as_service(platform, "producers")),
        platform.app("processors", ("processors",), **_as_service(platform, "stream_processors")),
        platform.app("projector", ("projector",), **_as_service(platform, "projections")),
    ]
    for app in apps:
        app.start()
    try:
        for app in apps:
            await asyncio.to_thread(app.wait_healthy, 90)
        api = Api(f"http://127.0.0.1:{apps[0].port}")
        try:
            await _goes_live(platform, api)
        finally:
            await api.close()
    finally:
        for app in apps:
            app.stop()


async def _goes_live(platform: Platform, api: Api) -> None:
    owner = await api.user()
    channel = await api.until_ok(
        "/api/v1/channels", {"slug": f"tls-{uuid.uuid4().hex[:8]}", "display_name": "TLS"}, owner.token
    )
    owner = await api.login(owner.user_id, owner.username)  # the channel made them a streamer
    body = {"channel_id": channel["channel_id"], "title": "Over TLS"}
    stream = (await api.until_ok("/api/v1/streams", body, owner.token))["stream_id"]
    codec = EventCodec.load(SCHEMAS_DIR)
    async with EventPublisher(as_user(platform, "ingest_workers"), codec, producer="ingest") as publisher:
        connected = IngestConnected(
            stream_id=stream, session_id="s1", protocol=IngestProtocol.RTMP, node="n1"
        )
        await publisher.publish(connected)
    async with asyncio.timeout(60):
        while True:
            state = (await api.client.get(f"/api/v1/streams/{stream}")).json().get("state")
            if state == "live":
                return
            await asyncio.sleep(0.5)
