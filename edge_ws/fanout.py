"""The fan-out hub: per-stream subscriber sets fed by the node's one Kafka reader.

Every delivery is encoded once (``messages.delivery_for``) and, in the default ``frames`` mode,
framed once: the same bytes are written to every subscriber's transport without awaiting anything
(the approach of ``websockets.broadcast()``, minus its per-connection framing). A subscriber whose
unsent bytes pass the bound is dropped (close 1013), never waited for. Subscribing is synchronous:
the snapshot, the backfill and the membership happen in one step of the event loop, so no delivery
can fall between the backfill and the first delta, and none can be sent twice.

In ``frames`` mode the node's reader only *posts* a stream's deliveries to its :class:`Outbox`; the
writer task (:meth:`FanoutHub.write_forever`) writes them in passes of :data:`WRITE_CHUNK`
subscribers with an event-loop turn in between, so the reader fetches while the node writes and a
message read during a pass joins it (see ``edge_ws/outbox.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from websockets.asyncio.server import ServerConnection, broadcast

from edge_ws.history import Resume, StreamHistory, resume_without_history
from edge_ws.messages import Delivery, Route, results_channel
from edge_ws.metrics import Metrics
from edge_ws.outbox import Outbox
from edge_ws.protocol import LogPosition, encode, notice, text_frame

log = logging.getLogger(__name__)

FANOUT_MODES = ("frames", "broadcast", "naive")
RECENT_ONCE_KEYS = 10_000  # direct deliveries remembered per node so a republished one is not pushed twice
# A node reads recent records back at start (warm start): a notification whose cause is older than the
# node by more than this was pushed by the node its user was on then; it stays in the inbox, unpushed.
BACKLOG_GRACE_MS = 60_000
# Subscribers written to between two yields to the event loop: about 1.5 ms of loopback writes here.
WRITE_CHUNK = 128
# Event-loop turns the writer gives up after each chunk. A fetch response reaches the reader through a
# chain of tasks and futures (connection, fetch task, waiter, getmany: about six hops), each needing a
# turn; with one turn per chunk, a message would wait six chunks before it could join the pass.
TURNS_PER_CHUNK = 8


class Peer(Protocol):
    """What the hub needs of a connection (``session.Session`` in the node, fakes in unit tests)."""

    user_id: str | None

    @property
    def ws(self) -> ServerConnection: ...

    def fits(self) -> bool:
        """True if the connection is open and its send buffer is under the bound (else it is dropped)."""
        ...

    def write_frame(self, frame: bytes) -> None: ...


@dataclass(slots=True, eq=False)
class Channel:
    """One stream on this node: its subscribers, its chat history and its current snapshots."""

    stream: str
    history: StreamHistory | None = None
    outbox: Outbox = field(default_factory=Outbox)  # its subscribers, and what each still lacks
    snapshots: dict[str, bytes] = field(default_factory=dict)
    # Subscribers that resumed at a position this node has not read yet (they came from a node
    # further ahead): history deliveries at or before their position are skipped for them.
    ahead: dict[Peer, int] = field(default_factory=dict)

    @property
    def subscribers(self) -> dict[Peer, int]:
        """The subscribers (each with the outbox's next frame it needs)."""
        return self.outbox.marks  # type: ignore[return-value]


class FanoutHub:
    """Routes deliveries to this node's subscribers; holds history and snapshots per stream."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        history_per_stream: int,
        backfill: int,
        mode: str = "frames",
        started_ms: int | None = None,
    ) -> None:
        if mode not in FANOUT_MODES:
            raise ValueError(f"edge.fanout must be one of {FANOUT_MODES}, not {mode!r}")
        self._metrics = metrics
        self._history_size = history_per_stream
        self._backfill = backfill
        self.mode = mode
        self.channels: dict[str, Channel] = {}
        self.users: dict[str, set[Peer]] = {}
        self.moderators: dict[str, set[Peer]] = {}  # stream -> connections shown a moderator pass
        # Where the reader began each chat.messages partition: what a fresh node's window starts at.
        self.partition_starts: dict[int, int] = {}
        self._pushed_once: OrderedDict[str, None] = OrderedDict()  # once keys, oldest first, bounded
        self.duplicates_dropped = 0  # direct deliveries not pushed again (a notification republished)
        self._started_ms = int(time.time() * 1000) if started_ms is None else started_ms
        self._busy: dict[Channel, None] = {}  # channels whose outbox has frames to write, in order
        self._wake = asyncio.Event()

    # --- membership -------------------------------------------------------------------------------

    def channel(self, stream: str) -> Channel:
        found = self.channels.get(stream)
        if found is None:
            found = self.channels[stream] = Channel(stream)
        return found

    def subscribe(self, peer: Peer, stream: str, since: LogPosition | None, *, results: bool = True) -> None:
        """Snapshot, then backfill (or exactly what was missed since ``since``), then membership; with
        ``results`` (the viewer does not hide the stream's match result) the results channel's too."""
        channel = self.channel(stream)
        for payload in channel.snapshots.values():
            _put(peer, payload)
        resumed = self._replay(peer, channel, since)
        head = channel.history.head if channel.history is not None else None
        marker = {"type": "state", "kind": "subscribed", "stream": stream, "pos": head and str(head)}
        _put(peer, encode({**marker, "resumed": resumed}))
        channel.outbox.join(peer)
        if not results:
            hidden = self.channels.get(results_channel(stream))
            if hidden is not None:  # subscribed again, now hiding results
                hidden.outbox.leave(peer)
            return
        outcomes = self.channel(results_channel(stream))
        if peer not in outcomes.subscribers:
            for payload in outcomes.snapshots.values():
                _put(peer, payload)
            outcomes.outbox.join(peer)

    def _replay(self, peer: Peer, channel: Channel, since: LogPosition | None) -> bool:
        history = channel.history
        if since is None:
            for payload in history.recent(self._backfill) if history is not None else []:
                _put(peer, payload)
            return False
        resume = self._resume(channel, since)
        if resume.reload:
            _put(peer, notice("reload", stream=channel.stream, since=str(since)))
            self._metrics.reloads += 1
            return self._replay(peer, channel, None)
        for payload in resume.missed:
            _put(peer, payload)
        if history is None or since.offset > history.head.offset:
            channel.ahead[peer] = since.offset
        return True

    def _resume(self, channel: Channel, since: LogPosition) -> Resume:
        if channel.history is None:
            return resume_without_history(since, self.partition_starts)
        return channel.history.since(since)

    def unsubscribe(self, peer: Peer, stream: str) -> None:
        for key in (stream, results_channel(stream)):
            channel = self.channels.get(key)
            if channel is not None:
                channel.outbox.leave(peer)
                channel.ahead.pop(peer, None)
        self.unwatch_held(peer, stream)

    def watch_held(self, peer: Peer, stream: str) -> None:
        """From now on ``peer`` receives the stream's held messages and their resolutions (the
        session checked its moderator pass). What was held before comes from the API's queue."""
        self.moderators.setdefault(stream, set()).add(peer)

    def unwatch_held(self, peer: Peer, stream: str) -> None:
        watching = self.moderators.get(stream)
        if watching is not None:
            watching.discard(peer)
            if not watching:
                del self.moderators[stream]

    def identify(self, peer: Peer, user_id: str | None) -> None:
        """Index the peer under its (new) user id, for direct deliveries."""
        if peer.user_id is not None:
            self.users.get(peer.user_id, set()).discard(peer)
        peer.user_id = user_id
        if user_id is not None:
            self.users.setdefault(user_id, set()).add(peer)

    def leave(self, peer: Peer, streams: Iterable[str]) -> None:
        for stream in streams:
            self.unsubscribe(peer, stream)
        for stream in [s for s, peers in self.moderators.items() if peer in peers]:
            self.unwatch_held(peer, stream)
        self.identify(peer, None)

    # --- deliveries -------------------------------------------------------------------------------

    async def deliver(self, deliveries: list[Delivery], stamps_ms: list[int]) -> None:
        """A reader batch (``stamps_ms``: each delivery's record timestamp). In ``frames`` mode it is
        posted to the writer task and this returns at once; the baselines write it before returning."""
        if self.mode != "frames":
            for delivery in deliveries:
                await self.apply(delivery)
            self._metrics.delivered(stamps_ms)
            return
        for delivery, stamp_ms in zip(deliveries, stamps_ms, strict=True):
            self._post(delivery, stamp_ms)

    async def apply(self, delivery: Delivery) -> None:
        """Keep what must be kept (history, snapshot), then send it to whoever should see it."""
        if self.mode == "frames":
            self._post(delivery, 0)
            self.write_pending()
            return
        if delivery.route is Route.DIRECT:
            if self._first_time(delivery.once_key, delivery.at_ms):
                await self._send(list(self.users.get(delivery.target, ())), delivery.payload)
            return
        if delivery.route is Route.MODERATORS:
            await self._send(self._moderators(delivery), delivery.payload)
            return
        channel = self.channel(delivery.target)
        if self._keep(channel, delivery) and channel.subscribers:
            await self._send(self._recipients(channel, delivery), delivery.payload)

    async def apply_batch(self, deliveries: list[Delivery]) -> None:
        """A batch at once: in ``frames`` mode each subscriber gets *one* write per stream holding all
        of the batch's frames for it."""
        if self.mode != "frames":
            for delivery in deliveries:
                await self.apply(delivery)
            return
        for delivery in deliveries:
            self._post(delivery, 0)
        self.write_pending()

    def write_pending(self) -> None:
        """Write every outbox out now, to every subscriber (no event-loop turn in between)."""
        for channel in list(self._busy):
            self._metrics.deliveries += channel.outbox.write_all()
            self._settle(channel)

    async def write_forever(self) -> None:
        """The writer task of ``frames`` mode: a chunk of each busy stream's pass in turn, then a turn
        of the event loop (the reader fetches, clients are served), until every outbox is written."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._busy:
                for channel in list(self._busy):
                    self._write_chunk(channel)
                for _ in range(TURNS_PER_CHUNK):
                    await asyncio.sleep(0)

    def _write_chunk(self, channel: Channel) -> None:
        try:
            self._metrics.deliveries += channel.outbox.write(WRITE_CHUNK)
        except Exception:  # one stream's failure must not stop every stream's chat on this node
            log.exception("writing stream %s to its subscribers failed", channel.stream)
            channel.outbox = _moved(channel.outbox)
        self._settle(channel)

    def _settle(self, channel: Channel) -> None:
        """Observe what the outbox finished writing; a stream with nothing left leaves the busy set."""
        written = channel.outbox.take_written()
        if written:
            self._metrics.delivered(written)
        if channel.outbox.idle:
            self._busy.pop(channel, None)

    def _post(self, delivery: Delivery, stamp_ms: int) -> None:
        """Keep what must be kept (history, snapshot), then queue it (direct: write it) for its readers."""
        if delivery.route is Route.DIRECT:
            if self._first_time(delivery.once_key, delivery.at_ms):
                self._write_now(self.users.get(delivery.target, ()), delivery.payload)
            self._observe(stamp_ms)
            return
        if delivery.route is Route.MODERATORS:
            self._write_now(self._moderators(delivery), delivery.payload)
            self._observe(stamp_ms)
            return
        channel = self.channel(delivery.target)
        if not self._keep(channel, delivery) or not channel.subscribers:
            self._observe(stamp_ms)
            return
        if channel.ahead:  # per-subscriber filtering: what the outbox holds first, then this one
            self._metrics.deliveries += channel.outbox.write_all()
            self._settle(channel)
            self._write_now(self._recipients(channel, delivery), delivery.payload)
            self._observe(stamp_ms)
            return
        channel.outbox.add(text_frame(delivery.payload), stamp_ms)
        if channel not in self._busy:
            self._busy[channel] = None
            self._wake.set()

    def _observe(self, stamp_ms: int) -> None:
        if stamp_ms:
            self._metrics.delivered((stamp_ms,))

    def _keep(self, channel: Channel, delivery: Delivery) -> bool:
        """Update the snapshot or the history; False for a history delivery the node already had."""
        if delivery.route is Route.SNAPSHOT:
            channel.snapshots[delivery.snapshot_key] = delivery.payload
            return True
        return self._remember(channel, delivery)  # False: a warm start overlapping a redelivery

    def _first_time(self, once_key: str, at_ms: int) -> bool:
        """False for a once key this node has already seen (among the last :data:`RECENT_ONCE_KEYS`),
        and for one that happened before this node started (its warm-start backlog)."""
        if not once_key:
            return True
        if once_key in self._pushed_once:
            self.duplicates_dropped += 1
            return False
        self._pushed_once[once_key] = None
        if len(self._pushed_once) > RECENT_ONCE_KEYS:
            self._pushed_once.popitem(last=False)
        return not at_ms or at_ms >= self._started_ms - BACKLOG_GRACE_MS

    def _moderators(self, delivery: Delivery) -> list[Peer]:
        """The stream's moderators' connections; nobody for what happened before this node started
        (its warm-start backlog: the API's queue already has it, and its resolution may follow)."""
        if delivery.at_ms < self._started_ms - BACKLOG_GRACE_MS:
            return []
        return list(self.moderators.get(delivery.target, ()))

    def _remember(self, channel: Channel, delivery: Delivery) -> bool:
        if channel.history is None:
            start = self.partition_starts.get(delivery.position.partition, delivery.position.offset)
            floor = LogPosition(delivery.position.partition, min(start, delivery.position.offset) - 1)
            channel.history = StreamHistory(self._history_size, floor)
        return channel.history.append(delivery.position, delivery.payload)

    def _recipients(self, channel: Channel, delivery: Delivery) -> Iterable[Peer]:
        if not channel.ahead or delivery.route is not Route.HISTORY:
            return channel.subscribers
        offset = delivery.position.offset
        skip = {peer for peer, seen in channel.ahead.items() if seen >= offset}
        for peer in [peer for peer, seen in channel.ahead.items() if seen <= offset]:
            del channel.ahead[peer]  # caught up: from the next delivery on, the fast path again
        return [peer for peer in channel.subscribers if peer not in skip]

    def _write_now(self, peers: Iterable[Peer], payload: bytes) -> None:
        frame = text_frame(payload)
        sent = 0
        for peer in list(peers):
            if peer.fits():
                peer.write_frame(frame)
                sent += 1
        self._metrics.deliveries += sent

    async def _send(self, peers: Iterable[Peer], payload: bytes) -> None:
        """The baselines the benchmark compares with: ``websockets.broadcast()``, or ``naive``."""
        if self.mode == "broadcast":
            open_ = [peer.ws for peer in list(peers) if peer.fits()]
            broadcast(open_, payload, text=True)
            sent = len(open_)
        else:
            sent = await self._send_naively(list(peers), payload)
        self._metrics.deliveries += sent

    async def _send_naively(self, peers: list[Peer], payload: bytes) -> int:
        """One awaited ``send()`` per subscriber."""
        sent = 0
        for peer in peers:
            try:
                await peer.ws.send(payload, text=True)
                sent += 1
            except Exception:  # a closed connection: the baseline just skips it
                continue
        return sent

    # --- shutdown ---------------------------------------------------------------------------------

    def tell_everyone(self, payload: bytes, peers: Iterable[Peer]) -> None:
        frame = text_frame(payload)
        for peer in peers:
            if peer.fits():
                peer.write_frame(frame)


def _moved(outbox: Outbox) -> Outbox:
    """A fresh outbox with the same subscribers, each marked as having everything (after a failure
    part-way through a pass, the old one's bookkeeping cannot be trusted)."""
    fresh = Outbox()
    for peer in outbox.marks:
        fresh.join(peer)
    return fresh


def _put(peer: Peer, payload: bytes) -> None:
    """One message for one peer (backfill, markers): framed for it alone."""
    if peer.fits():
        peer.write_frame(text_frame(payload))
