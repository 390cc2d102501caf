"""The commands an ingest node obeys from the log: a stream that ended, a stream key that was rotated,
a replay that was deleted.

The API never talks to ingest nodes. Ending a stream (``POST /api/v1/streams/{id}/end`` →
StreamEndRequested → the lifecycle agent → **StreamEnded** on ``streams.lifecycle``) or issuing a new
stream key (**ChannelStreamKeyRotated** on ``channels``) is an event, and every node reads those two
topics and drops the publishers they concern: RTMP through nginx-rtmp's control module, SRT by closing
the caller's socket, a pulled feed by stopping its session. The session then ends the ordinary way
(playlists finalised, IngestDisconnected). Deleting a replay (``DELETE /api/v1/streams/{id}/vod`` →
**StreamVodDeleted** on ``streams``) removes the stream's HLS folder from every node's disk
(:mod:`ingest_workers.retention`), unless the stream is live on the node.

:func:`decide` is the pure rule; :class:`CommandListener` is the loop that reads and applies it.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from events.base import Event
from events.channels import ChannelStreamKeyRotated
from events.streams import StreamEnded, StreamEndReason, StreamVodDeleted
from events.topics import Topic
from infra.kafka import EventConsumer

__all__ = [
    "COMMAND_TOPICS",
    "Command",
    "CommandListener",
    "Drop",
    "DropReason",
    "Publisher",
    "RemoveVod",
    "decide",
]

log = logging.getLogger(__name__)

COMMAND_TOPICS = (Topic.STREAMS_LIFECYCLE, Topic.CHANNELS, Topic.STREAMS)
READY_TIMEOUT_S = 15.0


class DropReason(enum.StrEnum):
    """Why a node dropped a publisher (the ``reason`` label of ``ingest_publishers_dropped_total``)."""

    STREAM_ENDED = "stream_ended"
    KEY_ROTATED = "key_rotated"


@dataclass(frozen=True, slots=True, kw_only=True)
class Publisher:
    """A live session on this node as the rule sees it: its stream and the grant it was let in with.

    ``key_id`` is "" when the authorizer did not say which key was presented (then a rotation of the
    channel's key drops every publisher of the channel)."""

    stream_id: str
    channel_id: str = ""
    key_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Drop:
    """Disconnect the publisher of ``stream_id`` for ``reason``."""

    stream_id: str
    reason: DropReason


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoveVod:
    """Delete the replay (the HLS folder) of ``stream_id`` from this node's disk."""

    stream_id: str


Command = Drop | RemoveVod


def decide(event: Event, publishers: Iterable[Publisher]) -> list[Command]:
    """What ``event`` makes this node do: the publishers it disconnects, the replays it deletes.

    - StreamEnded of a stream published here, unless the stream ended *because* its publisher left
      (``publisher_stopped``: the node reported that itself; a session on the stream now is a
      reconnect that the lifecycle agent judges on its own).
    - ChannelStreamKeyRotated: every publisher of the channel let in with another key than the new
      one (a channel has one active key, so any other key is the old one).
    - StreamVodDeleted: remove the stream's folder, unless the stream is published here now (its
      files are a live stream's; the API refuses a live stream, so this is a race the node settles).
    """
    if isinstance(event, StreamVodDeleted):
        if any(p.stream_id == event.stream_id for p in publishers):
            return []
        return [RemoveVod(stream_id=event.stream_id)]
    if isinstance(event, StreamEnded):
        if event.reason is StreamEndReason.PUBLISHER_STOPPED:
            return []
        ended = DropReason.STREAM_ENDED
        return [
            Drop(stream_id=p.stream_id, reason=ended) for p in publishers if p.stream_id == event.stream_id
        ]
    if isinstance(event, ChannelStreamKeyRotated):
        rotated = DropReason.KEY_ROTATED
        return [
            Drop(stream_id=p.stream_id, reason=rotated)
            for p in publishers
            if p.channel_id == event.channel_id and p.key_id != event.key_id
        ]
    return []


class CommandListener:
    """Reads the command topics and applies what :func:`decide` names: drops publishers, deletes replays.

    Every node must see every command, since only the node holding a publisher can drop it, so the
    consumer has **no group**: it is assigned every partition of both topics and starts **at their
    end** (offsets are never committed). A group per node would do the same with extra state on the
    broker (one group per node name, left behind when a node goes) and, for a new node, would start
    at the end anyway; a node has nothing to catch up on, because the publishers it holds all arrived
    after it started, and one it held before a restart is gone with the restart. A command published
    while the node is down concerns no publisher on it; a replay deletion it missed is aged out by
    the retention sweep (:class:`~ingest_workers.retention.RetentionSweeper`) if retention is set.
    """

    def __init__(
        self,
        consumer: EventConsumer,
        publishers: Callable[[], Iterable[Publisher]],
        drop: Callable[[Drop], Awaitable[object]],
        remove_vod: Callable[[str], Awaitable[object]] | None = None,
    ) -> None:
        self._consumer = consumer
        self._publishers = publishers
        self._drop = drop
        self._remove_vod = remove_vod
        self.ready = asyncio.Event()

    async def run(self) -> None:
        """Until cancelled. ``ready`` is set once the consumer holds a position on every partition:
        commands published from then on are seen."""
        assigned = await self._consumer.assignment(READY_TIMEOUT_S)
        async for batch in self._consumer.batches(timeout_ms=200):
            for consumed in batch:
                for command in decide(consumed.event, self._publishers()):
                    log.info(
                        "%s %s@%s (event %s): %s of stream %s",
                        type(consumed.event).__name__,
                        consumed.position.topic,
                        consumed.position.offset,
                        consumed.event.event_id,
                        "dropping the publisher" if isinstance(command, Drop) else "deleting the replay",
                        command.stream_id,
                    )
                    await self._apply(command)
            if not self.ready.is_set() and len(self._consumer.positions()) >= len(assigned):
                self.ready.set()

    async def _apply(self, command: Command) -> None:
        try:
            if isinstance(command, Drop):
                await self._drop(command)
            elif self._remove_vod is not None:
                await self._remove_vod(command.stream_id)
        except Exception:  # one failed command must not stop the node obeying the next one
            log.exception("stream %s: %s failed", command.stream_id, type(command).__name__)
