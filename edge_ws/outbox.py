"""One stream's frames not yet written to every subscriber, and how far each subscriber got. Pure.

The node writes a stream's deliveries in *passes* over its subscribers, a chunk at a time, and lets
its event loop run between chunks: a message read from Kafka while a pass is under way is written
to the rest of that pass's subscribers at once (with whatever they still lack, in one write), and to
the ones the pass already left behind in the next pass. A viewer therefore waits for the writer to
come round to it once (at most one pass), instead of for the pass in progress to end and then for
its own turn in the next one (up to two passes), and the Kafka reader fetches while the node writes.

Each subscriber has a *mark*, the sequence number of the next frame it needs; a subscriber that
joins gets the current end (its snapshot and backfill were written when it joined), so no frame is
written twice or skipped. Subscribers at the same mark get the same bytes object (framed once,
joined once per chunk).
"""

from __future__ import annotations

from typing import Protocol


class Writable(Protocol):
    """What the outbox needs of a subscriber (the hub's ``Peer``)."""

    def fits(self) -> bool: ...

    def write_frame(self, frame: bytes) -> None: ...


class Outbox:
    """A stream's pending frames (sequence numbers ``start`` .. ``end``) and its subscribers' marks."""

    __slots__ = ("_cursor", "_frames", "_pass", "_pass_start", "_stamps", "_start", "marks", "written")

    def __init__(self) -> None:
        self.marks: dict[Writable, int] = {}  # the subscribers, each with the next frame it needs
        self._frames: list[bytes] = []
        self._start = 0  # sequence number of _frames[0]
        self._pass: list[Writable] = []  # the subscribers of the pass under way, in writing order
        self._cursor = 0  # next index in _pass
        self._pass_start = 0  # the end when the pass under way began
        self._stamps: list[tuple[int, int]] = []  # (sequence number, record timestamp ms) unobserved
        self.written: list[int] = []  # record timestamps of frames now written to every subscriber

    @property
    def end(self) -> int:
        return self._start + len(self._frames)

    @property
    def idle(self) -> bool:
        """Every subscriber has every frame: the last pass ended and nothing came in since it began."""
        return self._cursor >= len(self._pass) and self._pass_start == self.end

    def add(self, frame: bytes, stamp_ms: int = 0) -> None:
        if stamp_ms:
            self._stamps.append((self.end, stamp_ms))
        self._frames.append(frame)

    def join(self, peer: Writable) -> None:
        self.marks[peer] = self.end

    def leave(self, peer: Writable) -> None:
        self.marks.pop(peer, None)

    def write(self, budget: int) -> int:
        """Write to the next ``budget`` subscribers of the pass (starting one if needed) what each
        lacks; returns the deliveries made (frames times subscribers)."""
        if self._cursor >= len(self._pass):
            if self.idle:
                return 0
            self._begin_pass()
        chunk = self._pass[self._cursor : self._cursor + budget]
        self._cursor += len(chunk)
        sent = self._write_chunk(chunk)
        if self._cursor >= len(self._pass):
            self._end_pass()
        return sent

    def write_all(self) -> int:
        """Everything pending, to everyone, now (no event loop turn in between)."""
        sent = 0
        while not self.idle:
            sent += self.write(len(self.marks) + len(self._pass) + 1)
        return sent

    def take_written(self) -> list[int]:
        """The record timestamps of frames written to every subscriber since the last call."""
        written, self.written = self.written, []
        return written

    def _write_chunk(self, chunk: list[Writable]) -> int:
        marks, end, frames, start = self.marks, self.end, self._frames, self._start
        joined: dict[int, bytes] = {}
        sent = 0
        for peer in chunk:
            mark = marks.get(peer)
            if mark is None or mark >= end:
                continue  # gone, or joined after the frames came in
            data = joined.get(mark)
            if data is None:
                data = joined[mark] = (
                    frames[mark - start] if end - mark == 1 else b"".join(frames[mark - start :])
                )
            if peer.fits():
                peer.write_frame(data)
                sent += end - mark
            if peer in marks:  # a peer that does not fit was dropped (and left) or is closing
                marks[peer] = end
        return sent

    def _begin_pass(self) -> None:
        # Every subscriber is at or past where the previous pass began: older frames are not needed.
        del self._frames[: self._pass_start - self._start]
        self._start = self._pass_start
        self._pass_start = self.end
        self._pass = list(self.marks)
        self._cursor = 0

    def _end_pass(self) -> None:
        # Every subscriber now has each frame before the pass's start.
        done = 0
        while done < len(self._stamps) and self._stamps[done][0] < self._pass_start:
            self.written.append(self._stamps[done][1])
            done += 1
        del self._stamps[:done]
        self._pass = []
        self._cursor = 0
        if self._pass_start == self.end:
            self._frames.clear()
            self._start = self._pass_start
