"""The earning workers: points earned for watching and chatting, found in what is already on the log.

No client is trusted: a viewer earns from the presence beats their edge saw (``viewers.presence``) and
from the chat moderation accepted (``chat.messages``), each read by a partition worker in a group of its
own. What they find is a :class:`~events.points.PointsEarned` request on ``points.requests`` with a
deterministic ``grant_id``, so the same earning found twice (two tabs on two presence partitions, a
worker re-reading its window after a restart or a rebalance) is granted once by the ledger worker.

- **Watching** (:class:`WatchEarning`): time is cut in windows of ``points.watch_window_s`` (5 min),
  each in five slots; a signed-in viewer seen watching a stream in at least :data:`SLOTS_NEEDED` slots
  of a window earns ``points.watch_points`` for it (a grant per user, stream and window).
- **Chatting** (:class:`ChatEarning`): the first accepted message of a user in a stream per window of
  ``points.chat_window_s`` earns ``points.chat_points``.

Nothing is stored: a taken-over partition is re-read from two windows back and what it finds again is
requested again (and granted once).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from events.base import Event
from events.chat import ChatMessageAccepted
from events.points import PointsEarned
from events.viewers import ViewerPresenceBatch
from infra.settings import Settings
from stream_processors.partition_worker import PartitionWorker, Record, Report
from stream_processors.points.ledger import PRODUCER, epoch_ms
from stream_processors.runtime import retrying
from stream_processors.topology import (
    CHAT_EARNING_GROUP,
    CHAT_EARNING_SOURCE,
    WATCH_EARNING_GROUP,
    WATCH_EARNING_SOURCE,
)

__all__ = ["SLOTS", "SLOTS_NEEDED", "ChatEarning", "WatchEarning", "WatchWindows"]

SLOTS, SLOTS_NEEDED = 5, 4


class WatchWindows:
    """The slots each signed-in viewer was seen in, per stream and window, for one presence partition."""

    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms
        self._seen: dict[tuple[str, str, int], int] = {}  # (user, stream, window start) -> slot bits
        self._granted: set[tuple[str, str, int]] = set()

    def seen(self, user_id: str, stream_id: str, at_ms: int) -> int | None:
        """A beat; the window's start (ms) when it completes that window for the first time, else None."""
        start = at_ms - at_ms % self.window_ms
        key = (user_id, stream_id, start)
        if key in self._granted:
            return None
        slot = (at_ms - start) * SLOTS // self.window_ms
        bits = self._seen.get(key, 0) | (1 << slot)
        if bits.bit_count() < SLOTS_NEEDED:
            self._seen[key] = bits
            return None
        self._seen.pop(key, None)
        self._granted.add(key)
        return start

    def expire(self, now_ms: int) -> None:
        """Forget the windows that ended more than a window ago."""
        horizon = now_ms - 2 * self.window_ms
        self._seen = {k: v for k, v in self._seen.items() if k[2] >= horizon}
        self._granted = {k for k in self._granted if k[2] >= horizon}


class _Earning(PartitionWorker[Any]):
    """Folds records into per-partition state and publishes the PointsEarned found, every ``every_s``."""

    every_s = 1.0
    window_ms = 0

    def __init__(self, settings: Settings, *args: Any, **kwargs: Any) -> None:
        super().__init__(settings, *args, **kwargs)
        self._points = settings.points
        self._earned: list[Event] = []
        self._sweeps = 0

    def rebuild_from_ms(self) -> int:
        return int(time.time() * 1000) - 2 * self.window_ms

    def earned(self, user_id: str, amount: int, reason: str, stream_id: str, window_start_ms: int) -> None:
        if amount > 0:
            self._earned.append(
                PointsEarned(
                    producer=PRODUCER,
                    user_id=user_id,
                    amount=amount,
                    reason=reason,
                    grant_id=f"{reason}:{stream_id}:{user_id}:{window_start_ms}",
                    stream_id=stream_id,
                )
            )

    def report(self, now_ms: int, complete: set[int]) -> list[Report]:
        return []  # events, published by _report below

    async def _report(self) -> None:
        earned, self._earned = self._earned, []
        if earned:
            publisher = self._publishing.publisher
            await retrying("publishing points earned", lambda: publisher.publish_many(earned), self._metrics)
            self._metrics.points_published["PointsEarned"] += len(earned)
        self._sweeps += 1
        if self._sweeps % 60 == 0:
            self.expire(int(time.time() * 1000))
        await self._commit_positions()

    def expire(self, now_ms: int) -> None:
        """Forget what is too old to earn again."""


class WatchEarning(_Earning):
    """Points for watching, from the presence beats of the ``viewers.presence`` partitions it owns."""

    role = "points-watch"
    group = WATCH_EARNING_GROUP
    source = WATCH_EARNING_SOURCE

    def __init__(self, settings: Settings, *args: Any, **kwargs: Any) -> None:
        super().__init__(settings, *args, **kwargs)
        self.window_ms = int(settings.points.watch_window_s * 1000)

    def new_state(self) -> WatchWindows:
        return WatchWindows(self.window_ms)

    async def absorb(self, partition: int, state: WatchWindows, records: Sequence[Record]) -> None:
        for record in records:
            batch = await self.decode(record)
            if not isinstance(batch, ViewerPresenceBatch):
                continue
            at_ms = epoch_ms(batch)
            for beat in batch.beats:
                if beat.user_id and (start := state.seen(beat.user_id, beat.stream_id, at_ms)) is not None:
                    self.earned(beat.user_id, self._points.watch_points, "watch", beat.stream_id, start)

    def expire(self, now_ms: int) -> None:
        for state in self._owned.values():
            state.expire(now_ms)


class ChatEarning(_Earning):
    """Points for chatting, from the accepted messages of the ``chat.messages`` partitions it owns."""

    role = "points-chat"
    group = CHAT_EARNING_GROUP
    source = CHAT_EARNING_SOURCE

    def __init__(self, settings: Settings, *args: Any, **kwargs: Any) -> None:
        super().__init__(settings, *args, **kwargs)
        self.window_ms = int(settings.points.chat_window_s * 1000)

    def new_state(self) -> set[tuple[str, str, int]]:
        return set()  # (user, stream, window start) already earned

    async def absorb(
        self, partition: int, state: set[tuple[str, str, int]], records: Sequence[Record]
    ) -> None:
        for record in records:
            message = await self.decode(record)
            if not isinstance(message, ChatMessageAccepted):
                continue
            at_ms = epoch_ms(message)
            key = (message.user_id, message.stream_id, at_ms - at_ms % self.window_ms)
            if key not in state:
                state.add(key)
                self.earned(message.user_id, self._points.chat_points, "chat", message.stream_id, key[2])

    def expire(self, now_ms: int) -> None:
        horizon = now_ms - 2 * self.window_ms
        for state in self._owned.values():
            state.difference_update([k for k in state if k[2] < horizon])
