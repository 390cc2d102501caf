"""The platform's application services, run by `up` next to the infrastructure.

Each is a detached Python process with a pid file and a log like Kafka's or Redis's, ready once
``GET /health`` on its port answers 200. Adding one (edge, ingest, demo) is one `App` in `APP_TABLE`;
its port setting doubles as the ESPORTS_* variable named when the port is taken. A command that
does not exist yet fails only when started: the process exits and `up` shows its log.
"""

from __future__ import annotations

import asyncio
import os
import sys
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from operator import attrgetter
from types import MappingProxyType

from infra.postgres_roles import API_ROLE, PROJECTOR_ROLE
from infra.settings import REPO_ROOT, Settings
from infra.stack import postgres, processes, secure_broker
from infra.stack.service import Port, Service, StackError

HEALTH_TIMEOUT_S = 3.0


def esports(*command: str) -> tuple[str, ...]:
    """argv of an `esports` subcommand, run by this interpreter (the venv's, whatever PATH says)."""
    return (sys.executable, "-m", "infra.cli", *command)


@dataclass(frozen=True, slots=True, kw_only=True)
class App:
    """One application service: its command line and the port whose GET /health says it is ready."""

    name: str
    argv: tuple[str, ...]
    port_setting: str  # dotted path in Settings, e.g. "api.port"
    host_setting: str | None = None  # dotted path of the address it binds; None: 127.0.0.1
    health_path: str = "/health"
    metrics_path: str | None = "/metrics"  # what the local Prometheus scrapes; None: no metrics
    binds: bool = True  # False: it only polls `port` for readiness (another app listens there)
    kafka_user: str | None = None  # its package: the SCRAM user it connects as to a secure broker
    postgres_role: str | None = None  # its PostgreSQL role under ESPORTS_POSTGRES__SERVICE_ROLES

    @property
    def port_env(self) -> str:
        """The environment variable of `port_setting`, e.g. ESPORTS_API__PORT."""
        return "ESPORTS_" + self.port_setting.upper().replace(".", "__")

    def port(self, settings: Settings) -> Port:
        host = attrgetter(self.host_setting)(settings) if self.host_setting else "127.0.0.1"
        number = attrgetter(self.port_setting)(settings)
        return Port(int(number), self.port_env, f"{self.name} web server", str(host))

    def health_url(self, settings: Settings) -> str:
        return f"http://{self.port(settings).address}{self.health_path}"

    def scrape_address(self, settings: Settings) -> str:
        """host:port where this machine reaches the app (loopback when it binds every address)."""
        port = self.port(settings)
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(port.host, port.host)
        return port._replace(host=host).address


APP_TABLE: Mapping[str, App] = MappingProxyType(
    {
        app.name: app
        for app in (
            App(
                name="api",
                argv=esports("api"),
                port_setting="api.port",
                host_setting="api.host",
                kafka_user="producers",
                postgres_role=API_ROLE,
            ),
            App(
                name="processors",
                argv=esports("processors"),
                kafka_user="stream_processors",
                port_setting="processors.web_port",
                host_setting="processors.web_host",
            ),
            App(
                name="projector",
                argv=esports("projector"),
                kafka_user="projections",
                postgres_role=PROJECTOR_ROLE,
                port_setting="projections.web_port",
                host_setting="projections.web_host",
            ),
            App(
                name="edge",
                argv=esports("edge"),
                port_setting="edge.port",
                host_setting="edge.host",
                kafka_user="edge_ws",
            ),
            App(
                name="edge2",
                argv=esports("edge", "--second"),
                kafka_user="edge_ws",
                port_setting="edge.second_port",
                host_setting="edge.host",
            ),
            App(
                name="ingest",
                argv=esports("ingest"),
                port_setting="ingest.hook_port",
                kafka_user="ingest_workers",
            ),
            # The demo push needs the API and the ingest node; `esports up` starts it after them. Its
            # readiness is the HLS origin's (nginx run by the ingest node) answering.
            App(
                name="demo",
                argv=esports("demo"),
                port_setting="ingest.origin_port",
                host_setting="ingest.host",
                binds=False,
                metrics_path=None,
            ),
        )
    }
)


def names() -> tuple[str, ...]:
    """Every app in the table, in its order."""
    return tuple(APP_TABLE)


def service(name: str) -> Service:
    """The lifecycle of app `name` (KeyError if the table has none)."""
    app = APP_TABLE[name]
    check = partial(_health, app)
    return Service(
        name=app.name,
        ports=lambda settings: [app.port(settings)],
        binds=app.binds,
        prepare=_prepare,
        start=partial(_start, app),
        ready=check,
        probe=check,
        stop=partial(_stop, app),
    )


def _prepare(settings: Settings) -> None:
    """Nothing to render: apps read their settings from the environment they inherit."""


def _start(app: App, settings: Settings) -> None:
    # Unbuffered, so the log tail shown when a start fails has the last lines the process printed.
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        **secure_broker.service_env(settings, app.kafka_user),
        **postgres.service_env(settings, app.postgres_role),
    }
    processes.spawn(settings, app.name, list(app.argv), cwd=REPO_ROOT, env=env)


def _stop(app: App, settings: Settings, pid: int) -> None:
    processes.terminate(pid, app.name, group=True)  # with any workers it forked


async def _health(app: App, settings: Settings) -> str:
    """GET the app's health URL; 200 → a one-line summary, anything else raises."""
    url = app.health_url(settings)
    status, body = await asyncio.to_thread(http_get, url)
    if status != 200:
        raise StackError(f"GET {url} answered {status}")
    summary = " ".join(body.split())
    return f"GET {url}: 200 {summary[:80]}".rstrip()


def http_get(url: str) -> tuple[int, str]:
    """(status, the first 512 characters of the body) of GET `url` on this machine."""
    # Never through a proxy from http_proxy/HTTP_PROXY: the app is on this machine.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=HEALTH_TIMEOUT_S) as response:
        return int(response.status), response.read(512).decode(errors="replace")
