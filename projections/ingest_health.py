"""The ingest-health projector (``redis.ingest``): the latest health report of each live publisher.

The FFmpeg supervisor reports every few seconds (IngestHealthReported on ``ingest``): input bitrate,
frame rate, encoder speed, dropped frames and restarts. The streamer's dashboard shows the latest one,
as Twitch's stream-health panel does. Keys (:class:`~projections.redis_keys.IngestHealthKeys`:
``prefix`` is a constructor parameter; the hash tag ``{redis.ingest}`` keeps them in one cluster slot):

- ``{prefix}{redis.ingest}ingest:{stream_id}``: JSON of the latest report, which expires
  :data:`FRESH_MS` after the report's own ``occurred_at`` (``PXAT``), so a publisher that went silent
  shows nothing rather than stale figures; IngestDisconnected deletes it at once;
- ``{prefix}{redis.ingest}offsets:redis.ingest``: hash ``"topic:partition"`` -> next offset to apply.

The expiry is computed from event time, not from when the projector runs: a rebuild or a replay of
old reports writes nothing (they expired long ago), so the model is the same however it was built.
Each batch is written with its offsets in one MULTI/EXEC (exactly once, like the other projectors).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from events.ingest import IngestDisconnected, IngestHealthReported
from events.topics import Topic
from infra.kafka import ConsumedEvent
from infra.redis import RedisClient
from projections.redis_keys import IngestHealthKeys
from projections.redis_projector import RedisProjector

__all__ = ["FRESH_MS", "NAME", "TOPICS", "IngestHealthKeys", "IngestHealthProjector", "report_json"]

NAME = IngestHealthKeys.read_model
TOPICS = (Topic.INGEST,)
FRESH_MS = 30_000  # a report is shown for this long after it was measured (reports come every ~5 s)


def report_json(e: IngestHealthReported) -> str:
    """What the dashboard shows of a report."""
    return json.dumps(
        {
            "session_id": e.session_id,
            "input_bitrate_kbps": e.input_bitrate_kbps,
            "fps": e.fps,
            "encoder_speed": e.encoder_speed,
            "dropped_frames": e.dropped_frames,
            "restarts": e.restarts,
            "reported_at": e.occurred_at.isoformat(timespec="milliseconds"),
        },
        separators=(",", ":"),
    )


class IngestHealthProjector(RedisProjector):
    """Projects ``ingest`` health reports into :class:`IngestHealthKeys`."""

    name = NAME
    topics: tuple[str, ...] = TOPICS

    def __init__(self, client: RedisClient, *, prefix: str = "") -> None:
        self.keys = IngestHealthKeys(prefix)
        super().__init__(client, offsets_key=self.keys.offsets)

    async def _store(self, batch: Sequence[ConsumedEvent]) -> None:
        # Redis' clock is the one PXAT is checked against (on a cluster, any node's: they keep NTP time)
        seconds, micros = await self._client.time()
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        await self._store_fresh(batch, lambda tx, fresh: self._write(tx, fresh, now_ms))

    def _write(self, tx: Any, fresh: Sequence[ConsumedEvent], now_ms: int) -> None:
        latest: dict[str, tuple[str, int] | None] = {}  # stream -> (report, expiry ms) or None = delete
        for consumed in fresh:  # in log order per stream (keyed by stream_id): the last one wins
            event = consumed.event
            if isinstance(event, IngestHealthReported):
                latest[event.stream_id] = (report_json(event), _ms(event) + FRESH_MS)
            elif isinstance(event, IngestDisconnected):
                latest[event.stream_id] = None
        for stream_id, value in sorted(latest.items()):
            if value is None or value[1] <= now_ms:
                tx.delete(self.keys.stream(stream_id))
            else:
                tx.set(self.keys.stream(stream_id), value[0], pxat=value[1])


def _ms(event: Any) -> int:
    return int(event.occurred_at.timestamp() * 1000)
