"""Notifications end to end on the real stack: the lifecycle and notifications agents (Faust, a
subprocess), the projector, the API and an edge node.

A follower connected to an edge receives the go-live notification; after reconnecting finds it in the
inbox and marks it read; a non-follower gets nothing; a tournament's followers are told when a match
starts; restarting the agent (stopped mid-run, or killed) never issues a notification twice: every
notification id is on the ``notifications`` topic once, once in the inbox, and pushed once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from events.codec import EventCodec
from events.ingest import IngestConnected, IngestProtocol
from events.notifications import NotificationIssued, NotificationKind
from events.topics import spec
from events.users import ChannelFollowed, NotificationsRead
from infra.kafka import TopicAdmin, TopicNames
from infra.settings import Settings
from stream_processors.notifications.notifier import notification_id
from stream_processors.topology import internal_topics
from tests.integration.test_api_support import ApiStack, User, eventually, open_api_stack, stream_state
from tests.integration.test_edge_support import Client, edge_settings, running_node

pytestmark = pytest.mark.integration

TIMEOUT_S = 60.0


async def issued_records(settings: Settings, codec: EventCodec) -> list[NotificationIssued]:
    """Every NotificationIssued on the test's ``notifications`` topic, read to its current end."""
    topic = TopicNames(settings.kafka.topic_prefix).physical("notifications")
    async with TopicAdmin(settings.kafka) as admin:
        (state,) = await admin.states([spec("notifications")])
    partitions = [TopicPartition(topic, p) for p in range(state.partitions)]
    assert partitions, f"no partitions of {topic}"
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[NotificationIssued] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found += [e for r in records if isinstance(e := codec.decode(r.value), NotificationIssued)]
        return found
    finally:
        await consumer.stop()


async def channel_with_stream(stack: ApiStack, name: str) -> tuple[str, str]:
    owner = await stack.register()
    channel = await stack.command(
        "POST", "/api/v1/channels", owner, {"slug": f"n-{uuid.uuid4().hex[:12]}", "display_name": name}
    )
    await stack.relogin(owner)  # the channel made it a streamer
    created = await stack.command(
        "POST", "/api/v1/streams", owner, {"channel_id": channel["channel_id"], "title": "Grand final"}
    )
    return channel["channel_id"], created["stream_id"]


async def go_live(stack: ApiStack, stream_id: str) -> None:
    """What an ingest worker does once the publisher connected; the lifecycle agent decides StreamWentLive."""
    await stack.publisher.publish(
        IngestConnected(
            stream_id=stream_id, session_id=uuid.uuid4().hex, protocol=IngestProtocol.RTMP, node="t"
        )
    )
    await stream_state(stack, stream_id, "live", timeout_s=TIMEOUT_S)


async def follow(stack: ApiStack, user: User, kind: str, target: str) -> None:
    await stack.command("PUT", f"/api/v1/me/follows/{kind}/{target}", user, expect=202)


def notices(client: Client) -> list[dict[str, Any]]:
    return [m for m in client.of("notice") if m["code"] == "notification"]


async def inbox(stack: ApiStack, user: User, query: str = "", *, count: int | None = None) -> dict[str, Any]:
    """The user's inbox, once it holds ``count`` items (the projector is asynchronous)."""

    async def probe() -> dict[str, Any] | None:
        page = dict(await stack.query(f"/api/v1/me/notifications{query}", user))
        return page if count is None or len(page["items"]) == count else None

    return dict(await eventually(probe, timeout_s=TIMEOUT_S))


@pytest.fixture
async def stack(settings: Settings, tmp_path: Path) -> Any:
    async with open_api_stack(settings, tmp_path) as opened:
        yield opened
    # The Faust changelogs the worker created (the stack deletes only the catalogue's topics).
    async with TopicAdmin(opened.settings.kafka) as admin:
        existing = {state.name for state in await admin.states(internal_topics(1)) if state.exists}
        await admin.delete(sorted(existing))


def edge_of(stack: ApiStack) -> Settings:
    """The stack's settings (namespace, the API's JWT secret) with the edge tests' limits."""
    return edge_settings(stack.settings).model_copy(update={"auth": stack.settings.auth})


async def test_a_follower_is_told_live_finds_it_in_the_inbox_and_marks_it_read(
    stack: ApiStack, codec: EventCodec
) -> None:
    channel_id, stream_id = await channel_with_stream(stack, "Notify Cup")
    fan, other_fan, bystander = await asyncio.gather(*(stack.register() for _ in range(3)))
    await follow(stack, fan, "channels", channel_id)
    await follow(stack, other_fan, "channels", channel_id)
    async with running_node(edge_of(stack), codec) as node:
        fan_ws = await Client.open(node.port, additional_headers=fan.auth)
        bystander_ws = await Client.open(node.port, additional_headers=bystander.auth)
        connected = time.monotonic()
        live = asyncio.create_task(go_live(stack, stream_id))
        pushed = await fan_ws.wait_for(lambda m: m.get("code") == "notification", timeout_s=TIMEOUT_S)
        # A figure, not a check (speed is measured in bench/): ingest connect -> lifecycle agent ->
        # notifications agent -> edge -> the follower's socket.
        print(f"go-live to notification on the follower's socket: {time.monotonic() - connected:.3f} s")
        await live
        assert pushed["kind"] == "stream_live" and pushed["url"] == f"/live/{stream_id}"
        assert pushed["title"] == "Notify Cup is live" and pushed["body"] == "Grand final"
        await fan_ws.close()  # the fan leaves, then comes back through the API

        page = await inbox(stack, fan, count=1)
        (item,) = page["items"]
        assert item["notification_id"] == pushed["id"] and item["read"] is False
        assert (item["kind"], item["title"], item["url"]) == (
            "stream_live",
            "Notify Cup is live",
            pushed["url"],
        )
        assert page["unread_count"] == 1 and page["next_cursor"] is None

        read = await stack.command("POST", "/api/v1/me/notifications/read", fan, {"ids": [pushed["id"]]})
        after = await stack.query("/api/v1/me/notifications", fan, after=read["positions"])
        assert after["unread_count"] == 0 and after["items"][0]["read"] is True
        assert (await stack.query("/api/v1/me/notifications?unread=true", fan))["items"] == []

        other = await inbox(stack, other_fan, count=1)
        assert other["unread_count"] == 1  # one follower's read is not another's
        nobody = await stack.query("/api/v1/me/notifications", bystander)
        assert nobody == {"items": [], "unread_count": 0, "next_cursor": None}
        assert notices(bystander_ws) == []
        await bystander_ws.close()

    records = await issued_records(stack.settings, codec)
    assert sorted(r.user_id for r in records) == sorted([fan.user_id, other_fan.user_id])
    assert {r.notification_id for r in records} >= {pushed["id"]}


async def test_bad_read_requests_are_refused_and_others_ids_ignored(stack: ApiStack) -> None:
    user, someone = await stack.register(), await stack.register()
    url = "/api/v1/me/notifications/read"
    bad: list[dict[str, Any]] = [{}, {"ids": []}, {"ids": ["x"]}, {"all": True, "ids": [str(uuid.uuid4())]}]
    for body in [*bad, {"all": False}, {"ids": [str(uuid.uuid4())] * 101}, {"all": True, "extra": 1}]:
        await stack.command("POST", url, user, body, expect=422)
    await stack.command("POST", url, None, {"all": True}, expect=401)
    await stack.command("GET", "/api/v1/me/notifications?cursor=!!", user, expect=422)
    await stack.command("GET", "/api/v1/me/notifications?cursor=abc", user, expect=400)
    # ids of someone else's notifications (they need not exist yet) change nothing of theirs
    read = await stack.command("POST", url, user, {"ids": [notification_id("cause", someone.user_id)]})
    assert read["position"].startswith("users:")
    assert (await stack.query("/api/v1/me/notifications", user, after=read["positions"]))["items"] == []


async def start_match(stack: ApiStack, organizer: User, tournament_id: str, round_name: str) -> None:
    url = f"/api/v1/tournaments/{tournament_id}/matches"
    body = {"teams": ["G2", "FNC"], "scheduled_start": "2030-06-14T17:00:00Z", "round_name": round_name}
    scheduled = await stack.command("POST", url, organizer, body, expect=201)
    match_url = f"/api/v1/matches/{scheduled['match_id']}"
    await stack.query(match_url, after=scheduled["positions"])
    await stack.command("POST", f"{match_url}/start", organizer, {})


async def restart(stack: ApiStack, *, kill: bool) -> None:
    """The agents' worker stopped (SIGTERM: a clean stop, offsets committed) or killed, then started again."""
    if kill:
        assert stack.worker.process is not None
        stack.worker.process.kill()  # whatever was not committed is read again
        stack.worker.process.wait()
    else:
        await stack.worker.stop()
    stack.worker.start()
    await stack.worker.wait_ready()


async def everyone_told(sockets: list[Client], kind: str, body: str = "") -> None:
    for ws in sockets:
        await ws.wait_for(
            lambda m: m.get("kind") == kind and (not body or m.get("body") == body), timeout_s=TIMEOUT_S
        )


async def test_match_start_tells_tournament_followers_and_restarts_issue_nothing_twice(
    stack: ApiStack, codec: EventCodec
) -> None:
    channel_id, stream_id = await channel_with_stream(stack, "Restart Cup")
    organizer = await stack.register()
    await stack.command(
        "POST", "/api/v1/channels", organizer, {"slug": f"o-{uuid.uuid4().hex[:12]}", "display_name": "Org"}
    )
    await stack.relogin(organizer)
    tournament = await stack.command(
        "POST",
        "/api/v1/tournaments",
        organizer,
        {"name": "Notify Masters", "game": "CS2", "starts_at": "2030-06-14T15:00:00Z"},
        expect=201,
    )
    tournament_id = tournament["tournament_id"]
    await stack.query(f"/api/v1/tournaments/{tournament_id}", after=tournament["positions"])
    fans = await asyncio.gather(*(stack.register() for _ in range(3)))
    fan_ids = {fan.user_id for fan in fans}
    for fan in fans:
        await follow(stack, fan, "channels", channel_id)
        await follow(stack, fan, "tournaments", tournament_id)
    async with running_node(edge_of(stack), codec) as node:
        sockets = [await Client.open(node.port, additional_headers=fan.auth) for fan in fans]
        await go_live(stack, stream_id)
        await everyone_told(sockets, "stream_live")

        await restart(stack, kill=False)
        await start_match(stack, organizer, tournament_id, "Semi-final")
        await everyone_told(sockets, "match_starting", "G2 vs FNC · Semi-final")
        told = [m for m in notices(sockets[0]) if m["kind"] == "match_starting"]
        assert told[0]["url"] == f"/tournaments/{tournament_id}"
        assert told[0]["title"] == "Notify Masters: a match is starting"
        records = await issued_records(stack.settings, codec)
        assert Counter(r.kind.value for r in records if r.user_id in fan_ids) == {
            "stream_live": 3,
            "match_starting": 3,
        }
        assert set(Counter(r.notification_id for r in records).values()) == {1}  # not even on the topic

        # Killed, a worker may decide an uncommitted cause again: the same ids, so nobody is told twice.
        await restart(stack, kill=True)
        await start_match(stack, organizer, tournament_id, "Final")  # same partition: read past the first
        await everyone_told(sockets, "match_starting", "G2 vs FNC · Final")
        for ws in sockets:
            kinds = Counter(m["kind"] for m in notices(ws))
            assert kinds == {"stream_live": 1, "match_starting": 2}, notices(ws)
            assert len({m["id"] for m in notices(ws)}) == 3
            await ws.close()

    records = await issued_records(stack.settings, codec)
    mine = [r for r in records if r.user_id in fan_ids]
    assert len({r.notification_id for r in mine}) == 9
    by_id: dict[str, set[uuid.UUID]] = {}
    for r in records:
        by_id.setdefault(r.notification_id, set()).add(r.event_id)
    assert all(ids == {uuid.UUID(n)} for n, ids in by_id.items())  # a re-decision is the same event
    for fan in fans:
        page = await inbox(stack, fan, count=3)
        assert page["unread_count"] == 3
        assert [i["kind"] for i in page["items"]] == ["match_starting", "match_starting", "stream_live"]


def note(user: User, n: int, at: datetime) -> NotificationIssued:
    """A notification as the agent publishes it (its id derived from a cause, the event id the same)."""
    nid = notification_id(f"cause-{n}", user.user_id)
    return NotificationIssued(
        event_id=uuid.UUID(nid),
        occurred_at=at,
        notification_id=nid,
        user_id=user.user_id,
        kind=NotificationKind.STREAM_LIVE,
        causation_id=f"cause-{n}",
        title=f"Channel {n} is live",
        url=f"/live/s-{n}",
    )


async def test_inbox_pages_dedupes_and_marks_all_read_whatever_order_the_events_come_in(
    stack: ApiStack,
) -> None:
    user, other = await stack.register(), await stack.register()
    t0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    notes = [note(user, n, t0 + timedelta(minutes=n)) for n in range(5)]
    # A read that reaches the read model before the notification it names (topics are not ordered).
    early = NotificationsRead(user_id=user.user_id, notification_ids=(note(user, 9, t0).notification_id,))
    applied = await stack.publisher.publish(early)
    assert (await stack.query("/api/v1/me/notifications", user, after=[str(applied)]))["items"] == []
    positions = [await stack.publisher.publish(n) for n in [*notes, notes[2], note(other, 0, t0)]]
    positions.append(await stack.publisher.publish(note(user, 9, t0 - timedelta(days=1))))
    after = [str(p) for p in positions]

    seen: list[dict[str, Any]] = []
    cursor = ""
    for _ in range(4):
        page = await stack.query(f"/api/v1/me/notifications?limit=2{cursor}", user, after=after)
        seen += page["items"]
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    expected = [n.notification_id for n in reversed(notes)] + [note(user, 9, t0).notification_id]
    assert [i["notification_id"] for i in seen] == expected  # newest first, the republished one once
    assert [i["read"] for i in seen] == [False] * 5 + [True]  # the early read found its notification
    assert page["unread_count"] == 5

    read_all = await stack.command("POST", "/api/v1/me/notifications/read", user, {"all": True})
    later = note(user, 7, datetime.now(UTC) + timedelta(minutes=5))  # created after the "all" moment
    after = [*read_all["positions"], str(await stack.publisher.publish(later))]
    page = await stack.query("/api/v1/me/notifications?unread=true", user, after=after)
    assert [i["notification_id"] for i in page["items"]] == [later.notification_id]
    assert page["unread_count"] == 1
    assert (await stack.query("/api/v1/me/notifications", other))["unread_count"] == 1


async def test_a_channel_with_many_followers_tells_each_once(stack: ApiStack, codec: EventCodec) -> None:
    followers = 1_200  # more than one publishing batch (PUBLISH_BATCH = 500)
    channel_id, stream_id = await channel_with_stream(stack, "Big Channel")
    users = [f"fan-{uuid.uuid4().hex[:12]}" for _ in range(followers)]
    # As the API publishes follows (the users need no accounts to be followers in the log).
    await stack.publisher.publish_many([ChannelFollowed(user_id=u, channel_id=channel_id) for u in users])
    await go_live(stack, stream_id)

    async def all_in_inbox() -> bool:
        async with stack.services.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT count(*) FROM notifications WHERE url = %s", (f"/live/{stream_id}",)
            )
            row = await cur.fetchone()
        return bool(row and row[0] == followers)

    await eventually(all_in_inbox, timeout_s=TIMEOUT_S)
    records = [r for r in await issued_records(stack.settings, codec) if r.url == f"/live/{stream_id}"]
    assert sorted(r.user_id for r in records) == sorted(users)
    assert len({r.notification_id for r in records}) == followers
    assert {r.causation_id for r in records} == {records[0].causation_id}
