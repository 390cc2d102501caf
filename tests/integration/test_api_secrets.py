"""No stream key anywhere but in the rotate response: every topic's raw bytes, every log line (the
API's, the projector's and the lifecycle worker's) and every table are scanned for it."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from infra.kafka import TopicAdmin
from tests.integration.test_api_support import PASSWORD, ApiStack, api_stack

pytestmark = pytest.mark.integration
__all__ = ["api_stack"]


async def _all_topic_bytes(stack: ApiStack) -> tuple[bytes, int]:
    """Keys, values and headers of every record of every topic under the test's prefix."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.settings.kafka.bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        async with TopicAdmin(stack.settings.kafka) as admin:
            names = [
                t for t in await admin._admin.list_topics() if t.startswith(stack.settings.kafka.topic_prefix)
            ]
            described = await admin._admin.describe_topics(names)
        partitions = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
        assert len(names) >= 15, names
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        chunks: list[bytes] = []
        records = 0
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                for record in batch:
                    records += 1
                    chunks += [record.key or b"", record.value or b""]
                    chunks += [name.encode() + value for name, value in record.headers or ()]
        return b"\n".join(chunks), records
    finally:
        await consumer.stop()


async def test_the_stream_key_is_nowhere_but_in_the_rotate_response(api_stack: ApiStack) -> None:
    owner = await api_stack.register()
    channel = await api_stack.command(
        "POST", "/api/v1/channels", owner, {"slug": f"k-{uuid.uuid4().hex[:12]}", "display_name": "K"}
    )
    rotated = await api_stack.client.post(
        f"/api/v1/channels/{channel['channel_id']}/stream-key",
        headers={**owner.auth, "Idempotency-Key": uuid.uuid4().hex},
    )
    key = rotated.json()["stream_key"]
    secret_part = key.removeprefix("live_")
    internal = {"Authorization": f"Bearer {api_stack.services.internal_token}"}
    authorized = await api_stack.client.post(
        "/internal/ingest/authorize", json={"stream_key": key}, headers=internal
    )
    assert authorized.status_code == 200
    wrong = await api_stack.client.post(
        "/internal/ingest/authorize", json={"stream_key": key + "x"}, headers=internal
    )
    assert wrong.status_code == 403 and key not in wrong.text
    # every other response about the channel
    for url in (
        f"/api/v1/channels/{channel['slug']}",
        "/api/v1/channels?limit=100",
        "/api/v1/streams?limit=100",
    ):
        body = await api_stack.query(url, after=rotated.json()["positions"])
        assert secret_part not in str(body)
    await api_stack.query(
        f"/api/v1/streams/{authorized.json()['stream_id']}", after=[authorized.json()["position"]]
    )

    raw, records = await _all_topic_bytes(api_stack)
    assert records >= 5
    assert secret_part.encode() not in raw
    assert key.encode() not in raw
    logs = "\n".join(api_stack.logs.lines) + api_stack.worker.log_text()
    assert len(api_stack.logs.lines) > 10
    assert secret_part not in logs
    tables = await api_stack.all_tables_text()
    assert channel["channel_id"] in tables  # the scan does see the rows
    assert secret_part not in tables


async def test_tokens_and_passwords_are_not_kept_in_tables_or_logs(api_stack: ApiStack) -> None:
    user = await api_stack.register()
    key = {"Idempotency-Key": uuid.uuid4().hex}
    login = await api_stack.client.post(
        "/api/v1/auth/login", json={"username": user.username, "password": PASSWORD}, headers=key
    )
    assert login.status_code == 200 and login.headers["Cache-Control"] == "no-store"
    replay = await api_stack.client.post(
        "/api/v1/auth/login", json={"username": user.username, "password": PASSWORD}, headers=key
    )
    assert replay.status_code == 409 and "access_token" not in replay.text
    refreshed = await api_stack.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": login.json()["refresh_token"]}, headers=key
    )
    assert refreshed.status_code == 200
    secrets = [
        login.json()["access_token"],
        login.json()["refresh_token"],
        refreshed.json()["refresh_token"],
        user.access_token,
        user.refresh_token,
        PASSWORD,
    ]
    tables = await api_stack.all_tables_text()
    logs = "\n".join(api_stack.logs.lines)
    raw, _ = await _all_topic_bytes(api_stack)
    for secret in secrets:
        assert secret not in tables and secret not in logs and secret.encode() not in raw
