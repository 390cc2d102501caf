"""The application table of the local stack and the CLI's choice of services (no processes started)."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from types import MappingProxyType

import pytest

from infra import stack
from infra.settings import Settings
from infra.stack import apps
from infra.stack.service import Port

PLATFORM_APPS = {
    "api": "ESPORTS_API__PORT",
    "processors": "ESPORTS_PROCESSORS__WEB_PORT",
    "projector": "ESPORTS_PROJECTIONS__WEB_PORT",
}


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port on which this test itself listens, like any foreign process would."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield int(listener.getsockname()[1])


def _with_env(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_the_groups_of_services() -> None:
    assert stack.SERVICES == ("kafka", "postgres", "redis")
    assert stack.APPS[:3] == ("api", "processors", "projector")
    assert stack.ALL == stack.SERVICES + stack.APPS
    assert not set(stack.SERVICES) & set(stack.APPS)


@pytest.mark.parametrize("name", PLATFORM_APPS)
def test_each_app_runs_its_esports_command_with_this_interpreter(name: str) -> None:
    assert apps.APP_TABLE[name].argv == (sys.executable, "-m", "infra.cli", name)


@pytest.mark.parametrize(("name", "env"), PLATFORM_APPS.items())
def test_the_env_name_of_an_app_port_is_the_one_that_moves_it(
    monkeypatch: pytest.MonkeyPatch, name: str, env: str
) -> None:
    settings = _with_env(monkeypatch, **{env: "23456"})

    port = apps.APP_TABLE[name].port(settings)

    assert (port.number, port.env) == (23456, env)


def test_health_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _with_env(
        monkeypatch,
        ESPORTS_API__HOST="127.0.0.2",
        ESPORTS_API__PORT="8123",
        ESPORTS_PROCESSORS__WEB_PORT="7066",
        ESPORTS_PROJECTIONS__WEB_PORT="7067",
    )

    urls = {name: app.health_url(settings) for name, app in apps.APP_TABLE.items()}

    assert urls["api"] == "http://127.0.0.2:8123/health"
    assert urls["processors"] == "http://127.0.0.1:7066/health"
    assert urls["projector"] == "http://127.0.0.1:7067/health"


def test_an_ipv6_address_is_bracketed() -> None:
    assert Port(8000, "ESPORTS_API__PORT", "api web server", "::1").address == "[::1]:8000"


@pytest.mark.parametrize(("name", "env"), PLATFORM_APPS.items())
def test_a_taken_app_port_is_reported_with_the_setting_that_moves_it(
    monkeypatch: pytest.MonkeyPatch, held_port: int, name: str, env: str
) -> None:
    settings = _with_env(monkeypatch, **{env: str(held_port)})

    conflicts = stack.port_conflicts(settings, [name])

    assert len(conflicts) == 1
    assert f"port {held_port} ({name} web server) on 127.0.0.1 is already in use" in conflicts[0]
    assert f"move the local {name} with {env}=<free port>" in conflicts[0]


def test_a_new_app_is_one_table_entry(monkeypatch: pytest.MonkeyPatch, held_port: int) -> None:
    edge = apps.App(name="edge", argv=apps.esports("edge"), port_setting="api.port")
    monkeypatch.setattr(apps, "APP_TABLE", MappingProxyType({**apps.APP_TABLE, "edge": edge}))
    settings = _with_env(monkeypatch, ESPORTS_API__PORT=str(held_port))

    assert "move the local edge with ESPORTS_API__PORT=" in stack.port_conflicts(settings, ["edge"])[0]


@pytest.mark.parametrize(
    ("names", "flags", "expected"),
    [
        ([], {}, None),  # each command's default
        (["redis"], {}, ["redis"]),
        ([], {"apps": True}, list(stack.APPS)),
        ([], {"everything": True}, list(stack.ALL)),
        (["kafka"], {"apps": True}, ["kafka", *stack.APPS]),
        (["api"], {"apps": True}, list(stack.APPS)),  # no duplicates
    ],
)
def test_the_names_a_command_line_asks_for(
    names: list[str], flags: dict[str, bool], expected: list[str] | None
) -> None:
    assert stack.requested(names, **flags) == expected


def test_an_unknown_name_fails_before_anything_starts(capsys: pytest.CaptureFixture[str]) -> None:
    assert stack.main(["up", "no-such-service"]) == 1
    assert "unknown service(s) no-such-service" in capsys.readouterr().err


def test_apps_and_all_exclude_each_other() -> None:
    assert stack.main(["status", "--apps", "--all"]) == 1


def test_up_apps_refuses_infrastructure() -> None:
    with pytest.raises(stack.StackError, match="kafka not an application service"):
        stack.up_apps(Settings(), ["kafka"])
