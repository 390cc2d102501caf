"""The local stack started by `esports infra up` (run it first; a missing service fails, never skips)."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator

import pytest

from infra import stack
from infra.settings import REPO_ROOT, Settings
from tests.ports import free_port

pytestmark = pytest.mark.integration

KAFKA_TOOL = REPO_ROOT / "infra" / "kafka-tool"


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings()


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port on which this test itself listens, like any foreign process would."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield int(listener.getsockname()[1])


def _running(settings: Settings) -> dict[str, stack.ServiceStatus]:
    statuses = {s.name: s for s in stack.status(settings)}
    broken = [f"{s.name}: {s.detail} (log {s.log})" for s in statuses.values() if not s.running]
    assert not broken, "run `esports infra up` first; not running:\n" + "\n".join(broken)
    return statuses


def test_status_reports_all_three_running(settings: Settings) -> None:
    statuses = _running(settings)

    assert set(statuses) == {"kafka", "postgres", "redis"}
    assert statuses["kafka"].detail.startswith("Kafka ")
    assert statuses["postgres"].detail.startswith("PostgreSQL ")
    assert statuses["redis"].detail.startswith("Redis ")
    assert all(s.pid and s.rss_bytes for s in statuses.values())


def test_second_up_starts_nothing(settings: Settings) -> None:
    before = {name: s.pid for name, s in _running(settings).items()}

    after = {s.name: s.pid for s in stack.up(settings)}

    assert after == before


def test_kafka_tool_lists_topics(settings: Settings) -> None:
    _running(settings)

    result = subprocess.run(
        [KAFKA_TOOL, "topics", "--bootstrap-server", f"127.0.0.1:{settings.kafka.port}", "--list"],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert "WARN" not in result.stdout and "INFO" not in result.stdout  # tools log to stderr, warnings only


def test_kafka_tool_help_lists_the_tools() -> None:
    result = subprocess.run([KAFKA_TOOL, "--help"], capture_output=True, text=True, timeout=30)

    assert result.returncode == 0
    for tool in ("topics", "consumer-groups", "console-consumer", "console-producer", "storage"):
        assert f"  {tool} " in result.stdout


def test_kafka_tool_rejects_an_unknown_tool() -> None:
    result = subprocess.run([KAFKA_TOOL, "no-such-tool"], capture_output=True, text=True, timeout=30)

    assert result.returncode != 0
    assert "unknown tool" in result.stderr


def _settings_with_port(setting: str, port: int) -> Settings:
    """Settings whose ports are all free except `setting`, which is `port`."""
    ports = {
        name: free_port()
        for name in (
            "ESPORTS_KAFKA__PORT",
            "ESPORTS_KAFKA__CONTROLLER_PORT",
            "ESPORTS_POSTGRES__PORT",
            "ESPORTS_REDIS__PORT",
        )
    }
    ports[setting] = port
    settings = Settings()
    return settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(
                update={
                    "port": ports["ESPORTS_KAFKA__PORT"],
                    "controller_port": ports["ESPORTS_KAFKA__CONTROLLER_PORT"],
                }
            ),
            "postgres": settings.postgres.model_copy(update={"port": ports["ESPORTS_POSTGRES__PORT"]}),
            "redis": settings.redis.model_copy(update={"port": ports["ESPORTS_REDIS__PORT"]}),
        }
    )


@pytest.mark.parametrize(
    ("service", "setting"),
    [
        ("kafka", "ESPORTS_KAFKA__PORT"),
        ("kafka", "ESPORTS_KAFKA__CONTROLLER_PORT"),
        ("postgres", "ESPORTS_POSTGRES__PORT"),
        ("redis", "ESPORTS_REDIS__PORT"),
    ],
)
def test_a_taken_port_is_reported_with_the_setting_that_moves_it(
    held_port: int, service: str, setting: str
) -> None:
    conflicts = stack.port_conflicts(_settings_with_port(setting, held_port), [service])

    assert len(conflicts) == 1
    assert f"port {held_port} " in conflicts[0]
    assert f"{setting}=" in conflicts[0]


def test_free_ports_are_no_conflict() -> None:
    assert stack.port_conflicts(_settings_with_port("ESPORTS_REDIS__PORT", free_port())) == []
