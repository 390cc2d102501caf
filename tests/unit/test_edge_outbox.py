"""The edge's outbox: passes over a stream's subscribers, a chunk at a time, every frame once, in order."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from edge_ws.fanout import FanoutHub
from edge_ws.messages import delivery_for
from edge_ws.metrics import Metrics
from edge_ws.outbox import Outbox
from edge_ws.protocol import LogPosition
from events.chat import ChatMessageAccepted


@dataclass(eq=False)
class Viewer:
    open: bool = True
    writes: list[bytes] = field(default_factory=list)

    def fits(self) -> bool:
        return self.open

    def write_frame(self, frame: bytes) -> None:
        self.writes.append(frame)

    @property
    def received(self) -> bytes:
        return b"".join(self.writes)


def frame(n: int) -> bytes:
    return f"<{n}>".encode()


def test_a_frame_added_during_a_pass_joins_it_and_the_next_pass_brings_it_to_the_rest() -> None:
    outbox, viewers = Outbox(), [Viewer() for _ in range(4)]
    for viewer in viewers:
        outbox.join(viewer)
    outbox.add(frame(1), stamp_ms=111)
    assert outbox.write(2) == 2  # the first two viewers have frame 1
    outbox.add(frame(2), stamp_ms=222)
    assert outbox.write(2) == 4 and outbox.take_written() == [111]  # the pass ends: frame 1 is out
    assert not outbox.idle  # the first two still lack frame 2
    assert outbox.write(4) == 2 and outbox.idle and outbox.take_written() == [222]
    assert [v.writes for v in viewers] == [[b"<1>", b"<2>"]] * 2 + [[b"<1><2>"]] * 2  # one write each pass
    assert viewers[2].writes[0] is viewers[3].writes[0]  # joined once for both


def test_a_subscriber_joining_during_a_pass_gets_only_what_comes_after() -> None:
    outbox, early, late = Outbox(), Viewer(), Viewer()
    outbox.join(early)
    outbox.add(frame(1))
    outbox.join(late)  # frame 1 was in its backfill
    outbox.add(frame(2))
    outbox.write_all()
    assert (early.received, late.received) == (b"<1><2>", b"<2>")


def test_a_subscriber_that_does_not_fit_is_skipped_without_breaking_the_others() -> None:
    outbox, slow, fast = Outbox(), Viewer(open=False), Viewer()
    for viewer in (slow, fast):
        outbox.join(viewer)
    outbox.add(frame(1))
    outbox.write_all()
    slow.open = True
    outbox.add(frame(2))
    outbox.add(frame(3))
    outbox.write_all()
    assert (slow.received, fast.received) == (b"<2><3>", b"<1><2><3>")


def test_any_interleaving_gives_every_subscriber_each_frame_once_in_order() -> None:
    """Random joins, leaves, frames and partial passes: while joined, a viewer gets every frame added
    after it joined, once and in order (after leaving mid-pass: a prefix of them, then nothing)."""
    rng = random.Random(16)
    for _ in range(300):
        outbox, viewers = Outbox(), [Viewer() for _ in range(6)]
        expected: list[list[list[int]]] = [[[]] for _ in viewers]  # per viewer: frames per membership
        joined: set[int] = set()
        for n in range(60):
            action, i = rng.random(), rng.randrange(len(viewers))
            if action < 0.15 and i not in joined:
                outbox.join(viewers[i])
                joined.add(i)
            elif action < 0.25 and i in joined:
                outbox.leave(viewers[i])
                joined.discard(i)
                viewers[i].writes.append(b"|")
                expected[i].append([])
            elif action < 0.6:
                outbox.add(frame(n))
                for j in joined:
                    expected[j][-1].append(n)
            else:
                outbox.write(rng.randrange(1, 4))
        outbox.write_all()
        for i, viewer in enumerate(viewers):
            periods = viewer.received.split(b"|")
            for got, wanted, last in zip(periods, expected[i], range(len(periods) - 1, -1, -1), strict=True):
                whole = b"".join(frame(n) for n in wanted)
                assert got == whole if last == 0 else whole.startswith(got)


def accepted(offset: int) -> ChatMessageAccepted:
    return ChatMessageAccepted(
        message_id=f"m{offset}", stream_id="s", user_id="u", display_name="u", text=f"t{offset}"
    )


async def test_the_writer_task_writes_what_the_reader_posts_and_a_subscriber_gets_no_duplicate() -> None:
    metrics = Metrics()
    hub = FanoutHub(metrics, history_per_stream=10, backfill=5)
    hub.partition_starts = {0: 0}
    first, second = Viewer(), Viewer()
    hub.subscribe(first, "s", None)  # type: ignore[arg-type]
    writer = asyncio.create_task(hub.write_forever())
    try:
        deliveries = [delivery_for(accepted(n), LogPosition(0, n)) for n in (1, 2)]
        await hub.deliver([d for d in deliveries if d is not None], [1, 1])
        hub.subscribe(second, "s", None)  # type: ignore[arg-type]  # posted, not written: in its backfill
        for _ in range(10):
            await asyncio.sleep(0)
    finally:
        writer.cancel()
    assert first.received.count(b'"id":"m1"') == first.received.count(b'"id":"m2"') == 1
    assert second.received.count(b'"id":"m1"') == second.received.count(b'"id":"m2"') == 1
    assert metrics.deliveries == 2  # the second viewer's came with its backfill, not as deliveries
