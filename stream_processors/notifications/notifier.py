"""Who is told what: go-live and match-start notifications for followers (pure, no I/O).

Two inputs:

* the :class:`Audience`: who follows which channel and tournament (and since when), and channel
  names, folded from ``users`` and ``channels``, which every worker reads whole (they are keyed by
  user and channel, not by the stream or tournament a cause belongs to);
* a :class:`Notifier` per stream (``streams``: its title; ``streams.lifecycle``: it went live) and
  per tournament (``tournaments``: its name, its matches' teams; a match started), the Faust table's
  value.

:func:`decide` turns a cause (``StreamWentLive``, ``MatchStarted``) into one ``NotificationIssued``
per follower who followed at or before the cause happened. Never twice for one cause:

* the notification id (also the event's id) is derived from the cause's id and the user
  (:func:`notification_id`), so deciding a redelivered cause again issues the very same
  notifications, which the inbox projection and the edges drop as duplicates;
* a cause already decided is remembered in the notifier (:data:`RECENT_CAUSES` of them), so a
  redelivery after the state was stored issues nothing at all.

A cause more than :data:`MAX_CAUSE_AGE` old when it is decided tells nobody: the agent's first start
on a platform with history (a new consumer group reads its topics from the beginning) must not announce
last month's go-lives; the inbox never had them. Whether a cause is that old only grows with time, so a
re-decision never issues what the first decision did not.

Only followers whose follow happened at or before the cause's ``occurred_at`` are told, so deciding
the same cause later (a restart, a lagging worker) picks the same followers even if more followed
meanwhile; an unfollow between the cause and a re-decision drops that follower (they may already
have been told).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from events.base import Event
from events.channels import ChannelCreated, ChannelUpdated
from events.ids import IdSpace, decision_id
from events.notifications import NotificationIssued, NotificationKind
from events.streams import StreamCreated, StreamUpdated, StreamWentLive
from events.tournaments import MatchScheduled, MatchStarted, TournamentCreated
from events.users import ChannelFollowed, ChannelUnfollowed, TournamentFollowed, TournamentUnfollowed

__all__ = [
    "MAX_CAUSE_AGE",
    "PRODUCER",
    "RECENT_CAUSES",
    "RECENT_MATCHES",
    "Audience",
    "Notifier",
    "decide",
    "notification_id",
    "notifier_key",
]

PRODUCER = "stream_processors.notifications"
RECENT_CAUSES = 64  # a stream goes live a few times a day; a tournament starts a few dozen matches
MAX_CAUSE_AGE = timedelta(hours=6)  # older go-lives and match starts are history, not news
RECENT_MATCHES = 256  # teams of a tournament's latest scheduled matches, for the notification's text
MAX_TITLE = 200


def notification_id(causation_id: str, user_id: str) -> str:
    """The id of the notification the event ``causation_id`` gives ``user_id``: the same on every
    decision."""
    return str(decision_id(IdSpace.NOTIFICATION, causation_id, user_id))


class Audience:
    """Follows (target -> user -> followed at) and channel display names, from ``users`` and ``channels``."""

    def __init__(self) -> None:
        self.channel_followers: dict[str, dict[str, datetime]] = {}
        self.tournament_followers: dict[str, dict[str, datetime]] = {}
        self.channel_names: dict[str, str] = {}

    def apply(self, event: Event) -> bool:
        """Fold one event in; True if it was one the audience keeps."""
        match event:
            case ChannelFollowed():
                self.channel_followers.setdefault(event.channel_id, {}).setdefault(
                    event.user_id, event.occurred_at
                )
            case ChannelUnfollowed():
                self.channel_followers.get(event.channel_id, {}).pop(event.user_id, None)
            case TournamentFollowed():
                self.tournament_followers.setdefault(event.tournament_id, {}).setdefault(
                    event.user_id, event.occurred_at
                )
            case TournamentUnfollowed():
                self.tournament_followers.get(event.tournament_id, {}).pop(event.user_id, None)
            case ChannelCreated():
                self.channel_names[event.channel_id] = event.display_name
            case ChannelUpdated() if event.display_name is not None:
                self.channel_names[event.channel_id] = event.display_name
            case _:
                return False
        return True

    def followers_of_channel(self, channel_id: str, at: datetime) -> list[str]:
        """Who followed ``channel_id`` at or before ``at`` (and still does), sorted."""
        return _since(self.channel_followers.get(channel_id, {}), at)

    def followers_of_tournament(self, tournament_id: str, at: datetime) -> list[str]:
        """Who followed ``tournament_id`` at or before ``at`` (and still does), sorted."""
        return _since(self.tournament_followers.get(tournament_id, {}), at)


def _since(followers: dict[str, datetime], at: datetime) -> list[str]:
    return sorted(user for user, followed_at in followers.items() if followed_at <= at)


@dataclass(frozen=True, slots=True, kw_only=True)
class Notifier:
    """What the agent keeps per stream or tournament: its name, match labels and the causes decided."""

    key: str  # "stream:<id>" or "tournament:<id>"
    name: str = ""  # the stream's title or the tournament's name
    matches: tuple[tuple[str, str], ...] = ()  # (match_id, "A vs B · Round"), newest last, bounded
    recent_causes: tuple[str, ...] = ()  # event ids of causes already decided, newest last, bounded

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the table's changelog value)."""
        return {
            "key": self.key,
            "name": self.name,
            "matches": [list(pair) for pair in self.matches],
            "recent_causes": list(self.recent_causes),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Notifier:
        """The inverse of :meth:`to_json`."""
        return cls(
            key=data["key"],
            name=data.get("name", ""),
            matches=tuple((m, label) for m, label in data.get("matches", ())),
            recent_causes=tuple(data.get("recent_causes", ())),
        )

    def match_label(self, match_id: str) -> str:
        return next((label for m, label in reversed(self.matches) if m == match_id), "")


def notifier_key(event: Event) -> str | None:
    """The notifier an event belongs to, or None for events the agent ignores."""
    match event:
        case StreamCreated() | StreamUpdated() | StreamWentLive():
            return f"stream:{event.stream_id}"
        case TournamentCreated() | MatchScheduled() | MatchStarted():
            return f"tournament:{event.tournament_id}"
    return None


def decide(
    state: Notifier, cause: Event, audience: Audience, *, now: datetime
) -> tuple[Notifier, list[NotificationIssued]]:
    """The new notifier state and the notifications ``cause`` issues at ``now`` (none for a cause seen
    before, or more than :data:`MAX_CAUSE_AGE` old)."""
    match cause:
        case StreamCreated():
            return replace(state, name=cause.title), []
        case StreamUpdated() if cause.title is not None:
            return replace(state, name=cause.title), []
        case TournamentCreated():
            return replace(state, name=cause.name), []
        case MatchScheduled():
            return replace(state, matches=_with_match(state.matches, cause)), []
        case StreamWentLive() | MatchStarted() if now - cause.occurred_at > MAX_CAUSE_AGE:
            return state, []
        case StreamWentLive() | MatchStarted() if str(cause.event_id) not in state.recent_causes:
            causes = (*state.recent_causes, str(cause.event_id))[-RECENT_CAUSES:]
            return replace(state, recent_causes=causes), list(_notifications(state, cause, audience))
    return state, []


def _with_match(
    matches: tuple[tuple[str, str], ...], scheduled: MatchScheduled
) -> tuple[tuple[str, str], ...]:
    label = " vs ".join(scheduled.teams)
    if scheduled.round_name:
        label = f"{label} · {scheduled.round_name}"
    kept = tuple(pair for pair in matches if pair[0] != scheduled.match_id)
    return (*kept, (scheduled.match_id, label))[-RECENT_MATCHES:]


def _notifications(state: Notifier, cause: Event, audience: Audience) -> Iterator[NotificationIssued]:
    if isinstance(cause, StreamWentLive):
        users = audience.followers_of_channel(cause.channel_id, cause.occurred_at)
        kind, url = NotificationKind.STREAM_LIVE, f"/live/{cause.stream_id}"
        channel = audience.channel_names.get(cause.channel_id, "") or "A channel you follow"
        title, body = f"{channel} is live", state.name
    elif isinstance(cause, MatchStarted):
        users = audience.followers_of_tournament(cause.tournament_id, cause.occurred_at)
        kind, url = NotificationKind.MATCH_STARTING, f"/tournaments/{cause.tournament_id}"
        tournament = state.name or "A tournament you follow"
        title, body = f"{tournament}: a match is starting", state.match_label(cause.match_id)
    else:
        return
    for user_id in users:
        yield _issued(cause, user_id, kind, title, url, body)


def _issued(
    cause: Event, user_id: str, kind: NotificationKind, title: str, url: str, body: str
) -> NotificationIssued:
    nid = notification_id(str(cause.event_id), user_id)
    return NotificationIssued(
        event_id=uuid.UUID(nid),
        occurred_at=cause.occurred_at,
        producer=PRODUCER,
        trace_id=cause.trace_id,
        causation_id=str(cause.event_id),
        notification_id=nid,
        user_id=user_id,
        kind=kind,
        title=title[:MAX_TITLE],
        url=url,
        body=body[:MAX_TITLE],
    )
