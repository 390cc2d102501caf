"""Blocking playlist reloads (Low-Latency HLS, RFC 8216bis 6.2.5.2) as pure decisions.

A client asks for a media playlist with ``_HLS_msn=M`` (and ``_HLS_part=P``): the server holds the
request until the playlist contains segment M (part P of segment M, or anything after it), answers
400 at once when M or P is too far ahead to come soon, and 503 when it did not come within three
target durations. :func:`position_of` reads where a rendered playlist is, :func:`decide` answers a
request against it; the LL origin (:mod:`ingest_workers.ll_origin`) does the waiting.

Delta updates (``_HLS_skip=YES``, RFC 8216bis 6.2.5.1): :func:`delta_update` replaces the segments that
start earlier than ``CAN-SKIP-UNTIL`` before the end with ``#EXT-X-SKIP``, so a player reloading a
two-hour DVR window every part fetches its last seconds only. It never skips across a discontinuity
(the discontinuity sequence then means the same in both), and repeats the ``#EXT-X-MAP`` in effect.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Answer", "Position", "Request", "decide", "delta_update", "parse_request", "position_of"]

SKIP_VERSION = 9  # EXT-X-SKIP needs protocol version 9
SEGMENT_TAGS = ("#EXT-X-MAP:", "#EXT-X-PROGRAM-DATE-TIME:", "#EXTINF:", "#EXT-X-PART:")  # + DISCONTINUITY
TIMEOUT_TARGETS = 3  # "within three times the Target Duration" then 503
MSN_AHEAD = 2  # an _HLS_msn more than the last segment plus two is refused (400)


class Answer(enum.Enum):
    NOW = "now"
    WAIT = "wait"
    BAD_REQUEST = "bad request"


@dataclass(frozen=True, slots=True)
class Position:
    """Where a media playlist is: its last complete segment, its last segment (the one in progress
    included) with that segment's last part (-1 without parts), whether it ended, its target durations."""

    complete_msn: int
    last_msn: int
    last_part: int
    ended: bool
    target_s: float
    part_target_s: float | None = None


@dataclass(frozen=True, slots=True)
class Request:
    """The blocking parameters of a playlist request (``msn`` None: an ordinary reload)."""

    msn: int | None = None
    part: int | None = None
    skip: bool = False


def parse_request(query: dict[str, str]) -> Request | None:
    """The ``_HLS_msn``/``_HLS_part`` of a query, or None when malformed (a part without a segment,
    a number that is not a non-negative integer)."""
    msn_text, part_text = query.get("_HLS_msn"), query.get("_HLS_part")
    skip = query.get("_HLS_skip") in {"YES", "v2"}  # v2 also skips date ranges: there are none
    if msn_text is None:
        return Request(skip=skip) if part_text is None else None
    if not msn_text.isdigit() or (part_text is not None and not part_text.isdigit()):
        return None
    return Request(int(msn_text), None if part_text is None else int(part_text), skip)


def position_of(text: str) -> Position:
    """The :class:`Position` of a rendered media playlist."""
    sequence, complete, parts_before, open_parts = 0, 0, 0, 0
    target, part_target, ended = 0.0, None, False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            sequence = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-TARGETDURATION:"):
            target = float(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-PART-INF:"):
            part_target = float(line.split("PART-TARGET=", 1)[1].split(",", 1)[0])
        elif line.startswith("#EXT-X-PART:"):
            open_parts += 1
        elif line == "#EXT-X-ENDLIST":
            ended = True
        elif line and not line.startswith("#"):
            complete += 1
            parts_before, open_parts = open_parts, 0
    last_complete = sequence + complete - 1
    if open_parts:
        return Position(last_complete, last_complete + 1, open_parts - 1, ended, target, part_target)
    return Position(last_complete, last_complete, parts_before - 1, ended, target, part_target)


def advance_part_limit(part_target_s: float) -> int:
    """How many parts ahead of the last one a request may ask for: three, or three seconds' worth
    when parts are shorter than a second (RFC 8216bis 6.2.5.2)."""
    return int(3 / part_target_s) if part_target_s < 1 else 3


def decide(position: Position, request: Request) -> Answer:
    """Answer a request now, hold it, or refuse it (see the module docstring)."""
    if request.msn is None or position.ended:
        return Answer.NOW
    if request.msn > position.last_msn + MSN_AHEAD:
        return Answer.BAD_REQUEST
    if request.part is None:
        return Answer.NOW if position.complete_msn >= request.msn else Answer.WAIT
    if position.last_msn > request.msn:
        return Answer.NOW
    if position.last_msn == request.msn:
        if position.last_part >= request.part:
            return Answer.NOW
        limit = advance_part_limit(position.part_target_s or position.target_s)
        return Answer.BAD_REQUEST if request.part - position.last_part > limit else Answer.WAIT
    return Answer.WAIT


def timeout_s(position: Position) -> float:
    """How long a request is held before 503."""
    return TIMEOUT_TARGETS * max(position.target_s, 1.0)


def delta_update(text: str) -> str:
    """The playlist with the segments older than its ``CAN-SKIP-UNTIL`` replaced by ``#EXT-X-SKIP``
    (`text` itself when it allows no skipping or nothing is old enough)."""
    header, blocks, tail = _blocks(text)
    until = _skip_until(header)
    if until is None or not blocks:
        return text
    end = sum(_duration(block) for block in blocks) + sum(_part_duration(line) for line in tail)
    skipped, start, mapping = 0, 0.0, None
    for block in blocks:
        if start + _duration(block) > end - until or "#EXT-X-DISCONTINUITY" in block:
            break  # only what ends before the skip boundary, never across a discontinuity
        mapping = next((line for line in reversed(block) if line.startswith("#EXT-X-MAP:")), mapping)
        skipped += 1
        start += _duration(block)
    if not skipped:
        return text
    header = [f"#EXT-X-VERSION:{SKIP_VERSION}" if h.startswith("#EXT-X-VERSION:") else h for h in header]
    rest = blocks[skipped:]
    lines = [*header, f"#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}"]
    if mapping is not None and not (rest and any(line.startswith("#EXT-X-MAP:") for line in rest[0])):
        lines.append(mapping)
    for block in rest:
        lines += block
    return "\n".join([*lines, *tail]) + "\n"


def _blocks(text: str) -> tuple[list[str], list[list[str]], list[str]]:
    """(header lines, one list of lines per complete segment ending with its URI, what follows)."""
    header: list[str] = []
    blocks: list[list[str]] = []
    current: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        segment_tag = line.startswith(SEGMENT_TAGS) or line == "#EXT-X-DISCONTINUITY"
        if not blocks and not current and line.startswith("#") and not segment_tag:
            header.append(line)
            continue
        current.append(line)
        if not line.startswith("#"):
            blocks.append(current)
            current = []
    return header, blocks, current


def _skip_until(header: list[str]) -> float | None:
    for line in header:
        if line.startswith("#EXT-X-SERVER-CONTROL:") and "CAN-SKIP-UNTIL=" in line:
            return float(line.split("CAN-SKIP-UNTIL=", 1)[1].split(",", 1)[0])
    return None


def _duration(block: list[str]) -> float:
    return sum(
        float(line[len("#EXTINF:") :].split(",", 1)[0]) for line in block if line.startswith("#EXTINF:")
    )


def _part_duration(line: str) -> float:
    if not line.startswith("#EXT-X-PART:"):
        return 0.0
    return float(line.split("DURATION=", 1)[1].split(",", 1)[0])
