"""The notification decision: who is told, with what, and never twice for one cause."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from events.channels import ChannelCreated, ChannelUpdated
from events.ids import IdSpace
from events.notifications import NotificationKind
from events.streams import StreamCreated, StreamEnded, StreamUpdated, StreamWentLive
from events.tournaments import MatchScheduled, MatchStarted, TournamentCreated
from events.users import (
    ChannelFollowed,
    ChannelUnfollowed,
    ModeratorAppointed,
    TournamentFollowed,
    TournamentUnfollowed,
)
from stream_processors.notifications.notifier import (
    MAX_CAUSE_AGE,
    RECENT_CAUSES,
    Audience,
    Notifier,
    decide,
    notification_id,
    notifier_key,
)

T0 = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=30)  # when the agent decides


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def audience(*events: object) -> Audience:
    folded = Audience()
    for event in events:
        folded.apply(event)  # type: ignore[arg-type]
    return folded


def went_live(seconds: float = 10, channel: str = "c-1", stream: str = "s-1") -> StreamWentLive:
    return StreamWentLive(
        stream_id=stream, channel_id=channel, started_at=at(seconds), occurred_at=at(seconds)
    )


def match_started(seconds: float = 10, tournament: str = "t-1", match: str = "m-1") -> MatchStarted:
    return MatchStarted(
        tournament_id=tournament, match_id=match, started_at=at(seconds), occurred_at=at(seconds)
    )


def follows(channel: str = "c-1", *users: str, seconds: float = 0) -> list[ChannelFollowed]:
    return [ChannelFollowed(user_id=u, channel_id=channel, occurred_at=at(seconds)) for u in users]


def test_every_follower_of_the_channel_gets_one_notification() -> None:
    folks = audience(
        ChannelCreated(channel_id="c-1", owner_id="o", slug="lec", display_name="LEC Official"),
        *follows("c-1", "u-b", "u-a"),
        *follows("c-2", "u-other"),
    )
    stream = Notifier(key="stream:s-1", name="Grand final")
    cause = went_live()
    state, issued = decide(stream, cause, folks, now=NOW)
    assert [n.user_id for n in issued] == ["u-a", "u-b"]
    for n in issued:
        assert n.kind is NotificationKind.STREAM_LIVE
        assert n.title == "LEC Official is live" and n.body == "Grand final" and n.url == "/live/s-1"
        assert n.causation_id == str(cause.event_id) and n.occurred_at == cause.occurred_at
        assert n.notification_id == str(
            uuid.uuid5(IdSpace.NOTIFICATION.value, f"{cause.event_id}:{n.user_id}")
        )
        assert n.event_id == uuid.UUID(n.notification_id)
    assert state.recent_causes == (str(cause.event_id),)


def test_a_cause_decided_again_issues_nothing_and_a_redecision_has_the_same_ids() -> None:
    folks = audience(*follows("c-1", "u-a", "u-b"))
    cause = went_live()
    state, first = decide(Notifier(key="stream:s-1"), cause, folks, now=NOW)
    assert decide(state, cause, folks, now=NOW) == (state, [])
    _, again = decide(Notifier(key="stream:s-1"), cause, folks, now=NOW)  # state lost in a crash: same events
    assert [n.event_id for n in again] == [n.event_id for n in first] and again == first


def test_going_live_again_is_a_new_cause() -> None:
    folks = audience(*follows("c-1", "u-a"))
    state, first = decide(Notifier(key="stream:s-1"), went_live(10), folks, now=NOW)
    _, second = decide(state, went_live(500), folks, now=NOW)
    assert len(first) == len(second) == 1 and first[0].notification_id != second[0].notification_id


def test_only_follows_at_or_before_the_cause_count_and_unfollows_remove() -> None:
    folks = audience(
        *follows("c-1", "u-early", seconds=1),
        *follows("c-1", "u-same", seconds=10),
        *follows("c-1", "u-late", seconds=11),
        *follows("c-1", "u-gone", seconds=2),
        ChannelUnfollowed(user_id="u-gone", channel_id="c-1", occurred_at=at(3)),
    )
    _, issued = decide(Notifier(key="stream:s-1"), went_live(10), folks, now=NOW)
    assert [n.user_id for n in issued] == ["u-early", "u-same"]


def test_a_refollow_keeps_the_first_follow_time_until_unfollowed() -> None:
    folks = audience(*follows("c-1", "u-a", seconds=1), *follows("c-1", "u-a", seconds=20))
    assert folks.followers_of_channel("c-1", at(10)) == ["u-a"]


def test_no_followers_no_notifications_but_the_cause_is_remembered() -> None:
    state, issued = decide(Notifier(key="stream:s-1"), went_live(), Audience(), now=NOW)
    assert issued == [] and len(state.recent_causes) == 1


def test_titles_follow_the_stream_and_channel_names() -> None:
    folks = audience(
        ChannelCreated(channel_id="c-1", owner_id="o", slug="x", display_name="Old"),
        ChannelUpdated(channel_id="c-1", updated_by="o", display_name="New name"),
        ChannelUpdated(channel_id="c-1", updated_by="o", description="no name change"),
        *follows("c-1", "u-a"),
    )
    state = Notifier(key="stream:s-1")
    state, _ = decide(
        state, StreamCreated(stream_id="s-1", channel_id="c-1", owner_id="o", title="Day 1"), folks, now=NOW
    )
    state, _ = decide(state, StreamUpdated(stream_id="s-1", updated_by="o", game="CS2"), folks, now=NOW)
    assert state.name == "Day 1"
    state, _ = decide(state, StreamUpdated(stream_id="s-1", updated_by="o", title="Day 2"), folks, now=NOW)
    _, issued = decide(state, went_live(), folks, now=NOW)
    assert (issued[0].title, issued[0].body) == ("New name is live", "Day 2")
    _, unnamed = decide(Notifier(key="stream:s-1"), went_live(), audience(*follows("c-1", "u-a")), now=NOW)
    assert unnamed[0].title == "A channel you follow is live"


def test_match_start_tells_the_tournament_followers() -> None:
    folks = audience(
        TournamentFollowed(user_id="u-a", tournament_id="t-1", occurred_at=at(1)),
        TournamentFollowed(user_id="u-b", tournament_id="t-1", occurred_at=at(1)),
        TournamentUnfollowed(user_id="u-b", tournament_id="t-1", occurred_at=at(2)),
        TournamentFollowed(user_id="u-c", tournament_id="t-2", occurred_at=at(1)),
        *follows("c-1", "u-channel-fan"),
    )
    state = Notifier(key="tournament:t-1")
    state, _ = decide(
        state,
        TournamentCreated(
            tournament_id="t-1", name="LEC Summer", game="LoL", organizer_id="o", starts_at=at(0)
        ),
        folks,
        now=NOW,
    )
    scheduled = MatchScheduled(
        tournament_id="t-1", match_id="m-1", teams=("G2", "FNC"), scheduled_start=at(5), round_name="Final"
    )
    state, _ = decide(state, scheduled, folks, now=NOW)
    cause = match_started()
    state, issued = decide(state, cause, folks, now=NOW)
    assert [n.user_id for n in issued] == ["u-a"]
    n = issued[0]
    assert n.kind is NotificationKind.MATCH_STARTING and n.url == "/tournaments/t-1"
    assert (n.title, n.body) == ("LEC Summer: a match is starting", "G2 vs FNC · Final")
    assert n.notification_id == notification_id(str(cause.event_id), "u-a")
    assert decide(state, cause, folks, now=NOW) == (state, [])


def test_decided_causes_are_bounded_newest_kept() -> None:
    state = Notifier(key="stream:s-1")
    causes = [went_live(i) for i in range(RECENT_CAUSES + 5)]
    for cause in causes:
        state, _ = decide(state, cause, Audience(), now=NOW)
    assert state.recent_causes == tuple(str(c.event_id) for c in causes[-RECENT_CAUSES:])


def test_other_events_change_nothing() -> None:
    ended = StreamEnded(stream_id="s-1", channel_id="c-1", ended_at=at(1))
    state = Notifier(key="stream:s-1", name="x")
    assert decide(state, ended, Audience(), now=NOW) == (state, [])
    assert notifier_key(ended) is None
    assert Audience().apply(ModeratorAppointed(user_id="u", channel_id="c", appointed_by="o")) is False


def test_keys_separate_streams_and_tournaments() -> None:
    assert notifier_key(went_live(stream="x")) == "stream:x"
    assert notifier_key(match_started(tournament="x")) == "tournament:x"


def test_the_notifier_survives_its_json_round_trip() -> None:
    state = Notifier(key="tournament:t-1", name="LEC", matches=(("m-1", "A vs B"),), recent_causes=("e-1",))
    assert Notifier.from_json(json.loads(json.dumps(state.to_json()))) == state
    assert Notifier.from_json({"key": "stream:s"}) == Notifier(key="stream:s")


def test_causes_older_than_the_limit_are_history_not_news() -> None:
    folks = audience(*follows("c-1", "u-a"))
    cause = went_live(10)
    limit = cause.occurred_at + MAX_CAUSE_AGE
    assert decide(Notifier(key="stream:s-1"), cause, folks, now=limit + timedelta(milliseconds=1)) == (
        Notifier(key="stream:s-1"),
        [],
    )
    _, issued = decide(Notifier(key="stream:s-1"), cause, folks, now=limit)
    assert [n.user_id for n in issued] == ["u-a"]
    old_match = match_started(10)
    late = old_match.occurred_at + MAX_CAUSE_AGE * 2
    folks.apply(TournamentFollowed(user_id="u-a", tournament_id="t-1", occurred_at=at(0)))
    assert decide(Notifier(key="tournament:t-1"), old_match, folks, now=late)[1] == []
