"""What `up`, `down` and `status` know about any local service, infrastructure or application."""

from __future__ import annotations

import string
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from infra.settings import Settings
from infra.stack import processes

LOCAL_DIR = Path(__file__).resolve().parent.parent / "local"


class StackError(Exception):
    """A service could not be started, stopped or inspected; the message says what to do."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceStatus:
    """What `status` knows about one local service."""

    name: str
    running: bool  # our process is alive and answers its protocol
    address: str
    log: Path
    pid: int | None
    detail: str  # server version when running, otherwise why not
    rss_bytes: int | None = None  # process tree total (shared memory counted once per PostgreSQL backend)


class Port(NamedTuple):
    """A port a service listens on, with the setting that moves it."""

    number: int
    env: str  # e.g. ESPORTS_REDIS__PORT
    what: str  # what listens there; its first word names the service in messages
    host: str = "127.0.0.1"

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.number}" if ":" in self.host else f"{self.host}:{self.number}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Service:
    """How the stack prepares, starts, checks and stops one service; each capability module declares one."""

    name: str
    ports: Callable[[Settings], list[Port]]  # the first one is its address
    prepare: Callable[[Settings], None]  # blocking: render config, resolve, initialise data
    start: Callable[[Settings], None]  # blocking, returns once the process is launched
    ready: Callable[[Settings], Awaitable[str]]  # first successful check after a start (may provision)
    probe: Callable[[Settings], Awaitable[str]]  # answers → server version or health
    stop: Callable[[Settings, int], None]  # blocking, returns once the process is gone
    find_pid: Callable[[Settings], int | None] | None = None  # None: the process of its pid file
    binds: bool = True  # False: it only polls its port (another service listens there): no conflict check
    complete: Callable[[Settings], bool] | None = None  # None: running = complete; else all its processes up

    def pid(self, settings: Settings) -> int | None:
        """The live process of this service that we started (or adopted), or None."""
        if self.find_pid is not None:
            return self.find_pid(settings)
        return processes.our_pid(settings, self.name)

    def whole(self, settings: Settings) -> bool:
        """Whether all its processes run (`up` starts the missing ones of a partly running service)."""
        return self.complete(settings) if self.complete is not None else self.pid(settings) is not None

    def address(self, settings: Settings) -> str:
        return self.ports(settings)[0].address


def render(template: str, target: Path, **values: object) -> None:
    """Write infra/local/<template> to `target` with $names substituted."""
    text = string.Template((LOCAL_DIR / template).read_text()).substitute(values)
    target.write_text(text)
