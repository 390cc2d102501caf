"""``POST /api/v1/streams`` through its fast route (producers.routes.stream_creation) answers and
publishes exactly as the FastAPI route does (status, headers, body, CORS, metrics label, Idempotency-Key,
the events on the topic), leaves every other request (bad bodies and tokens, another's channel, slugs,
matches, read-your-writes) to that route, and its cached account and channel facts never outlive a
change of their rows, whichever connection makes it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from typing import Any, cast

import httpx
import jwt
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from psycopg import sql

from events.base import Event
from infra.kafka import TopicNames
from producers.routes import stream_creation
from producers.routes.stream_creation import CREATE_PATH
from producers.store.facts import FactCache
from tests.integration.test_api_accounts import _b64, _claims, _secret
from tests.integration.test_api_conventions import cors_client
from tests.integration.test_api_support import ApiStack, User, api_stack, eventually

pytestmark = pytest.mark.integration
__all__ = ["api_stack"]

ORIGIN = "https://watch.example"
ROUTED = {"content-type": "application/json; charset=utf-8"}  # FastAPI reads it alike; the fast route not


@pytest.fixture
def fast_answers(monkeypatch: pytest.MonkeyPatch) -> list[bytes | None]:
    """What the fast route's work gave for each request it matched (None: handed to FastAPI)."""
    answers: list[bytes | None] = []
    create = stream_creation._create

    async def recorded(scope: Any) -> bytes | None:
        answer = await create(scope)
        answers.append(answer)
        return answer

    monkeypatch.setattr(stream_creation, "_create", recorded)
    return answers


async def _streamer(stack: ApiStack) -> tuple[User, dict[str, Any]]:
    user = await stack.register()
    channel = await stack.command(
        "POST", "/api/v1/channels", user, {"slug": f"perf-{uuid.uuid4().hex[:10]}", "display_name": "P"}
    )
    return user, channel


async def _events_at(
    stack: ApiStack, positions: list[str]
) -> list[tuple[Event, bytes | None, dict[str, bytes]]]:
    """The events recorded at ``positions`` (``topic:partition:offset``), with their keys and headers."""
    names = TopicNames(stack.settings.kafka.topic_prefix)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.settings.kafka.bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        found = []
        for position in positions:
            topic, partition, offset = position.rsplit(":", 2)
            tp = TopicPartition(names.physical(topic), int(partition))
            consumer.assign([tp])
            consumer.seek(tp, int(offset))
            record = await consumer.getone()
            assert record.value is not None and record.offset == int(offset)
            found.append((stack.services.codec.decode(record.value), record.key, dict(record.headers or ())))
        return found
    finally:
        await consumer.stop()


_VARYING = {"event_id", "occurred_at", "stream_id"}


def _comparable(recorded: tuple[Event, bytes | None, dict[str, bytes]]) -> tuple[Any, ...]:
    event, key, headers = recorded
    fields = {k: v for k, v in dataclasses.asdict(event).items() if k not in _VARYING}
    return type(event), fields, key is not None, {k: v for k, v in headers.items() if k != "event_id"}


async def test_the_fast_route_answers_and_publishes_as_the_fastapi_route(
    api_stack: ApiStack, fast_answers: list[bytes | None]
) -> None:
    user, channel = await _streamer(api_stack)
    bodies = [
        {"channel_id": channel["channel_id"], "title": "Finals ✓", "game": "Valorant", "tags": ["a", "b"]},
        {
            "channel_id": channel["channel_id"],
            "title": "Later",
            "language": "fr",
            "role": "pov",
            "scheduled_start": "2031-06-01T18:00:00+02:00",
        },
    ]
    async with cors_client(api_stack, ORIGIN) as client:
        for body in bodies:
            headers = {**user.auth, "Origin": ORIGIN}
            fast = await client.post(CREATE_PATH, json=body, headers=headers)
            routed = await client.post(CREATE_PATH, json=body, headers={**headers, **ROUTED})
            assert fast.status_code == routed.status_code == 201, (fast.text, routed.text)
            assert fast.headers.keys() == routed.headers.keys()
            for name in ("content-type", "access-control-allow-origin", "vary"):
                assert fast.headers.get(name) == routed.headers.get(name), name
            assert (
                fast.json().keys()
                == routed.json().keys()
                == {"event_id", "position", "positions", "stream_id"}
            )
            assert list(fast.json()) == list(routed.json())  # in the same order
            for answer in (fast, routed):  # the same field order and compact encoding, byte for byte
                assert answer.content == json.dumps(answer.json(), separators=(",", ":")).encode()
            assert (
                len(fast.json()["positions"])
                == len(routed.json()["positions"])
                == 1 + ("scheduled_start" in body)
            )
            fast_events = await _events_at(api_stack, fast.json()["positions"])
            routed_events = await _events_at(api_stack, routed.json()["positions"])
            assert [_comparable(e) for e in fast_events] == [_comparable(e) for e in routed_events]
            assert str(fast_events[0][0].event_id) == fast.json()["event_id"]
            assert {cast(Any, e[0]).stream_id for e in fast_events} == {fast.json()["stream_id"]}
    assert [answer is not None for answer in fast_answers] == [True, True]


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["instance"] == CREATE_PATH
    return body


async def test_every_other_request_is_answered_by_the_fastapi_route(
    api_stack: ApiStack, fast_answers: list[bytes | None]
) -> None:
    user, channel = await _streamer(api_stack)
    other = await api_stack.register()
    valid = {"channel_id": channel["channel_id"], "title": "T"}
    json_headers = {**user.auth, "content-type": "application/json"}
    secret = _secret(api_stack)
    expired = jwt.encode(_claims(api_stack, user.user_id, iat=1_600_000_000, exp=1_600_000_600), secret)
    head, _, signature = user.access_token.split(".")
    tampered = f"{head}.{_b64(_claims(api_stack, other.user_id))}.{signature}"
    client = api_stack.client
    assert (
        _problem(await client.post(CREATE_PATH, content=b"{nope", headers=json_headers), 422)["errors"][0][
            "type"
        ]
        == "json_invalid"
    )
    missing = _problem(
        await client.post(CREATE_PATH, json={"channel_id": channel["channel_id"]}, headers=user.auth), 422
    )
    assert missing["errors"][0]["loc"] == ["body", "title"]
    extra = _problem(await client.post(CREATE_PATH, json={**valid, "x": 1}, headers=user.auth), 422)
    assert extra["errors"][0]["type"] == "extra_forbidden"
    for token in (expired, tampered, "not-a-jwt"):
        refused = await client.post(CREATE_PATH, json=valid, headers={"Authorization": f"Bearer {token}"})
        assert _problem(refused, 401) and "www-authenticate" in refused.headers
    assert _problem(await client.post(CREATE_PATH, json=valid, headers=other.auth), 403)["type"] == (
        "/problems/forbidden"
    )
    _problem(
        await client.post(CREATE_PATH, json={**valid, "channel_id": "no-such-channel"}, headers=user.auth),
        404,
    )
    _problem(
        await client.post(CREATE_PATH, json={**valid, "match_id": "no-such-match"}, headers=user.auth), 404
    )
    assert len(fast_answers) == 9 and set(fast_answers) == {None}  # each matched, none answered there
    by_slug = await client.post(CREATE_PATH, json={**valid, "channel_id": channel["slug"]}, headers=user.auth)
    assert by_slug.status_code == 201, by_slug.text
    read_your_writes = {**user.auth, "X-Min-Position": channel["position"]}
    waited = await client.post(CREATE_PATH, json=valid, headers=read_your_writes)
    assert waited.status_code == 201 and "x-read-model-lag" not in waited.headers
    assert _problem(await client.post(CREATE_PATH, json=valid), 401)  # no token: not matched at all
    assert len(fast_answers) == 10 and set(fast_answers) == {None}  # the slug: matched, handed on


async def test_an_admins_right_to_another_channel_is_read_afresh(
    api_stack: ApiStack, fast_answers: list[bytes | None]
) -> None:
    _, channel = await _streamer(api_stack)
    admin = await api_stack.make_admin(await api_stack.register())
    body = {"channel_id": channel["channel_id"], "title": "Admin's"}
    assert (await api_stack.client.post(CREATE_PATH, json=body, headers=admin.auth)).status_code == 201
    await api_stack.services.accounts.set_role(admin.user_id, "viewer")  # revoked: refused at once
    _problem(await api_stack.client.post(CREATE_PATH, json=body, headers=admin.auth), 403)
    assert fast_answers == [None, None]


async def _in_command_schema(stack: ApiStack, statement: str, *values: str) -> None:
    """A change made by another connection, as another API process would make it."""
    async with await psycopg.AsyncConnection.connect(stack.settings.postgres.dsn, autocommit=True) as conn:
        await conn.execute(
            sql.SQL("SET search_path = {}").format(sql.Identifier(stack.namespace.command_schema))
        )
        await conn.execute(statement, values)


async def test_a_deleted_claim_or_account_is_refused_once_its_notice_came(
    api_stack: ApiStack, fast_answers: list[bytes | None]
) -> None:
    facts = api_stack.services.facts
    await eventually(lambda: _true(facts.listening))
    user, channel = await _streamer(api_stack)
    body = {"channel_id": channel["channel_id"], "title": "T"}
    for _ in range(2):
        assert (await api_stack.client.post(CREATE_PATH, json=body, headers=user.auth)).status_code == 201
    assert facts.get("channel_claims", channel["channel_id"]) and facts.get("credentials", user.user_id)
    await _in_command_schema(
        api_stack, "DELETE FROM channel_claims WHERE channel_id = %s", channel["channel_id"]
    )
    await eventually(lambda: _true(facts.get("channel_claims", channel["channel_id"]) is None))
    _problem(await api_stack.client.post(CREATE_PATH, json=body, headers=user.auth), 404)

    user, channel = await _streamer(api_stack)
    body = {"channel_id": channel["channel_id"], "title": "T"}
    assert (await api_stack.client.post(CREATE_PATH, json=body, headers=user.auth)).status_code == 201
    await _in_command_schema(api_stack, "DELETE FROM credentials WHERE user_id = %s", user.user_id)
    await eventually(lambda: _true(facts.get("credentials", user.user_id) is None))
    gone = _problem(await api_stack.client.post(CREATE_PATH, json=body, headers=user.auth), 401)
    assert gone["detail"] == "the account no longer exists"
    assert [answer is not None for answer in fast_answers] == [True, True, False, True, False]


async def _true(value: bool) -> bool:
    return value


async def test_the_cache_answers_only_while_it_hears_the_notices(api_stack: ApiStack) -> None:
    """Its listening connection cut (as by a restart of PostgreSQL): everything kept is forgotten and
    nothing is kept or answered until it listens again."""
    name = f"perf-notices-{uuid.uuid4().hex[:8]}"
    facts = FactCache(api_stack.namespace.command_schema)
    listening = asyncio.create_task(
        facts.listen(f"{api_stack.settings.postgres.dsn} application_name={name}")
    )
    try:
        await eventually(lambda: _true(facts.listening))
        facts.put("channel_claims", "c1", "claim", facts.generation)
        assert facts.get("channel_claims", "c1") == "claim"
        async with await psycopg.AsyncConnection.connect(
            api_stack.settings.postgres.dsn, autocommit=True
        ) as conn:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (name,)
            )
        await eventually(lambda: _true(not facts.listening), timeout_s=10)
        assert facts.get("channel_claims", "c1") is None
        facts.put("channel_claims", "c1", "claim", facts.generation)
        assert facts.get("channel_claims", "c1") is None
        await eventually(lambda: _true(facts.listening))  # back: it listens (and starts empty) again
        assert facts.get("channel_claims", "c1") is None
    finally:
        listening.cancel()


async def test_idempotency_keys_cors_and_metrics_around_the_fast_route(
    api_stack: ApiStack, fast_answers: list[bytes | None]
) -> None:
    user, channel = await _streamer(api_stack)
    labels = {"method": "POST", "route": CREATE_PATH, "status": "201"}
    registry = api_stack.services.metrics.registry
    before = registry.get_sample_value("api_requests_total", labels) or 0.0
    headers = {**user.auth, "Idempotency-Key": uuid.uuid4().hex, "Origin": ORIGIN}
    body = {"channel_id": channel["channel_id"], "title": "Once"}
    async with cors_client(api_stack, ORIGIN) as client:
        first = await client.post(CREATE_PATH, json=body, headers=headers)
        again = await client.post(CREATE_PATH, json=body, headers=headers)
        changed = await client.post(CREATE_PATH, json={**body, "title": "Twice"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    assert (
        first.headers["access-control-allow-origin"] == again.headers["access-control-allow-origin"] == ORIGIN
    )
    assert changed.status_code == 422 and changed.json()["type"] == "/problems/idempotency-key-reused"
    assert len(fast_answers) == 1 and fast_answers[0] == first.content  # ran once, replayed after
    # Counted under the route's template (a replay, answered before routing, is not the route's).
    assert registry.get_sample_value("api_requests_total", labels) == before + 1
