"""Issue 21's acceptance: a scripted day through the real edges, presence workers, projector and reports.

Viewers join and leave three streams on two edge nodes (signed in and anonymous, one user in two tabs,
one coming back after a gap, one user on two streams), heartbeating as players do, while the processors
worker is killed (-9) and restarted in the middle. Then:

- each stream's unique viewers, views and watch time in ``esports report stream`` equal an independent
  recomputation from the heartbeats on ``viewers.presence`` (a session is a (stream, connection)'s run
  of heartbeats with no gap of a counting window);
- the heartbeats are deleted (their retention run out: ``DeleteRecords`` to the end), the read model is
  rebuilt from the log, and the reports are the same: the session events outlived the heartbeats.
"""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.records_to_delete import RecordsToDelete
from psycopg_pool import AsyncConnectionPool

from events.channels import ChannelCreated
from events.streams import StreamCreated, StreamEnded, StreamWentLive
from events.topics import Topic
from events.viewers import ViewerPresenceBatch
from infra.kafka import EventPublisher, TopicNames
from infra.settings import Settings
from projections.rebuild.command import Options, rebuild
from projections.rebuild.progress import Progress
from projections.report.stream import stream_report
from tests.integration.projections_support import (
    end_positions,
    pg_caught_up,
    read_model,
    redis_space,
    running_service,
    unique_schema,
)
from tests.integration.test_edge import token
from tests.integration.test_edge_support import Client, edge_settings, running_node
from tests.integration.test_lifecycle import WorkerProcess
from tests.integration.test_points import CODEC, points_ready, read_partitions

pytestmark = pytest.mark.integration

WINDOW_S = 3.0  # the counting window: a session gone this long has ended
BEAT_S = 0.5  # players' heartbeats (and the edges' flushes)
KILL_AT_S = 9.0
SETTLE_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class Visit:
    """A viewer's connection to ``stream`` on ``edge`` from ``start_s`` to ``end_s``, as ``user`` if any."""

    stream: int
    edge: int
    start_s: float
    end_s: float
    user: str | None = None
    referrer: str | None = None  # what the player says on subscribe: a host name, site or direct


SCRIPT = (
    Visit(0, 0, 0.0, 10.0, "u0", "twitter.com"),
    Visit(0, 0, 16.0, 21.0, "u0", "site"),  # came back later: a second session of the same viewer
    Visit(0, 1, 1.5, 18.0, "u1", "direct"),  # through the kill
    Visit(0, 0, 1.0, 7.0, "u2", "twitter.com"),  # two tabs of one user on two edges: one viewer
    Visit(0, 1, 3.0, 14.0, "u2", "twitter.com"),
    Visit(1, 1, 0.0, 21.0, "u3", "reddit.com"),
    Visit(1, 0, 2.0, 6.0),  # anonymous: each connection its own viewer (an older player: no referrer)
    Visit(1, 1, 4.5, 19.5, None, "reddit.com"),
    Visit(2, 0, 5.0, 13.0, "u1", "site"),  # a user on two streams: a viewer of each
    Visit(2, 1, 0.0, 4.0, None, "direct"),
    Visit(2, 0, 7.5, 20.0, None, "twitter.com"),
    Visit(2, 1, 9.5, 11.0, "u4", "site"),  # joined during the kill
)


@pytest.mark.timeout(300)
async def test_a_scripted_day_reports_what_the_heartbeats_say_and_outlives_them(
    namespace: Settings, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:6]
    streams = [f"day-{run}-{n}" for n in range(3)]
    channel = f"ch-{run}"
    settings = edge_settings(namespace, heartbeat_flush_s=BEAT_S)
    worker = WorkerProcess(
        namespace,
        tmp_path / "faust",
        tmp_path / "worker.log",
        args=["--only", "viewers"],
        ESPORTS_PROCESSORS__SESSION_TIMEOUT_S="6",
        ESPORTS_PROCESSORS__VIEWER_WINDOW_S=str(WINDOW_S),
    )
    schema = unique_schema()
    worker.start()
    try:
        async with (
            EventPublisher(namespace.kafka, CODEC, producer="tests.day") as publisher,
            read_model(namespace, schema) as pool,
            redis_space(namespace) as (_, prefix),
            running_service(namespace, schema, prefix),
        ):
            await publisher.publish(
                ChannelCreated(channel_id=channel, owner_id="owner", slug=f"team-{run}", display_name="Team")
            )
            for stream in streams:
                await publisher.publish(
                    StreamCreated(stream_id=stream, channel_id=channel, owner_id="owner", title=stream)
                )
                await publisher.publish(
                    StreamWentLive(
                        stream_id=stream, channel_id=channel, started_at=datetime.now(UTC), causation_id="t"
                    )
                )
            await points_ready(worker, roles=("presence",))
            async with running_node(settings, CODEC) as first, running_node(settings, CODEC) as second:
                await _play(SCRIPT, [first.port, second.port], settings, streams, worker)
            for stream in streams:
                await publisher.publish(
                    StreamEnded(stream_id=stream, channel_id=channel, ended_at=datetime.now(UTC))
                )

            expected = _recount(await read_partitions(namespace, Topic.VIEWERS_PRESENCE), streams)
            await _until_sessions_applied(pool, sum(len(e.watch_ms) for e in expected.values()), worker)
            # The worker's counts (viewers.counts) go on while it runs: stop it, and let the read model
            # apply everything it wrote, so the reports compared below read one complete log.
            assert await worker.stop() == 0, worker.log_tail()
            written = await end_positions(namespace, (Topic.VIEWERS_COUNTS, Topic.VIEWERS_SESSIONS))
            await pg_caught_up(pool, schema, written, timeout_s=30)
            before = {s: (await stream_report(pool, s))["audience"] for s in streams}
            for stream in streams:
                got, want = before[stream], expected[stream]
                assert (got["unique_viewers"], got["views"], got["open_views"]) == (
                    len(want.viewers),
                    len(want.watch_ms),
                    0,
                ), stream
                assert got["watch_time_s"] == sum(want.watch_ms) / 1000, (stream, want.watch_ms)
                came_from = (await stream_report(pool, stream))["referrers"]
                assert {r["referrer"]: r["viewers"] for r in came_from} == {
                    referrer: len(viewers) for referrer, viewers in want.referrers.items()
                }, stream

            await _expire_heartbeats(namespace)  # as if a day went by: the heartbeats are gone
            assert not [
                e
                for part in (await read_partitions(namespace, Topic.VIEWERS_PRESENCE)).values()
                for e in part
            ]
            options = Options(
                names=("postgres",), schema=schema, redis_prefix=prefix, batch_size=50, processes=1
            )
            await rebuild(namespace, options, Progress(io.StringIO(), quiet=True))
            after = {s: (await stream_report(pool, s))["audience"] for s in streams}
            assert after == before
    finally:
        worker.kill()


async def _play(
    script: tuple[Visit, ...], ports: list[int], settings: Settings, streams: list[str], worker: WorkerProcess
) -> None:
    """Every visit as a websocket client heartbeating its stream, and the worker killed and restarted."""
    started = time.monotonic()

    async def visit(v: Visit) -> None:
        await asyncio.sleep(v.start_s)
        headers = {} if v.user is None else {"Authorization": f"Bearer {token(settings, v.user)}"}
        client = await Client.open(ports[v.edge], additional_headers=headers)
        try:
            await client.subscribe(streams[v.stream], referrer=v.referrer)
            while time.monotonic() - started < v.end_s:
                await client.send(type="heartbeat", stream=streams[v.stream])
                await asyncio.sleep(BEAT_S)
        finally:
            await client.close()

    async def kill_and_restart() -> None:
        await asyncio.sleep(KILL_AT_S)
        worker.kill()
        worker.start()

    await asyncio.gather(*(visit(v) for v in script), kill_and_restart())
    await points_ready(worker, roles=("presence",))


@dataclass
class Audience:
    viewers: set[str]
    watch_ms: list[int]
    referrers: dict[str, set[str]]  # referrer ("unknown" if none) -> its viewers


def _recount(presence: dict[int, list[object]], streams: list[str]) -> dict[str, Audience]:
    """Sessions from the heartbeats alone: per (stream, session), runs of beats with no gap of a window."""
    beats: dict[tuple[str, str], list[int]] = defaultdict(list)
    who: dict[tuple[str, str], str] = {}
    came: dict[tuple[str, str], str] = {}
    for part in presence.values():
        for batch in part:
            assert isinstance(batch, ViewerPresenceBatch)
            at = int(batch.occurred_at.timestamp() * 1000)
            for beat in batch.beats:
                beats[(beat.stream_id, beat.session_id)].append(at)
                who[(beat.stream_id, beat.session_id)] = beat.user_id or f"session:{beat.session_id}"
                came.setdefault((beat.stream_id, beat.session_id), beat.referrer or "unknown")
    audiences = {s: Audience(set(), [], defaultdict(set)) for s in streams}
    for (stream, session), times in beats.items():
        if stream not in audiences:
            continue
        times.sort()
        audiences[stream].viewers.add(who[(stream, session)])
        audiences[stream].referrers[came[(stream, session)]].add(who[(stream, session)])
        first = last = times[0]
        for at in times[1:]:
            if at - last >= WINDOW_S * 1000:
                audiences[stream].watch_ms.append(last - first)
                first = at
            last = at
        audiences[stream].watch_ms.append(last - first)
    return audiences


async def _until_sessions_applied(pool: AsyncConnectionPool, sessions: int, worker: WorkerProcess) -> None:
    """Until the read model holds ``sessions`` sessions, every one ended."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT count(*), count(ended_at) FROM viewing_sessions")
            row = await cur.fetchone()
        if row == (sessions, sessions):
            return
        if time.monotonic() > deadline:
            async with pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT stream_id, session_id, started_at, ended_at FROM viewing_sessions ORDER BY 1, 2"
                )
                rows = "\n".join(map(str, await cur.fetchall()))
            raise AssertionError(f"sessions {row}, expected {sessions}:\n{rows}\n{worker.log_tail(120)}")
        await asyncio.sleep(0.5)


async def _expire_heartbeats(ns: Settings) -> None:
    """Delete every record of viewers.presence, as its retention would a day later."""
    physical = TopicNames(ns.kafka.topic_prefix).physical(Topic.VIEWERS_PRESENCE)
    admin = AIOKafkaAdminClient(bootstrap_servers=ns.kafka.bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics([physical])
        partitions = [p["partition"] for p in described[0]["partitions"]]
        ends = {TopicPartition(physical, p): RecordsToDelete(-1) for p in partitions}  # -1: to the end
        await admin.delete_records(ends)
    finally:
        await admin.close()
