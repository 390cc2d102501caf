"""The local platform: Kafka (KRaft), PostgreSQL and Redis, then the application services, as processes.

``esports infra up|down|status [NAME...]`` (or ``python -m infra.stack ...``) runs each infrastructure
service from the machine's own binaries and Maven Central jars, and each application service (api,
processors, projector, see `apps`) as a Python process, with all state under ``settings.stack.run_dir``::

    run_dir/kafka/libs-<version>/  jars resolved from infra/local/kafka/pom.xml
    run_dir/kafka/data/            KRaft metadata and topic logs
    run_dir/postgres/data/         the cluster (initdb on first start)
    run_dir/redis/                 the append-only file (cluster/node-N/: each node of a Redis Cluster)
    run_dir/prometheus/            the local Prometheus's generated config and data (when observing)
    run_dir/logs/<service>.log     each service's output
    run_dir/pids/<service>.pid     "<pid> <start time>" of each process this module started

Only processes recorded in a pid file (and still the same process: the start time must match) are
ever stopped; a port held by anything else is reported with the setting that moves it.

Modules by capability: `processes` (pid files, spawning, stopping, ports, logs), `kafka`, `postgres`,
`redis` (each: prepare, start, probe, stop), `apps` (the application table), `prometheus` (the observer
that runs only when asked: ESPORTS_PROMETHEUS__ENABLED or by name), `service` (the shared types).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Sequence

from infra.settings import Settings
from infra.stack import apps, kafka, postgres, processes, prometheus, redis
from infra.stack.kafka import resolve_kafka_jars
from infra.stack.processes import say
from infra.stack.service import Service, ServiceStatus, StackError

__all__ = [
    "ALL",
    "APPS",
    "OBSERVERS",
    "SERVICES",
    "ServiceStatus",
    "StackError",
    "down",
    "down_apps",
    "main",
    "port_conflicts",
    "resolve_kafka_jars",
    "status",
    "up",
    "up_apps",
]

SERVICES = ("kafka", "postgres", "redis")
APPS = apps.names()
ALL = SERVICES + APPS
OBSERVERS = (prometheus.NAME,)  # in a default command only when enabled (or running): see `_observing`
_INFRA = {s.name: s for s in (kafka.SERVICE, postgres.SERVICE, redis.SERVICE)}


def _node(name: str) -> int | None:
    """N of a cluster node's service name "kafka-N", else None."""
    prefix, _, number = name.partition("-")
    return int(number) if prefix == "kafka" and number.isdigit() and 1 <= int(number) <= 9 else None


def _infra(name: str) -> bool:
    return name in _INFRA or _node(name) is not None


def _service(name: str) -> Service:
    if name in _INFRA:
        return _INFRA[name]
    if name == prometheus.NAME:
        return prometheus.SERVICE
    if (node := _node(name)) is not None:
        return kafka.node_service(node)
    try:
        return apps.service(name)
    except KeyError:
        raise StackError(f"unknown service {name}; choose from {', '.join(_known())}") from None


def _known() -> tuple[str, ...]:
    return SERVICES + apps.names() + OBSERVERS


def _observing(settings: Settings) -> tuple[str, ...]:
    """The observers a command covers by default: Prometheus when the settings enable it or it runs."""
    wanted = settings.prometheus.enabled or prometheus.SERVICE.pid(settings) is not None
    return OBSERVERS if wanted else ()


def _selected(names: Sequence[str] | None, default: Sequence[str]) -> list[str]:
    chosen = list(names or default)
    if unknown := sorted(name for name in set(chosen) - set(_known()) if _node(name) is None):
        raise StackError(f"unknown service(s) {', '.join(unknown)}; choose from {', '.join(_known())}")
    return chosen


def _apps_only(names: Sequence[str] | None) -> list[str]:
    chosen = list(apps.names() if names is None else names)
    if infra := [name for name in chosen if _infra(name)]:
        raise StackError(f"{', '.join(infra)} not an application service; choose from {', '.join(APPS)}")
    return _selected(chosen, ())


# ----------------------------------------------------------------------------- ports and readiness


def port_conflicts(settings: Settings, services: Sequence[str] = SERVICES) -> list[str]:
    """One message per port of `services` that something already holds, naming the setting to change."""
    return [
        f"port {port.number} ({port.what}) on {port.host} is already in use"
        f"{processes.port_holder(port.number)}; stop that process "
        f"or move the local {port.what.split()[0]} with {port.env}=<free port>"
        for name in services
        if _service(name).binds
        for port in _service(name).ports(settings)
        if processes.port_in_use(port.number, port.host)
    ]


async def _wait_ready(
    settings: Settings,
    name: str,
    pid_of: Callable[[], int | None],
    probe: Callable[[], Awaitable[str]],
    log_offset: int,
) -> str:
    """Poll `probe` until it answers; fail early if the process died, or after start_timeout_s."""
    deadline = time.monotonic() + settings.stack.start_timeout_s
    error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            return await asyncio.wait_for(probe(), timeout=5)
        except Exception as e:  # any failure means "not ready yet"
            error = e
        if pid_of() is None:
            break
        await asyncio.sleep(0.25)
    pid = pid_of()
    state = (
        "exited"
        if pid is None
        else f"did not answer within {settings.stack.start_timeout_s:g}s "
        f"(still running as pid {pid}: `esports infra down {name}` stops it)"
    )
    log = processes.log_path(settings, name)
    tail = processes.log_tail(log, since=log_offset) or "(nothing logged)"
    raise StackError(f"{name} {state} (last check: {error!r}); its log {log} ends with:\n{tail}")


# ----------------------------------------------------------------------------- status


async def _status_of(settings: Settings, name: str) -> ServiceStatus:
    service = _service(name)
    pid = service.pid(settings)
    running, detail = False, "not started (no live pid file in run_dir/pids)"
    if pid is not None:
        try:
            detail, running = await asyncio.wait_for(service.probe(settings), timeout=10), True
        except Exception as e:  # reported, not raised: status describes whatever state it finds
            detail = f"process {pid} alive but not answering: {e!r}"
    elif any(processes.port_in_use(p.number, p.host) for p in service.ports(settings)):
        detail = "not ours: another process holds its port"
    return _status(settings, service, pid, running, detail)


def _status(
    settings: Settings, service: Service, pid: int | None, running: bool, detail: str
) -> ServiceStatus:
    return ServiceStatus(
        name=service.name,
        running=running,
        address=service.address(settings),
        log=processes.log_path(settings, service.name),
        pid=pid,
        detail=detail,
        rss_bytes=processes.tree_rss(pid) if pid else None,
    )


def status(settings: Settings, services: Sequence[str] | None = None) -> list[ServiceStatus]:
    """The state of each service: ours and answering, dead, or its port held by someone else.

    Default: the infrastructure (SERVICES) and Prometheus when observing; name any of ALL to see apps too.
    """
    names = _selected(services, SERVICES + _observing(settings))

    async def gather() -> list[ServiceStatus]:
        return list(await asyncio.gather(*(_status_of(settings, name) for name in names)))

    return asyncio.run(gather())


# ----------------------------------------------------------------------------- up


async def _bring_up(settings: Settings, name: str) -> ServiceStatus:
    service = _service(name)
    if service.whole(settings):
        current = await _status_of(settings, name)
        say(f"{name} already running at {current.address} (pid {current.pid})")
        return current
    await asyncio.to_thread(service.prepare, settings)
    say(f"starting {name}…")
    log_offset = processes.log_size(processes.log_path(settings, name))
    await asyncio.to_thread(service.start, settings)
    detail = await _wait_ready(
        settings, name, lambda: service.pid(settings), lambda: service.ready(settings), log_offset
    )
    started = _status(settings, service, service.pid(settings), True, detail)
    say(f"{name} ready at {started.address} (log: {started.log})")
    return started


async def _up(settings: Settings, names: list[str]) -> list[ServiceStatus]:
    """The infrastructure first, then the apps that use it; each phase in parallel."""
    statuses: list[ServiceStatus] = []
    for phase in ([n for n in names if _infra(n)], [n for n in names if not _infra(n)]):
        outcomes = await asyncio.gather(*(_bring_up(settings, n) for n in phase), return_exceptions=True)
        if failures := [str(o) for o in outcomes if isinstance(o, BaseException)]:
            raise StackError("\n\n".join(failures))
        statuses += [o for o in outcomes if isinstance(o, ServiceStatus)]
    return statuses


def _make_dirs(settings: Settings) -> None:
    for sub in ("logs", "pids"):  # each service's prepare makes its own data directory
        (settings.stack.run_dir / sub).mkdir(parents=True, exist_ok=True)


def up(settings: Settings, services: Sequence[str] | None = None) -> list[ServiceStatus]:
    """Start the services that are not already running and wait until each answers.

    Default: the infrastructure (SERVICES), then Prometheus when ESPORTS_PROMETHEUS__ENABLED is set;
    named apps start once the named infrastructure is ready.
    """
    names = _selected(services, SERVICES + _observing(settings))
    _make_dirs(settings)
    to_start = [name for name in names if _service(name).pid(settings) is None]
    if "kafka" in names and (wrong := kafka.mismatch(settings)):
        raise StackError(wrong)
    if "redis" in names and (wrong := redis.mismatch(settings)):
        raise StackError(wrong)
    if conflicts := port_conflicts(settings, to_start):
        raise StackError("\n".join(conflicts))
    if "kafka" in to_start and f":{settings.kafka.port}" not in settings.kafka.bootstrap_servers:
        say(
            f"warning: ESPORTS_KAFKA__BOOTSTRAP_SERVERS={settings.kafka.bootstrap_servers} does not name "
            f"the local broker's port {settings.kafka.port}; clients will not find it"
        )
    return asyncio.run(_up(settings, names))


def up_apps(settings: Settings, apps: Sequence[str] | None = None) -> list[ServiceStatus]:
    """Start application services (default: APPS, every app in the table); the infrastructure must run."""
    return up(settings, _apps_only(apps))


# ----------------------------------------------------------------------------- down


def _stop(settings: Settings, name: str) -> None:
    service = _service(name)
    pid = service.pid(settings)
    if pid is None:
        say(f"{name} not running")
        return
    say(f"stopping {name} (pid {pid})…")
    service.stop(settings, pid)
    processes.forget_pid(settings, name)
    say(f"{name} stopped")


def down(settings: Settings, services: Sequence[str] | None = None) -> None:
    """Stop the services this module started (pid files only); anything else on the ports is left alone.

    Default: every app (and Prometheus when it runs), then the infrastructure; named services stop
    apps first too.
    """
    names = _selected(services, (*apps.names(), *_observing(settings), *SERVICES))
    for name in sorted(names, key=_infra):  # apps before the infrastructure they use
        _stop(settings, name)


def down_apps(settings: Settings, apps: Sequence[str] | None = None) -> None:
    """Stop application services (default: every app in the table); the infrastructure keeps running."""
    down(settings, _apps_only(apps))


# ----------------------------------------------------------------------------- CLI


def _print_table(statuses: Sequence[ServiceStatus]) -> None:
    width = max([9, *(len(s.name) + 1 for s in statuses)])
    for s in statuses:
        rss = f"{s.rss_bytes / 2**20:.0f} MiB" if s.rss_bytes else "-"
        state = "running" if s.running else "stopped"
        print(f"{s.name:<{width}} {state:<8} {s.address:<16} pid {s.pid or '-':<8} rss {rss:<9} {s.detail}")
        print(f"{'':<{width}} log: {s.log}")


def requested(names: Sequence[str], *, apps: bool = False, everything: bool = False) -> list[str] | None:
    """The names a command line asks for: NAME..., plus APPS (--apps) or ALL (--all); None = the default."""
    group = ALL if everything else APPS if apps else ()
    return list(dict.fromkeys([*names, *group])) or None


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Run the local Kafka, PostgreSQL and Redis, and the platform's services."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for command, text, default in (
        (
            "up",
            "start services (idempotent) and wait until they answer",
            "kafka, postgres, redis (and prometheus when ESPORTS_PROMETHEUS__ENABLED)",
        ),
        ("down", "stop the services started by `up`, apps first", "everything"),
        (
            "status",
            "show each service; exit 1 if one is not running",
            "kafka, postgres, redis (and prometheus when observing)",
        ),
    ):
        sub = commands.add_parser(command, help=text, description=text)
        sub.add_argument(
            "services",
            nargs="*",
            metavar="NAME",
            help=f"any of {', '.join(ALL + OBSERVERS)}, or kafka-N: one node of a local cluster "
            f"(default: {default})",
        )
        group = sub.add_mutually_exclusive_group()
        group.add_argument(
            "--apps", action="store_true", help=f"add the application services: {', '.join(APPS)}"
        )
        group.add_argument(
            "--all",
            action="store_true",
            help="add everything: the infrastructure, then the apps (and Prometheus when observing)",
        )
    commands.add_parser("jars", help="resolve Kafka's jars and print their directory")
    return parser


def main(
    argv: Sequence[str] | None = None, prog: str = "esports infra", settings: Settings | None = None
) -> int:
    """`esports infra up|down|status [--apps|--all] [NAME...]` and `jars`; returns the exit code."""
    try:
        args = _parser(prog).parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (argparse says 2; this CLI promises 0/1)
        return 0 if e.code in (0, None) else 1
    settings = settings or Settings()
    try:
        if args.command == "jars":
            print(resolve_kafka_jars(settings))
            return 0
        names = requested(args.services, apps=args.apps, everything=args.all)
        if args.all:
            names = list(dict.fromkeys([*(names or ()), *_observing(settings)]))
        if args.command == "down":
            down(settings, names)
            return 0
        statuses = (up if args.command == "up" else status)(settings, names)
    except StackError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    _print_table(statuses)
    return 0 if all(s.running for s in statuses) else 1
