"""Topic configuration from the catalogue and the deployment: min.insync.replicas follows replication."""

from __future__ import annotations

import pytest

from events.topics import spec
from infra.kafka import topic_configs
from infra.settings import KafkaSettings


@pytest.mark.parametrize(
    ("replication", "explicit", "expected"), [(1, None, 1), (2, None, 1), (3, None, 2), (3, 3, 3)]
)
def test_min_insync_replicas_follows_the_replication_factor(
    replication: int, explicit: int | None, expected: int
) -> None:
    kafka = KafkaSettings(replication_factor=replication, min_insync_replicas=explicit)
    configs = topic_configs(spec("chat.messages"), kafka)
    assert configs["min.insync.replicas"] == str(expected)
    assert configs["cleanup.policy"] == "delete" and configs["retention.ms"] == "-1"
