"""Viewer presence: heartbeats from edges (``viewers.heartbeats``) and derived counts
(``viewers.counts``), both keyed by ``stream_id``."""

from __future__ import annotations

from dataclasses import dataclass

from events.base import Event

__all__ = ["ViewerCountChanged", "ViewerHeartbeat"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewerHeartbeat(Event):
    """A player is still watching. Anonymous viewers have a session but no user id."""

    stream_id: str
    session_id: str
    edge_id: str
    user_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewerCountChanged(Event):
    """Concurrent viewers of a stream over the counting window, and the peak so far."""

    stream_id: str
    count: int
    peak: int
