"""Where things are in the cluster: catalogue names to the cluster's topic names, a record's position,
the partition a key lands on, and the options every client of the platform is given."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from aiokafka.partitioner import murmur2

from events.base import Event
from events.topics import topic_for
from infra.security import client_ssl_context
from infra.settings import KafkaSettings

__all__ = [
    "Headers",
    "Position",
    "TopicNames",
    "client_options",
    "keys_per_partition",
    "partition_of_key",
    "security_options",
]

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Position:
    """Where a record sits in the log: the event's durable address, returned to callers as proof.

    ``topic`` is the catalogue name (without the deployment's prefix), as clients see it.
    """

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"


class TopicNames:
    """Maps catalogue topic names to the cluster's names (the namespace prefix from settings)."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def physical(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def logical(self, physical: str) -> str:
        return physical.removeprefix(self.prefix)

    def of(self, event: Event) -> str:
        return self.physical(topic_for(event).name)


@lru_cache(maxsize=65536)
def partition_of_key(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as aiokafka's and the Java client's) gives
    ``key`` among ``partitions``: where a keyed record lands, computed before sending it.

    Cached: aiokafka's murmur2 is pure Python (a few µs, a large share of a small record's publish),
    and the keys of a busy topic repeat (a hot stream's id, an active viewer's session)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def keys_per_partition(prefix: str, partitions: int) -> tuple[str, ...]:
    """One record key per partition (of ``partitions``), ``prefix-N``, each hashing to its own: the keys
    of markers written to every partition of a topic keyed by something else (a voter, a sender)."""
    keys: dict[int, str] = {}
    n = 0
    while len(keys) < partitions:
        key = f"{prefix}-{n}"
        keys.setdefault(partition_of_key(key.encode(), partitions), key)
        n += 1
    return tuple(keys[p] for p in range(partitions))


def client_options(settings: KafkaSettings, role: str) -> dict[str, Any]:
    """What every client of the platform is given: the brokers, a client id naming its role, timeouts,
    and how it proves who it is (TLS, SASL) when the deployment asks for it."""
    return {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": f"{settings.client_id}-{role}",
        "request_timeout_ms": settings.request_timeout_ms,
        **security_options(settings),
    }


def security_options(settings: KafkaSettings) -> dict[str, Any]:
    """aiokafka's security arguments from settings: none for PLAINTEXT (today's defaults)."""
    protocol = settings.protocol
    if protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {
        "security_protocol": protocol,
        "ssl_context": _ssl_context(settings.ssl_cafile, settings.ssl_check_hostname),
    }
    if protocol == "SASL_SSL":
        options |= {
            "sasl_mechanism": settings.sasl_mechanism,
            "sasl_plain_username": settings.username,
            "sasl_plain_password": settings.sasl_password(),
        }
    return options


@lru_cache(maxsize=8)
def _ssl_context(cafile: Path | None, check_hostname: bool) -> ssl.SSLContext:
    # One context per CA: building one reads and parses the bundle, and every client shares it.
    return client_ssl_context(cafile, check_hostname=check_hostname)
