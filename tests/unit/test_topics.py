"""The topic catalogue: each event type on exactly one topic, keys present, names unique."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

import events
from events import channels, chat, ingest, notifications, polls, streams, tournaments, users, viewers
from events.base import Event
from events.topics import CATALOGUE, FOREVER, TopicSpec, all_event_types, partition_key, spec, topic_for
from tests.unit.event_samples import sample_event

FAMILIES = (channels, chat, ingest, notifications, polls, streams, tournaments, users, viewers)
OWNERS = {"producers", "edge_ws", "ingest_workers", "stream_processors", "infra"}


def defined_event_types() -> set[type[Event]]:
    """Every Event subclass defined in a family module."""
    return {
        obj
        for module in FAMILIES
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, Event)
        and obj is not Event
        and obj.__module__ == module.__name__
    }


def test_topic_names_unique() -> None:
    names = [t.name for t in CATALOGUE]
    assert len(names) == len(set(names))


def test_every_event_type_in_exactly_one_topic() -> None:
    placed = [cls for t in CATALOGUE for cls in t.event_types]
    assert len(placed) == len(set(placed))
    assert set(placed) == defined_event_types()


@pytest.mark.parametrize("topic", [t for t in CATALOGUE if t.key_field], ids=lambda t: t.name)
def test_key_field_exists_on_every_event_type(topic: TopicSpec) -> None:
    for cls in topic.event_types:
        assert topic.key_field in {f.name for f in dataclasses.fields(cls)}, cls.__name__


def test_suggested_catalogue_is_covered() -> None:
    expected = {
        "users",
        "channels",
        "streams",
        "streams.lifecycle",
        "tournaments",
        "ingest",
        "chat.submitted",
        "chat.sent",
        "chat.moderation",
        "chat.messages",
        "viewers.heartbeats",
        "viewers.presence",
        "polls.votes",
        "viewers.counts",
        "viewers.match_counts",
        "polls",
        "polls.tallies",
        "notifications",
        "deadletter",
    }
    assert {t.name for t in CATALOGUE} == expected


def test_specs_are_sane() -> None:
    for topic in CATALOGUE:
        assert topic.owner in OWNERS, topic.name
        assert topic.cleanup_policy in ("delete", "compact", "compact,delete")
        assert topic.retention_ms is None or topic.retention_ms == FOREVER or topic.retention_ms > 0
        assert topic.description
    for name in ("users", "channels", "streams", "streams.lifecycle", "tournaments"):
        assert spec(name).retention_ms == FOREVER
    assert spec("deadletter").event_types == () and spec("deadletter").key_field is None
    assert spec("deadletter").owner == "infra"


def test_topic_for_and_partition_key() -> None:
    went_live = sample_event(streams.StreamWentLive, stream_id="s-9")
    assert topic_for(went_live).name == "streams.lifecycle"
    assert topic_for(streams.StreamWentLive) is topic_for(went_live)
    assert partition_key(went_live) == b"s-9"
    issued = sample_event(notifications.NotificationIssued, user_id="u-1")
    assert topic_for(issued).name == "notifications" and partition_key(issued) == b"u-1"
    assert topic_for(users.ChannelFollowed).key_field == "user_id"


def test_stream_requests_and_lifecycle_decisions_have_separate_writers() -> None:
    """Producers record what was asked; only the lifecycle agent decides live/ended."""
    assert spec("streams").owner == "producers"
    assert spec("streams").event_types == (
        streams.StreamCreated,
        streams.StreamUpdated,
        streams.StreamScheduled,
        streams.StreamEndRequested,
    )
    lifecycle = spec("streams.lifecycle")
    assert lifecycle.owner == "stream_processors" and lifecycle.key_field == "stream_id"
    assert lifecycle.event_types == (
        streams.StreamWentLive,
        streams.StreamEnded,
        streams.StreamTransitionRejected,
    )
    names = [t.name for t in CATALOGUE]
    assert names.index("streams.lifecycle") == names.index("streams") + 1


def test_stream_keys_are_per_channel() -> None:
    rotated = sample_event(channels.ChannelStreamKeyRotated, channel_id="c-7")
    assert topic_for(rotated).name == "channels" and partition_key(rotated) == b"c-7"
    assert spec("channels").owner == "producers"
    assert not hasattr(streams, "StreamKeyRotated")


def test_unknown_event_or_topic_is_a_clear_error() -> None:
    @dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
    class NotCatalogued(Event):
        stream_id: str

    with pytest.raises(KeyError, match="NotCatalogued"):
        topic_for(NotCatalogued)
    with pytest.raises(KeyError, match=r"no\.such"):
        spec("no.such")


def test_all_event_types_matches_catalogue() -> None:
    assert set(all_event_types()) == {cls for t in CATALOGUE for cls in t.event_types}
    assert events.Event is Event
