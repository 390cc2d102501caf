"""The fan-out hub: per-stream subscriber sets fed by the node's one Kafka reader.

Every delivery is encoded once (``messages.delivery_for``) and, in the default ``frames`` mode,
framed once: the same bytes are written to every subscriber's transport without awaiting anything
(the approach of ``websockets.broadcast()``, minus its per-connection framing). A subscriber whose
unsent bytes pass the bound is dropped (close 1013), never waited for. Subscribing is synchronous:
the snapshot, the backfill and the membership happen in one step of the event loop, so no delivery
can fall between the backfill and the first delta, and none can be sent twice.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from websockets.asyncio.server import ServerConnection, broadcast

from edge_ws.history import Resume, StreamHistory, resume_without_history
from edge_ws.messages import Delivery, Route
from edge_ws.metrics import Metrics
from edge_ws.protocol import LogPosition, encode, notice, text_frame

log = logging.getLogger(__name__)

FANOUT_MODES = ("frames", "broadcast", "naive")
RECENT_ONCE_KEYS = 10_000  # direct deliveries remembered per node so a republished one is not pushed twice
# A node reads recent records back at start (warm start): a notification whose cause is older than the
# node by more than this was pushed by the node its user was on then; it stays in the inbox, unpushed.
BACKLOG_GRACE_MS = 60_000


class Peer(Protocol):
    """What the hub needs of a connection (``session.Session`` in the node, fakes in unit tests)."""

    user_id: str | None

    @property
    def ws(self) -> ServerConnection: ...

    def fits(self) -> bool:
        """True if the connection is open and its send buffer is under the bound (else it is dropped)."""
        ...

    def write_frame(self, frame: bytes) -> None: ...


@dataclass(slots=True)
class Channel:
    """One stream on this node: its subscribers, its chat history and its current snapshots."""

    stream: str
    history: StreamHistory | None = None
    subscribers: set[Peer] = field(default_factory=set)
    snapshots: dict[str, bytes] = field(default_factory=dict)
    # Subscribers that resumed at a position this node has not read yet (they came from a node
    # further ahead): history deliveries at or before their position are skipped for them.
    ahead: dict[Peer, int] = field(default_factory=dict)


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
        # Where the reader began each chat.messages partition: what a fresh node's window starts at.
        self.partition_starts: dict[int, int] = {}
        self._pushed_once: OrderedDict[str, None] = OrderedDict()  # once keys, oldest first, bounded
        self.duplicates_dropped = 0  # direct deliveries not pushed again (a notification republished)
        self._started_ms = int(time.time() * 1000) if started_ms is None else started_ms

    # --- membership -------------------------------------------------------------------------------

    def channel(self, stream: str) -> Channel:
        found = self.channels.get(stream)
        if found is None:
            found = self.channels[stream] = Channel(stream)
        return found

    def subscribe(self, peer: Peer, stream: str, since: LogPosition | None) -> None:
        """Snapshot, then backfill (or exactly what was missed since ``since``), then membership."""
        channel = self.channel(stream)
        for payload in channel.snapshots.values():
            _put(peer, payload)
        resumed = self._replay(peer, channel, since)
        head = channel.history.head if channel.history is not None else None
        marker = {"type": "state", "kind": "subscribed", "stream": stream, "pos": head and str(head)}
        _put(peer, encode({**marker, "resumed": resumed}))
        channel.subscribers.add(peer)

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
        channel = self.channels.get(stream)
        if channel is not None:
            channel.subscribers.discard(peer)
            channel.ahead.pop(peer, None)

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
        self.identify(peer, None)

    # --- deliveries -------------------------------------------------------------------------------

    async def apply(self, delivery: Delivery) -> None:
        """Keep what must be kept (history, snapshot), then send it to whoever should see it."""
        if delivery.route is Route.DIRECT:
            if self._first_time(delivery.once_key, delivery.at_ms):
                await self._send(list(self.users.get(delivery.target, ())), delivery.payload)
            return
        channel = self.channel(delivery.target)
        if delivery.route is Route.SNAPSHOT:
            channel.snapshots[delivery.snapshot_key] = delivery.payload
        elif not self._remember(channel, delivery):
            return  # already had it (a warm start overlapping a redelivery)
        if channel.subscribers:
            await self._send(self._recipients(channel, delivery), delivery.payload)

    async def apply_batch(self, deliveries: list[Delivery]) -> None:
        """A reader batch at once: in ``frames`` mode each subscriber gets *one* write per stream
        holding all of the batch's frames for it, so a node that fell behind catches up with
        fewer system calls, while a node that keeps up (batches of one) adds no delay."""
        if self.mode != "frames":
            for delivery in deliveries:
                await self.apply(delivery)
            return
        pending: dict[str, list[bytes]] = {}
        for delivery in deliveries:
            if delivery.route is Route.DIRECT:
                await self.apply(delivery)
                continue
            if self.channel(delivery.target).ahead:  # per subscriber filtering: the one-by-one path
                self._flush(pending.pop(delivery.target, None), delivery.target)
                await self.apply(delivery)
                continue
            channel = self.channel(delivery.target)
            if delivery.route is Route.SNAPSHOT:
                channel.snapshots[delivery.snapshot_key] = delivery.payload
            elif not self._remember(channel, delivery):
                continue
            if channel.subscribers:
                pending.setdefault(delivery.target, []).append(text_frame(delivery.payload))
        for stream, frames in pending.items():
            self._flush(frames, stream)

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

    def _flush(self, frames: list[bytes] | None, stream: str) -> None:
        if not frames:
            return
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        sent = 0
        for peer in list(self.channel(stream).subscribers):
            if peer.fits():
                peer.write_frame(data)
                sent += 1
        self._metrics.deliveries += sent * len(frames)

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

    async def _send(self, peers: Iterable[Peer], payload: bytes) -> None:
        if self.mode == "frames":
            frame = text_frame(payload)
            sent = 0
            for peer in list(peers):
                if peer.fits():
                    peer.write_frame(frame)
                    sent += 1
        elif self.mode == "broadcast":
            open_ = [peer.ws for peer in list(peers) if peer.fits()]
            broadcast(open_, payload, text=True)
            sent = len(open_)
        else:
            sent = await self._send_naively(list(peers), payload)
        self._metrics.deliveries += sent

    async def _send_naively(self, peers: list[Peer], payload: bytes) -> int:
        """The baseline the benchmark compares with: one awaited ``send()`` per subscriber."""
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


def _put(peer: Peer, payload: bytes) -> None:
    """One message for one peer (backfill, markers): framed for it alone."""
    if peer.fits():
        peer.write_frame(text_frame(payload))
