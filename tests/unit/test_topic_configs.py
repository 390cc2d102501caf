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


@pytest.mark.parametrize(
    ("brokers", "replication", "min_insync"), [(1, 1, 1), (2, 2, 1), (3, 3, 2), (5, 3, 2)]
)
def test_a_local_cluster_defaults_to_replication_3_and_min_insync_2(
    brokers: int, replication: int, min_insync: int
) -> None:
    kafka = KafkaSettings(brokers=brokers)
    assert (kafka.replication, kafka.min_insync) == (replication, min_insync)
    assert kafka.bootstrap_servers == ",".join(f"127.0.0.1:{9092 + 100 * n}" for n in range(brokers))


def test_named_bootstrap_servers_are_kept_whatever_the_local_brokers() -> None:
    kafka = KafkaSettings(brokers=3, bootstrap_servers="kafka-0.kafka:9092")
    assert kafka.bootstrap_servers == "kafka-0.kafka:9092" and kafka.node_ports(3) == (9292, 9293)
