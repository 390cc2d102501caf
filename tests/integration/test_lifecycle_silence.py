"""The silence rule through the real lifecycle worker, projector and API (ESPORTS_INGEST__SILENCE_END_S=3).

Ingest events are published by the test (the real nodes are in ``test_ingest_failover``), so each
stream's reports stop exactly when the test says:

- a stream whose node's reports stop ends (``ingest_timeout``) a silence after its last report, on
  the last report, and leaves the live listing;
- a stream taken over by node B, whose node A (cut off, not dead) goes on reporting for its old
  session, ends a silence after B's connect: A's reports keep nothing alive;
- the worker stopped while one stream goes silent and another keeps reporting, started again after
  the silence: the silent one ends, the one whose reports wait in the backlog does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from events.ingest import IngestConnected, IngestHealthReported, IngestProtocol
from events.streams import StreamEnded, StreamEndReason, StreamWentLive
from infra.settings import Settings
from tests.integration.test_api_support import ApiStack, eventually, open_api_stack, stream_state
from tests.integration.test_ingest_support import TopicLog, reading

pytestmark = pytest.mark.integration

SILENCE_S = 3.0  # ESPORTS_INGEST__SILENCE_END_S of the worker
# the sweep runs every second, 2 s behind its clock (a report on its way); then the projector
ENDS_WITHIN_S = SILENCE_S + 2.0 + 1.0 + 6.0
BACKLOG = 30_000  # records a restarted worker reads before it reaches the end of a partition
BACKLOG_CHUNK = 1_000


@pytest.fixture
async def stack(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[ApiStack]:
    monkeypatch.setenv("ESPORTS_INGEST__SILENCE_END_S", str(SILENCE_S))  # the worker's environment
    async with open_api_stack(settings, tmp_path, lifecycle=True) as stack:
        yield stack


@pytest.fixture
async def decisions(stack: ApiStack) -> AsyncIterator[TopicLog]:
    async with reading(stack.settings, "streams.lifecycle") as log:
        yield log


async def _stream(stack: ApiStack) -> str:
    owner = await stack.register()
    channel = await stack.command(
        "POST", "/api/v1/channels", owner, {"slug": f"s-{uuid.uuid4().hex[:12]}", "display_name": "S"}
    )
    created = await stack.command(
        "POST", "/api/v1/streams", owner, {"channel_id": channel["channel_id"], "title": "silence"}
    )
    return str(created["stream_id"])


def _connected(stream_id: str, session: str, node: str) -> IngestConnected:
    return IngestConnected(stream_id=stream_id, session_id=session, protocol=IngestProtocol.RTMP, node=node)


def _report(stream_id: str, session: str) -> IngestHealthReported:
    return IngestHealthReported(
        stream_id=stream_id,
        session_id=session,
        input_bitrate_kbps=400.0,
        fps=30.0,
        encoder_speed=1.0,
        dropped_frames=0,
        restarts=0,
    )


async def _live(stack: ApiStack, stream_id: str, connect: IngestConnected) -> None:
    await stack.publisher.publish(connect)
    await stream_state(stack, stream_id, "live", timeout_s=20)


async def _live_ids(stack: ApiStack) -> set[str]:
    listing = await stack.query("/api/v1/streams/live?limit=100")
    return {s["stream_id"] for s in listing["items"]}


@contextlib.asynccontextmanager
async def _reporting(stack: ApiStack, stream_id: str, session: str) -> AsyncIterator[None]:
    """A node reporting the session's health every 0.5 s while inside. A report is stamped when it is
    made and not waited for before the next one, as a node's are: a slow acknowledgement (a loaded
    machine) must not space the reports out toward the silence."""
    sent: set[asyncio.Task[object]] = set()

    async def beat() -> None:
        while True:
            task = asyncio.create_task(stack.publisher.publish(_report(stream_id, session)))
            sent.add(task)
            task.add_done_callback(sent.discard)
            await asyncio.sleep(0.5)

    beating = asyncio.create_task(beat())
    try:
        yield
    finally:
        beating.cancel()
        await asyncio.gather(beating, *sent, return_exceptions=True)


async def _publish_backlog(stack: ApiStack, stream_id: str, session: str, count: int) -> None:
    """``count`` reports of ``session`` published in chunks, each stamped as it is made: one list of
    them all would hold the event loop (and the node's own reports) for seconds on a loaded machine,
    and its last reports would be stamped seconds after the stream's last sign of life."""
    for start in range(0, count, BACKLOG_CHUNK):
        chunk = [_report(stream_id, session) for _ in range(min(BACKLOG_CHUNK, count - start))]
        await stack.publisher.publish_many(chunk)


async def _ended_by_silence(
    stack: ApiStack, decisions: TopicLog, stream_id: str, last_heard: str, since: float
) -> StreamEnded:
    """The stream's end: by silence, on ``last_heard``, not before a silence after ``since``."""
    ended = await stream_state(stack, stream_id, "ended", timeout_s=ENDS_WITHIN_S + 20)
    took = time.monotonic() - since
    assert ended["end_reason"] == "ingest_timeout"
    end = await decisions.first(stream_id, StreamEnded, timeout_s=5)
    assert end.reason is StreamEndReason.INGEST_TIMEOUT and end.causation_id == last_heard
    assert [type(e) for e in decisions.of(stream_id)] == [StreamWentLive, StreamEnded]
    assert SILENCE_S <= took, f"ended {took:.1f}s after the last sign of life"
    return end


async def test_silent_streams_end_and_a_replaced_node_keeps_nothing_alive(
    stack: ApiStack, decisions: TopicLog
) -> None:
    quiet, taken_over = await asyncio.gather(_stream(stack), _stream(stack))
    await asyncio.gather(
        _live(stack, quiet, _connected(quiet, "q", "node-a:1935")),
        _live(stack, taken_over, _connected(taken_over, "a", "node-a:1935")),
    )
    # `quiet`: reports for a second, then its node dies (nothing more is published for it)
    async with _reporting(stack, quiet, "q"):
        await asyncio.sleep(1.0)
    last = _report(quiet, "q")
    await stack.publisher.publish(last)
    quiet_since = time.monotonic()
    # `taken_over`: its publisher reconnects to node B, which then dies; node A keeps reporting the
    # session it no longer serves
    b_connect = _connected(taken_over, "b", "node-b:1936")
    await stack.publisher.publish(b_connect)
    b_since = time.monotonic()

    async def listed() -> bool:  # the listing is cached per process for a second
        return {quiet, taken_over} <= await _live_ids(stack)

    await eventually(listed, timeout_s=3, interval_s=0.2)
    async with _reporting(stack, taken_over, "a"):
        end, _ = await asyncio.gather(
            _ended_by_silence(stack, decisions, quiet, str(last.event_id), quiet_since),
            _ended_by_silence(stack, decisions, taken_over, str(b_connect.event_id), b_since),
        )
    assert end.ended_at == last.occurred_at and end.duration_ms > 1000

    async def unlisted() -> bool:
        return not {quiet, taken_over} & await _live_ids(stack)

    await eventually(unlisted, timeout_s=5)


async def test_a_restarted_worker_ends_what_went_silent_and_reads_the_rest_first(
    stack: ApiStack, decisions: TopicLog
) -> None:
    silent, healthy = await asyncio.gather(_stream(stack), _stream(stack))
    await asyncio.gather(
        _live(stack, silent, _connected(silent, "s", "node-a:1935")),
        _live(stack, healthy, _connected(healthy, "h", "node-a:1935")),
    )
    async with _reporting(stack, healthy, "h"):
        last = _report(silent, "s")
        await stack.publisher.publish(last)
        since = time.monotonic()
        await stack.worker.stop()  # down for longer than the silence; `healthy` reports meanwhile
        stopped = time.monotonic()
        # a backlog that takes the restarted worker a while to read, on `healthy`'s partition: a
        # zombie session's reports (which count for nothing) between `healthy`'s own
        await _publish_backlog(stack, healthy, "zombie", BACKLOG)
        await asyncio.sleep(max(0.0, stopped + SILENCE_S + 1.0 - time.monotonic()))
        stack.worker.start()
        await stack.worker.wait_ready()
        await _ended_by_silence(stack, decisions, silent, str(last.event_id), since)
        await asyncio.sleep(SILENCE_S + 2.0)  # a full silence later, still reporting: still live
        assert (await stream_state(stack, healthy, "live", timeout_s=1))["state"] == "live"
        assert [type(e) for e in decisions.of(healthy)] == [StreamWentLive], stack.worker.log_text()[-3000:]
