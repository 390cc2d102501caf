"""A processors worker started while a broker is down (restarted during an outage) retries the check
of its topics while Kafka's error is retriable, and fails at once on anything else (pure: the check
itself is replaced)."""

from __future__ import annotations

import pytest

from infra.kafka import BrokerUnavailable, KafkaError
from infra.settings import KafkaSettings
from stream_processors import worker
from stream_processors.topology import TopologyError


def _checks(monkeypatch: pytest.MonkeyPatch, outcomes: list[object]) -> list[object]:
    """Replace prepare_topics by one answering ``outcomes`` in turn (an exception is raised)."""
    calls: list[object] = []

    async def prepare(kafka: KafkaSettings, family: str | None) -> int:
        outcome = outcomes[len(calls)]
        calls.append(outcome)
        if isinstance(outcome, BaseException):
            raise outcome
        assert isinstance(outcome, int)
        return outcome

    monkeypatch.setattr(worker, "prepare_topics", prepare)
    return calls


async def test_a_broker_down_at_start_is_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    down = BrokerUnavailable("describing topics: NodeNotReadyError(node 1)")
    calls = _checks(monkeypatch, [down, down, 6])
    assert await worker.prepared(KafkaSettings(), None, retry_s=5, every_s=0.01) == 6
    assert len(calls) == 3


async def test_it_gives_up_after_its_time(monkeypatch: pytest.MonkeyPatch) -> None:
    down = BrokerUnavailable("describing topics: Kafka did not answer")
    calls = _checks(monkeypatch, [down] * 100)
    with pytest.raises(BrokerUnavailable):
        await worker.prepared(KafkaSettings(), None, retry_s=0.05, every_s=0.01)
    assert 1 <= len(calls) < 100


@pytest.mark.parametrize("error", [KafkaError("not authorized"), TopologyError("topics [x] do not exist")])
async def test_what_waiting_cannot_mend_fails_at_once(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    calls = _checks(monkeypatch, [error, 6])
    with pytest.raises(type(error)):
        await worker.prepared(KafkaSettings(), None, retry_s=5, every_s=0.01)
    assert len(calls) == 1
