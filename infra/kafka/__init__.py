"""The Kafka adapter every service shares; import its names from here (``from infra.kafka import ...``).

- :mod:`~infra.kafka.publisher`: :class:`EventPublisher`, idempotent and acks=all, optionally bounded.
- :mod:`~infra.kafka.consumer`: :class:`EventConsumer`, decoding, at-least-once; :class:`CatchUp` for
  readers of whole topics; consumer lag.
- :mod:`~infra.kafka.dead_letters`: what a consumer does with a record it cannot decode.
- :mod:`~infra.kafka.admin`: the catalogue's topics created and described.
- :mod:`~infra.kafka.names`: topic names, record positions, the partition of a key, client options.
- :mod:`~infra.kafka.errors`: the error family (``retriable``), aiokafka's exceptions translated.
- :mod:`~infra.kafka.aiokafka_internals`: what the above rely on in aiokafka's private state.
"""

from infra.kafka.admin import TopicAdmin, TopicState, topic_configs, wait_for_broker
from infra.kafka.consumer import (
    CatchUp,
    ConsumedEvent,
    EventConsumer,
    StartPositions,
    consumed_event,
    lags_of,
)
from infra.kafka.dead_letters import DeadLetters, LoggedDeadLetters
from infra.kafka.errors import (
    BrokerUnavailable,
    KafkaError,
    NotPublished,
    PublishFailed,
    PublishInDoubt,
    translate,
)
from infra.kafka.names import (
    Position,
    TopicNames,
    client_options,
    keys_per_partition,
    partition_of_key,
)
from infra.kafka.publisher import FRESH_ANSWER_S, EventPublisher

__all__ = [
    "FRESH_ANSWER_S",
    "BrokerUnavailable",
    "CatchUp",
    "ConsumedEvent",
    "DeadLetters",
    "EventConsumer",
    "EventPublisher",
    "KafkaError",
    "LoggedDeadLetters",
    "NotPublished",
    "Position",
    "PublishFailed",
    "PublishInDoubt",
    "StartPositions",
    "TopicAdmin",
    "TopicNames",
    "TopicState",
    "client_options",
    "consumed_event",
    "keys_per_partition",
    "lags_of",
    "partition_of_key",
    "topic_configs",
    "translate",
    "wait_for_broker",
]
