"""Per-stream chat history in memory: the window a client can be backfilled and resumed from. Pure.

A stream's chat lives in one partition of ``chat.messages`` (keyed by ``stream_id``), so its events
have increasing offsets. The ring keeps the latest ``capacity`` of them. ``floor`` is the position
after which the ring has *every* event of the stream: the node's start offset on that partition
(minus one) until the ring first evicts, then the evicted event's position. A ``since`` at or after
the floor is answered exactly; before it, the client must reload.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from edge_ws.protocol import LogPosition


@dataclass(frozen=True, slots=True)
class Resume:
    """What a client resuming at ``since`` gets: the missed payloads, or ``reload`` if they are gone."""

    missed: tuple[bytes, ...] = ()
    reload: bool = False


RELOAD = Resume(reload=True)


class StreamHistory:
    """The recent chat events of one stream, as (position, encoded payload), oldest first."""

    def __init__(self, capacity: int, floor: LogPosition) -> None:
        self._entries: deque[tuple[LogPosition, bytes]] = deque()
        self._capacity = max(1, capacity)
        self.floor = floor

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def head(self) -> LogPosition:
        """The position of the newest event, or the floor when the ring is empty."""
        return self._entries[-1][0] if self._entries else self.floor

    def append(self, position: LogPosition, payload: bytes) -> bool:
        """Add the next event; False (and nothing kept) if it is not newer than the head (redelivery)."""
        if position.partition == self.head.partition and position.offset <= self.head.offset:
            return False
        if position.partition != self.head.partition:
            # The topic was repartitioned: what came before is not comparable any more.
            self._entries.clear()
            self.floor = LogPosition(position.partition, position.offset - 1)
        if len(self._entries) >= self._capacity:
            self.floor = self._entries.popleft()[0]
        self._entries.append((position, payload))
        return True

    def recent(self, count: int) -> list[bytes]:
        """The newest ``count`` payloads, oldest first (the backfill of a fresh subscriber)."""
        if count <= 0:
            return []
        start = max(0, len(self._entries) - count)
        return [payload for _, payload in list(self._entries)[start:]]

    def since(self, position: LogPosition) -> Resume:
        """Exactly the events after ``position``, or :data:`RELOAD` if the window no longer covers it."""
        if position.partition != self.floor.partition or position.offset < self.floor.offset:
            return RELOAD
        return Resume(tuple(payload for pos, payload in self._entries if pos.offset > position.offset))


def resume_without_history(position: LogPosition, partition_starts: dict[int, int]) -> Resume:
    """A stream the node has seen no chat of since its start: nothing missed if ``position`` is not
    older than where the node began reading that partition; otherwise the node cannot tell."""
    start = partition_starts.get(position.partition)
    if start is None or position.offset < start - 1:
        return RELOAD
    return Resume()
