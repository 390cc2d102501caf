"""The topic catalogue: each event type on exactly one topic, keys present, names unique, writers real.

Who may write which topic is checked against the code by ``test_topic_contract.py``."""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
from pathlib import Path

import pytest

import events
from events import channels, chat, ingest, notifications, points, polls, streams, tournaments, users, viewers
from events.base import Event
from events.topics import (
    CATALOGUE,
    FOREVER,
    Topic,
    TopicSpec,
    all_event_types,
    partition_key,
    spec,
    topic_for,
)
from tests.unit.event_samples import sample_event

FAMILIES = (channels, chat, ingest, notifications, points, polls, streams, tournaments, users, viewers)
REPO = Path(__file__).resolve().parents[2]


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


def test_the_topic_names_are_the_catalogue_names() -> None:
    assert [str(t.name) for t in CATALOGUE] == [str(member) for member in Topic]
    assert all(isinstance(t.name, Topic) for t in CATALOGUE)


def test_specs_are_sane() -> None:
    for topic in CATALOGUE:
        assert (REPO / topic.owner / "__init__.py").exists(), f"{topic.name}: no package {topic.owner}"
        for gateway in topic.gateways:
            assert importlib.util.find_spec(gateway.module) is not None, gateway.module
            assert not gateway.module.startswith(topic.owner + "."), f"{gateway.module} is the owner"
        assert topic.cleanup_policy in ("delete", "compact", "compact,delete")
        assert topic.retention_ms is None or topic.retention_ms == FOREVER or topic.retention_ms > 0
        assert topic.description
        assert (topic.key_field is None) == (topic.event_types == ()), (
            topic.name
        )  # only deadletter: raw copies


def test_topic_for_and_partition_key() -> None:
    went_live = sample_event(streams.StreamWentLive, stream_id="s-9")
    assert topic_for(went_live).name == "streams.lifecycle"
    assert topic_for(streams.StreamWentLive) is topic_for(went_live)
    assert partition_key(went_live) == b"s-9"
    issued = sample_event(notifications.NotificationIssued, user_id="u-1")
    assert topic_for(issued).name == "notifications" and partition_key(issued) == b"u-1"
    assert topic_for(users.ChannelFollowed).key_field == "user_id"


def test_stream_keys_are_per_channel() -> None:
    rotated = sample_event(channels.ChannelStreamKeyRotated, channel_id="c-7")
    assert partition_key(rotated) == b"c-7"


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
