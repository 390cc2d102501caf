"""Shared by the rebuild, report and ops tests and bench/rebuild.py (no tests here): a scripted
session of events for every read model, and a wait until every registered projector has applied it.

The session goes through the real publisher, like the projection tests: users, channels, streams
with their lifecycle, a tournament whose match has three streams (main, POV, co-stream), chat with
moderation (bans, unbans, time-outs, deletions, undeletes, clears, settings, requests), viewer
counts of streams and of the match, a poll with its votes and tallies, notifications and reads.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from psycopg_pool import AsyncConnectionPool

from events.base import Event
from events.chat import (
    ChatCleared,
    ChatMessageAccepted,
    ChatMessageDeleted,
    ChatMessageRestored,
    ChatSettingsChanged,
    ModerationAction,
    ModerationActionRequested,
    UserBanned,
    UserTimedOut,
    UserUnbanned,
)
from events.notifications import NotificationIssued
from events.polls import PollClosed, PollOpened, PollTallyUpdated, PollVoteCast
from events.streams import StreamCreated, StreamEnded, StreamEndReason, StreamRole, StreamWentLive
from events.tournaments import MatchEnded, MatchScheduled, MatchStarted, TournamentCreated
from events.users import NotificationsRead
from events.viewers import MatchAudienceChanged, ViewerCountChanged
from infra.kafka import Position
from infra.redis import RedisClient
from projections.projector import BatchStore, Partition
from projections.redis_projector import glob_escape
from projections.service import build_stores
from tests.integration.projections_support import last_positions
from tests.integration.test_projections_restart import mixed_events
from tests.unit.event_samples import SAMPLE_TIME, sample_event

__all__ = ["MATCH", "STREAMS", "dump_keys", "match_session", "session_events", "wait_applied"]

T0 = SAMPLE_TIME
MATCH = "m-final"
TOURNAMENT = "t-worlds"
STREAMS = ("s-main", "s-pov", "s-co")


def session_events(catalog: int = 400, chat_per_stream: int = 40, seed: int = 11) -> list[Event]:
    """The whole session: random catalog stories, then the match with its chat, viewers and poll."""
    return [*mixed_events(catalog, seed), *match_session(chat_per_stream, seed)]


def match_session(chat_per_stream: int = 40, seed: int = 11) -> list[Event]:
    """A match on three streams with chat, moderation, viewers, a poll and notifications."""
    rng = random.Random(seed)
    events: list[Event] = [
        TournamentCreated(
            tournament_id=TOURNAMENT, name="Worlds", game="lol", organizer_id="org", starts_at=T0
        ),
        MatchScheduled(
            tournament_id=TOURNAMENT,
            match_id=MATCH,
            teams=("T1", "G2"),
            scheduled_start=T0,
            stream_id=STREAMS[0],
        ),
        MatchStarted(tournament_id=TOURNAMENT, match_id=MATCH, started_at=T0 + timedelta(minutes=1)),
    ]
    roles = (StreamRole.MAIN, StreamRole.POV, StreamRole.COSTREAM)
    for stream, role in zip(STREAMS, roles, strict=True):
        events += [
            StreamCreated(
                stream_id=stream,
                channel_id=f"ch-{stream}",
                owner_id="owner",
                title=stream,
                match_id=MATCH,
                role=role,
            ),
            StreamWentLive(stream_id=stream, channel_id=f"ch-{stream}", started_at=T0, causation_id="i"),
        ]
        events += _chat(rng, stream, chat_per_stream)
        events += _viewers(rng, stream)
    events += _audience(rng)
    events += _poll(STREAMS[0])
    events += _notifications()
    events += [
        MatchEnded(
            tournament_id=TOURNAMENT, match_id=MATCH, ended_at=T0 + timedelta(minutes=50), winner="T1"
        ),
        StreamEnded(
            stream_id=STREAMS[2],
            channel_id=f"ch-{STREAMS[2]}",
            ended_at=T0 + timedelta(minutes=51),
            reason=StreamEndReason.ENDED_BY_OWNER,
        ),
    ]
    return events


def _at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


def _chat(rng: random.Random, stream: str, count: int) -> list[Event]:
    users = [f"viewer-{n}" for n in range(8)]
    out: list[Event] = []
    for n in range(count):
        message = ChatMessageAccepted(
            message_id=f"{stream}-msg-{n}",
            stream_id=stream,
            user_id=rng.choice(users),
            display_name="Viewer",
            text=f"message {n}",
            occurred_at=_at(1 + n * 30 / count + rng.random()),
        )
        out.append(message)
        roll = rng.random()
        if roll < 0.08:
            out.append(_request(stream, ModerationAction.DELETE, target_message_id=message.message_id))
            out.append(ChatMessageDeleted(message_id=message.message_id, stream_id=stream, deleted_by="mod"))
            if rng.random() < 0.5:
                out.append(sample_event(ChatMessageRestored, stream_id=stream, message_id=message.message_id))
        elif roll < 0.12:
            out.append(_request(stream, ModerationAction.BAN, target_user_id=message.user_id))
            out.append(UserBanned(stream_id=stream, user_id=message.user_id, actor_id="mod", reason="spam"))
            if rng.random() < 0.6:
                out.append(UserUnbanned(stream_id=stream, user_id=message.user_id, actor_id="mod"))
        elif roll < 0.15:
            out.append(
                sample_event(
                    UserTimedOut, stream_id=stream, user_id=message.user_id, actor_id="mod", duration_s=60
                )
            )
    out.append(sample_event(ChatSettingsChanged, stream_id=stream, actor_id="mod"))
    if stream == STREAMS[2]:
        out.append(sample_event(ChatCleared, stream_id=stream, cleared_before=_at(10)))
    return out


def _request(stream: str, action: ModerationAction, **target: str) -> Event:
    return sample_event(
        ModerationActionRequested,
        stream_id=stream,
        action=action,
        actor_id="mod",
        reason="rules",
        target_user_id=target.get("target_user_id"),
        target_message_id=target.get("target_message_id"),
        duration_s=None,
    )


def _viewers(rng: random.Random, stream: str) -> list[Event]:
    out: list[Event] = []
    peak = 0
    for n in range(30):
        count = max(0, int(100 + 80 * rng.random() - n))
        peak = max(peak, count)
        out.append(
            sample_event(ViewerCountChanged, stream_id=stream, count=count, peak=peak, occurred_at=_at(n / 3))
        )
    return out


def _audience(rng: random.Random) -> list[Event]:
    out: list[Event] = []
    peak = 0
    for n in range(30):
        count = int(250 + 100 * rng.random())
        peak = max(peak, count)
        out.append(
            sample_event(MatchAudienceChanged, match_id=MATCH, count=count, peak=peak, occurred_at=_at(n / 3))
        )
    return out


def _poll(stream: str) -> list[Event]:
    poll = "poll-final-1"
    options = ("T1", "G2", "Draw")
    out: list[Event] = [
        PollOpened(
            poll_id=poll,
            stream_id=stream,
            question="Who wins?",
            options=options,
            opened_by="mod",
            closes_at=_at(20),
            occurred_at=_at(5),
        )
    ]
    counts = [0, 0, 0]
    for n in range(12):
        option = n % 3 if n % 4 else 0
        counts[option] += 1
        out.append(PollVoteCast(poll_id=poll, stream_id=stream, user_id=f"viewer-{n}", option=option))
        if n % 4 == 3:
            out.append(
                PollTallyUpdated(poll_id=poll, stream_id=stream, counts=tuple(counts), total=sum(counts))
            )
    out.append(PollClosed(poll_id=poll, stream_id=stream, closed_by="mod", occurred_at=_at(15)))
    out.append(
        PollTallyUpdated(poll_id=poll, stream_id=stream, counts=tuple(counts), total=sum(counts), final=True)
    )
    return out


def _notifications() -> list[Event]:
    out: list[Event] = [
        sample_event(
            NotificationIssued, notification_id=f"n-{n}", user_id=f"viewer-{n % 3}", causation_id=f"c-{n}"
        )
        for n in range(9)
    ]
    out.append(
        sample_event(NotificationsRead, user_id="viewer-0", notification_ids=("n-0", "n-3"), all_before=None)
    )
    return out


async def wait_applied(
    pool: AsyncConnectionPool,
    client: RedisClient,
    *,
    schema: str,
    prefix: str,
    positions: Iterable[Position],
    timeout_s: float = 60.0,
) -> None:
    """Wait until every registered projector (PostgreSQL and Redis) has stored offsets past
    ``positions`` on the topics it consumes; reads their stored offsets like a restart would."""
    last = last_positions(positions)
    stores = build_stores(pool, client, schema=schema, redis_prefix=prefix)
    deadline = time.monotonic() + timeout_s
    for store in stores:
        wanted = {(p.topic, p.partition): p.offset + 1 for p in last if p.topic in store.topics}
        while not await _reached(store, wanted):
            assert time.monotonic() < deadline, f"{store.name} did not apply {wanted}"
            await asyncio.sleep(0.05)


async def _reached(store: BatchStore, wanted: dict[Partition, int]) -> bool:
    if not wanted:
        return True
    stored = await store.start_positions(sorted(wanted))
    return all(stored[p] >= offset for p, offset in wanted.items())


async def dump_keys(client: RedisClient, prefix: str) -> dict[str, Any]:
    """Every key under ``prefix`` (prefix stripped) with its value, whatever its type."""
    readers = {
        "hash": client.hgetall,
        "zset": lambda key: client.zrange(key, 0, -1, withscores=True),
        "list": lambda key: client.lrange(key, 0, -1),
        "set": lambda key: client.smembers(key),
        "string": client.get,
    }
    dump: dict[str, Any] = {}
    async for key in client.scan_iter(match=f"{glob_escape(prefix)}*", count=1000):
        kind = await client.type(key)
        dump[str(key).removeprefix(prefix)] = (kind, await readers[str(kind)](key))
    return dict(sorted(dump.items()))


def count_by_type(events: Sequence[Event]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in events:
        counts[event.event_type()] = counts.get(event.event_type(), 0) + 1
    return counts
