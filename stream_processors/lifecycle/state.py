"""The lifecycle agent's state per stream (the ``lifecycle`` table's value) and its stored JSON form.

Pure, like :mod:`stream_processors.lifecycle.decisions`, which decides on it. Every field added later
has a default and reads from values stored before it existed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from events.streams import StreamRole

__all__ = ["PendingConnect", "SignOfLife", "StreamLifecycle", "StreamState"]


class StreamState(enum.StrEnum):
    """Where a stream is in its life, as the lifecycle agent (the authority) sees it."""

    UNKNOWN = "unknown"
    CREATED = "created"
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingConnect:
    """An ``IngestConnected`` read before its stream's creation: what deciding on it later needs."""

    event_id: str
    occurred_at: datetime
    trace_id: str
    session_id: str

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at.isoformat(),
            "trace_id": self.trace_id,
            "session_id": self.session_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PendingConnect:
        return cls(
            event_id=data["event_id"],
            occurred_at=datetime.fromisoformat(data["occurred_at"]),
            trace_id=data.get("trace_id", ""),
            session_id=data["session_id"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SignOfLife:
    """The newest event of the serving session (its connect or a health report): a silence end
    derives from it alone."""

    event_id: str
    occurred_at: datetime
    trace_id: str

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at.isoformat(),
            "trace_id": self.trace_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SignOfLife:
        return cls(
            event_id=data["event_id"],
            occurred_at=datetime.fromisoformat(data["occurred_at"]),
            trace_id=data.get("trace_id", ""),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamLifecycle:
    """One stream's lifecycle state: the Faust table's value, keyed by ``stream_id``."""

    stream_id: str
    state: StreamState = StreamState.UNKNOWN
    channel_id: str = ""
    match_id: str | None = None
    role: StreamRole = StreamRole.MAIN
    session_id: str = ""  # the ingest session that is (or was last) live
    node: str = ""  # the ingest node holding that session
    heard: SignOfLife | None = None  # that session's newest sign of life (None: stored before it existed)
    live_since: datetime | None = None
    ended_at: datetime | None = None
    ended_cause: str = ""  # event_id of the cause that ended it (a redelivered end request is not refused)
    recent_causes: tuple[str, ...] = ()  # event ids already decided, newest last, bounded
    # ``unknown`` only: the first connect read before the creation, and the session connected now
    # ("" once it disconnected: the creation then decides nothing)
    pending_cause: PendingConnect | None = None
    pending_session: str = ""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the table's changelog value)."""
        return {
            "stream_id": self.stream_id,
            "state": self.state.value,
            "channel_id": self.channel_id,
            "match_id": self.match_id,
            "role": self.role.value,
            "session_id": self.session_id,
            "node": self.node,
            "heard": None if self.heard is None else self.heard.to_json(),
            "live_since": _iso(self.live_since),
            "ended_at": _iso(self.ended_at),
            "ended_cause": self.ended_cause,
            "recent_causes": list(self.recent_causes),
            "pending_cause": None if self.pending_cause is None else self.pending_cause.to_json(),
            "pending_session": self.pending_session,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StreamLifecycle:
        """The inverse of :meth:`to_json` (also reads values stored before a field existed)."""
        pending, heard = data.get("pending_cause"), data.get("heard")
        return cls(
            stream_id=data["stream_id"],
            state=StreamState(data["state"]),
            channel_id=data.get("channel_id", ""),
            match_id=data.get("match_id"),
            role=StreamRole(data.get("role", StreamRole.MAIN.value)),
            session_id=data.get("session_id", ""),
            node=data.get("node", ""),
            heard=None if heard is None else SignOfLife.from_json(heard),
            live_since=_from_iso(data.get("live_since")),
            ended_at=_from_iso(data.get("ended_at")),
            ended_cause=data.get("ended_cause", ""),
            recent_causes=tuple(data.get("recent_causes", ())),
            pending_cause=None if pending is None else PendingConnect.from_json(pending),
            pending_session=data.get("pending_session", ""),
        )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _from_iso(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)
