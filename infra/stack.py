"""The local infrastructure stack: Kafka (KRaft), PostgreSQL and Redis as plain processes.

``esports infra up|down|status [SERVICE...]`` (or ``python -m infra.stack ...``) runs each service from
the machine's own binaries and Maven Central jars, with all state under ``settings.stack.run_dir``::

    run_dir/kafka/libs-<version>/  jars resolved from infra/local/kafka/pom.xml
    run_dir/kafka/data/            KRaft metadata and topic logs
    run_dir/postgres/data/         the cluster (initdb on first start)
    run_dir/redis/                 the append-only file
    run_dir/logs/<service>.log     each service's output
    run_dir/pids/<service>.pid     "<pid> <start time>" of each process this module started

Only processes recorded in a pid file (and still the same process: the start time must match) are
ever stopped; a port held by anything else is reported with the setting that moves it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import logging
import os
import pwd
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from infra.settings import Settings

LOCAL_DIR = Path(__file__).resolve().parent / "local"
KAFKA_POM = LOCAL_DIR / "kafka" / "pom.xml"
SERVICES = ("kafka", "postgres", "redis")
PG_BIN = Path("/usr/lib/postgresql/15/bin")  # Debian's postgresql-15; candidate setting: postgres.bin_dir
STOP_TIMEOUT_S = 30.0  # SIGTERM → SIGKILL grace; candidate setting: stack.stop_timeout_s
LOG_TAIL_LINES = 40
# Small-heap JVM for a shared 2-core box: G1 with short pauses, heap committed up front (-Xms = -Xmx)
# so RSS is predictable. On a dedicated broker raise settings.kafka.heap to 2-4g; keep the rest.
KAFKA_JVM_FLAGS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)


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


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- processes and pid files


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name, or None if gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        with suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it if it was our child
        return None
    return fields


def _start_ticks(pid: int) -> str | None:
    stat = _proc_stat(pid)
    return stat[19] if stat else None  # field 22 of stat: start time in clock ticks since boot


def _write_pid(settings: Settings, name: str, pid: int) -> None:
    path = settings.stack.run_dir / "pids" / f"{name}.pid"
    path.write_text(f"{pid} {_start_ticks(pid)}\n")


def _our_pid(settings: Settings, name: str) -> int | None:
    """The pid of the live process we started for `name`, or None (stale pid files are removed)."""
    path = settings.stack.run_dir / "pids" / f"{name}.pid"
    try:
        pid_text, ticks = path.read_text().split()
    except (OSError, ValueError):
        return None
    if _start_ticks(int(pid_text)) == ticks:
        return int(pid_text)
    path.unlink(missing_ok=True)
    return None


def _tree_rss(pid: int) -> int:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _proc_stat(int(entry.name))):
            children.setdefault(int(stat[1]), []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        with suppress(OSError):
            rss_pages = int(Path(f"/proc/{current}/statm").read_text().split()[1])
            total += rss_pages * os.sysconf("SC_PAGE_SIZE")
    return total


def _spawn(settings: Settings, name: str, argv: list[str], *, cwd: Path) -> int:
    """Start `argv` detached (own session, output appended to its log) and record its pid."""
    with _log_path(settings, name).open("ab") as log:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _write_pid(settings, name, process.pid)
    return process.pid


def _terminate(pid: int, name: str) -> None:
    """SIGTERM, wait up to STOP_TIMEOUT_S, then SIGKILL."""
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while _proc_stat(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _proc_stat(pid):
        _say(f"{name} (pid {pid}) ignored SIGTERM for {STOP_TIMEOUT_S:.0f}s; sending SIGKILL")
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _log_path(settings: Settings, name: str) -> Path:
    return settings.stack.run_dir / "logs" / f"{name}.log"


def _log_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES, since: int = 0) -> str:
    """The last `lines` lines of `path` written after byte offset `since`."""
    try:
        with path.open("rb") as log:
            log.seek(max(since, log.seek(0, os.SEEK_END) - 64 * 1024))
            return b"\n".join(log.read().splitlines()[-lines:]).decode(errors="replace")
    except OSError:
        return "(no log yet)"


def _render(template: str, target: Path, **values: object) -> None:
    text = string.Template((LOCAL_DIR / template).read_text()).substitute(values)
    target.write_text(text)


# ----------------------------------------------------------------------------- ports


def _port_settings(settings: Settings, name: str) -> list[tuple[int, str, str]]:
    """(port, env setting that moves it, what listens there) for one service."""
    return {
        "kafka": [
            (settings.kafka.port, "ESPORTS_KAFKA__PORT", "Kafka client listener"),
            (settings.kafka.controller_port, "ESPORTS_KAFKA__CONTROLLER_PORT", "Kafka controller"),
        ],
        "postgres": [(settings.postgres.port, "ESPORTS_POSTGRES__PORT", "PostgreSQL")],
        "redis": [(settings.redis.port, "ESPORTS_REDIS__PORT", "Redis")],
    }[name]


def _port_in_use(port: int) -> bool:
    # Bind like a server does (SO_REUSEADDR, so TIME_WAIT leftovers of our last run do not count).
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _port_holder(port: int) -> str:
    """' (pid N: command)' for the process listening on `port`, when /proc lets us see it."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with suppress(OSError):
            for row in Path(table).read_text().splitlines()[1:]:
                cols = row.split()
                if int(cols[1].rsplit(":", 1)[1], 16) == port and cols[3] == "0A":  # 0A = LISTEN
                    inodes.add(f"socket:[{cols[9]}]")
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        with suppress(OSError):
            if any(os.readlink(fd) in inodes for fd in fd_dir.iterdir()):
                cmd = " ".join((fd_dir.parent / "cmdline").read_bytes().decode(errors="replace").split())
                return f" (pid {fd_dir.parent.name}: {cmd[:80]})"
    return ""


def port_conflicts(settings: Settings, services: Sequence[str] = SERVICES) -> list[str]:
    """One message per port of `services` that something already holds, naming the setting to change."""
    return [
        f"port {port} ({what}) on 127.0.0.1 is already in use{_port_holder(port)}; stop that process "
        f"or move the local {what.split()[0]} with {env}=<free port>"
        for name in services
        for port, env, what in _port_settings(settings, name)
        if _port_in_use(port)
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
    log = _log_path(settings, name)
    tail = _log_tail(log, since=log_offset) or "(nothing logged)"
    raise StackError(f"{name} {state} (last check: {error!r}); its log {log} ends with:\n{tail}")


# ----------------------------------------------------------------------------- Kafka


def _kafka_libs(settings: Settings) -> Path:
    return settings.stack.run_dir / "kafka" / f"libs-{settings.kafka.version}"


def _pom_digest() -> str:
    return hashlib.sha256(KAFKA_POM.read_bytes()).hexdigest()


def resolve_kafka_jars(settings: Settings) -> Path:
    """The directory of Kafka's jars for settings.kafka.version, running Maven only when it is incomplete.

    Complete means a `.complete` marker holding the pom's sha256 (a changed pom re-resolves).
    """
    libs = _kafka_libs(settings)
    marker = libs / ".complete"
    if marker.is_file() and marker.read_text().strip() == _pom_digest():
        return libs
    if shutil.which("mvn") is None:
        raise StackError("mvn not found: run infra/local/install-system.sh (Debian package maven)")
    _say(f"resolving Kafka {settings.kafka.version} jars… (into {libs})")
    staging = libs.with_name(f"{libs.name}.tmp-{os.getpid()}")
    command = [
        "mvn",
        "-q",
        "-B",
        "-Dstyle.color=never",
        "-f",
        str(KAFKA_POM),
        f"-Dkafka.version={settings.kafka.version}",
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise StackError(f"mvn failed to resolve Kafka {settings.kafka.version}:\n{result.stdout[-3000:]}")
    (staging / ".complete").write_text(_pom_digest() + "\n")
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)  # atomic: a concurrent kafka-tool sees either nothing or a complete dir
    return libs


def _java_cmd(libs: Path, log4j_config: str, *args: str) -> list[str]:
    java = shutil.which("java")
    if java is None:
        raise StackError("java not found: run infra/local/install-system.sh (openjdk-17-jre-headless)")
    return [
        java,
        f"-Dlog4j2.configurationFile={LOCAL_DIR / 'kafka' / log4j_config}",
        "-cp",
        f"{libs}/*",
        *args,
    ]


def _prepare_kafka(settings: Settings) -> None:
    libs = resolve_kafka_jars(settings)
    base = settings.stack.run_dir / "kafka"
    config = base / "server.properties"
    _render(
        "kafka/server.properties.tmpl",
        config,
        port=settings.kafka.port,
        controller_port=settings.kafka.controller_port,
        log_dirs=base / "data",
        default_partitions=settings.kafka.default_partitions,
    )
    if (base / "data" / "meta.properties").is_file():
        return
    _say("formatting Kafka storage (first start)…")
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    command = _java_cmd(
        libs,
        "tools-log4j2.yaml",
        "kafka.tools.StorageTool",
        "format",
        "-t",
        cluster_id,
        "-c",
        str(config),
        "--standalone",
    )
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")


def _start_kafka(settings: Settings) -> None:
    heap = settings.kafka.heap
    command = _java_cmd(_kafka_libs(settings), "log4j2.yaml")
    command[1:1] = [f"-Xms{heap}", f"-Xmx{heap}", *KAFKA_JVM_FLAGS]
    command += ["kafka.Kafka", str(settings.stack.run_dir / "kafka" / "server.properties")]
    _spawn(settings, "kafka", command, cwd=settings.stack.run_dir / "kafka")


@contextmanager
def _quiet_aiokafka() -> Iterator[None]:
    # aiokafka logs every refused connection at ERROR; while polling for readiness they are expected.
    logger = logging.getLogger("aiokafka")
    level, logger.level = logger.level, logging.CRITICAL
    try:
        yield
    finally:
        logger.level = level


async def _probe_kafka(settings: Settings) -> str:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=f"127.0.0.1:{settings.kafka.port}",
        request_timeout_ms=4000,
        client_id=f"{settings.kafka.client_id}-infra",
    )
    with _quiet_aiokafka():
        await admin.start()
        try:
            cluster = await admin.describe_cluster()  # a real metadata round trip
        finally:
            await admin.close()
    return f"Kafka {_kafka_version(settings)}, cluster {cluster['cluster_id']}"


def _kafka_version(settings: Settings) -> str:
    """The version of the kafka_2.13 jar on the running broker's classpath (its log rolls past the banner)."""
    if (pid := _our_pid(settings, "kafka")) is not None:
        with suppress(OSError, ValueError, IndexError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
            libs = Path(argv[argv.index("-cp") + 1].removesuffix("/*"))
            for jar in libs.glob("kafka_2.13-*.jar"):
                return jar.name.removeprefix("kafka_2.13-").removesuffix(".jar")
    return f"{settings.kafka.version} (from settings)"


# ----------------------------------------------------------------------------- PostgreSQL


def _pg_user() -> str | None:
    """The OS user that runs PostgreSQL: `postgres` when we are root (it refuses root), else nobody else."""
    return "postgres" if os.geteuid() == 0 else None


def _pg_run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    user = _pg_user()
    command = [str(PG_BIN / argv[0]), *argv[1:]]
    command = ["runuser", "-u", user, "--", *command] if user else command
    result = subprocess.run(command, capture_output=True, text=True, start_new_session=True)
    if check and result.returncode != 0:
        raise StackError(f"{argv[0]} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result


def _untraversable(path: Path, user: str) -> Path | None:
    """The first ancestor of `path` that `user` cannot enter, if any."""
    entry = pwd.getpwnam(user)
    for directory in reversed(path.parents):
        info = directory.stat()
        bit = 0o100 if info.st_uid == entry.pw_uid else 0o010 if info.st_gid == entry.pw_gid else 0o001
        if not info.st_mode & bit:
            return directory
    return None


def _chown_to_pg(*paths: Path) -> None:
    if (user := _pg_user()) is not None:
        for path in paths:
            shutil.chown(path, user, user)


def _prepare_postgres(settings: Settings) -> None:
    if not (PG_BIN / "postgres").is_file():
        raise StackError(f"{PG_BIN}/postgres not found: run infra/local/install-system.sh (postgresql-15)")
    base = settings.stack.run_dir / "postgres"
    data, sockets, log = base / "data", base / "socket", _log_path(settings, "postgres")
    if (user := _pg_user()) and (blocked := _untraversable(data, user)):
        raise StackError(
            f"PostgreSQL refuses to run as root, so it runs as '{user}', who cannot enter "
            f"{blocked}: `chmod o+x {blocked}` or set ESPORTS_STACK__RUN_DIR to a path "
            f"'{user}' can reach (e.g. under /tmp)"
        )
    if len(str(sockets / f".s.PGSQL.{settings.postgres.port}")) > 100:
        raise StackError(
            f"unix socket path under {sockets} is too long (over 100 bytes); "
            "use a shorter ESPORTS_STACK__RUN_DIR"
        )
    for directory in (data, sockets):
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    log.touch()
    _chown_to_pg(data, sockets, log)
    if not (data / "PG_VERSION").is_file():
        _say("initialising PostgreSQL cluster (first start)…")
        _pg_run(
            "initdb",
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        )
        with (data / "postgresql.conf").open("a") as conf:
            conf.write("\ninclude 'esports.conf'  # written by infra/stack.py\n")
    _render(
        "postgres/esports.conf.tmpl",
        data / "esports.conf",
        port=settings.postgres.port,
        socket_dir=sockets,
        max_connections=settings.postgres.max_connections,
        shared_buffers=settings.postgres.shared_buffers,
    )
    _chown_to_pg(data / "esports.conf")


def _start_postgres(settings: Settings) -> None:
    data = settings.stack.run_dir / "postgres" / "data"
    _pg_run("pg_ctl", "start", "-D", str(data), "-l", str(_log_path(settings, "postgres")), "-W", "-s")
    deadline = time.monotonic() + 10  # pg_ctl -W returns at once; postmaster.pid follows within ms
    while _postmaster_pid(settings) is None and time.monotonic() < deadline:
        time.sleep(0.05)


def _postmaster_pid(settings: Settings) -> int | None:
    """The running postmaster of our data dir (from postmaster.pid), or None."""
    with suppress(OSError, ValueError, IndexError):
        text = (settings.stack.run_dir / "postgres" / "data" / "postmaster.pid").read_text()
        pid = int(text.splitlines()[0])
        # A stale postmaster.pid after a crash may name a pid since reused by something else.
        if _proc_stat(pid) and b"postgres" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    return None


async def _provision_postgres(settings: Settings) -> str:
    """Create (or update) the role and database from settings; return the server version."""
    import psycopg
    from psycopg import sql

    pg = settings.postgres
    sockets = settings.stack.run_dir / "postgres" / "socket"
    # The superuser over the run_dir socket (trust auth; the socket dir is 0700, owner and root only).
    admin_dsn = f"host={sockets} port={pg.port} user=postgres dbname=postgres"
    async with await psycopg.AsyncConnection.connect(admin_dsn, autocommit=True) as conn:
        exists = await (await conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [pg.user])).fetchone()
        verb = "ALTER" if exists else "CREATE"
        await conn.execute(
            sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(pg.user), sql.Literal(pg.password)
            )
        )
        if not await (
            await conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [pg.database])
        ).fetchone():
            await conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(pg.database), sql.Identifier(pg.user)
                )
            )
    return await _probe_postgres(settings)


async def _probe_postgres(settings: Settings) -> str:
    import psycopg

    pg = settings.postgres
    dsn = f"host=127.0.0.1 port={pg.port} user={pg.user} password={pg.password} dbname={pg.database}"
    async with await psycopg.AsyncConnection.connect(dsn, connect_timeout=3) as conn:
        row = await (await conn.execute("SHOW server_version")).fetchone()
    return f"PostgreSQL {row[0] if row else '?'}"


def _stop_postgres(settings: Settings, pid: int) -> None:
    data = settings.stack.run_dir / "postgres" / "data"
    result = _pg_run(
        "pg_ctl", "stop", "-D", str(data), "-m", "fast", "-w", "-t", str(int(STOP_TIMEOUT_S)), check=False
    )
    if result.returncode != 0 and _proc_stat(pid):
        raise StackError(f"pg_ctl stop failed:\n{result.stdout}{result.stderr}")


# ----------------------------------------------------------------------------- Redis


def _prepare_redis(settings: Settings) -> None:
    if shutil.which("redis-server") is None:
        raise StackError("redis-server not found: run infra/local/install-system.sh (redis-server)")
    data = settings.stack.run_dir / "redis"
    _render(
        "redis/redis.conf.tmpl",
        data / "redis.conf",
        port=settings.redis.port,
        data_dir=data,
        maxmemory=settings.redis.maxmemory,
    )


def _start_redis(settings: Settings) -> None:
    data = settings.stack.run_dir / "redis"
    _spawn(
        settings,
        "redis",
        [shutil.which("redis-server") or "redis-server", str(data / "redis.conf")],
        cwd=data,
    )


async def _probe_redis(settings: Settings) -> str:
    import redis.asyncio as aioredis

    client = aioredis.Redis(host="127.0.0.1", port=settings.redis.port, socket_timeout=3)
    try:
        await client.ping()
        info = await client.info("server")
    finally:
        await client.aclose()
    return f"Redis {info['redis_version']}"


# ----------------------------------------------------------------------------- the stack


@dataclass(frozen=True, slots=True)
class _Service:
    prepare: Callable[[Settings], None]  # blocking: render config, resolve, initialise data
    start: Callable[[Settings], None]  # blocking, returns once the process is launched
    ready: Callable[[Settings], Awaitable[str]]  # first successful check after a start (may provision)
    probe: Callable[[Settings], Awaitable[str]]  # answers → server version


_STACK = {
    "kafka": _Service(_prepare_kafka, _start_kafka, _probe_kafka, _probe_kafka),
    "postgres": _Service(_prepare_postgres, _start_postgres, _provision_postgres, _probe_postgres),
    "redis": _Service(_prepare_redis, _start_redis, _probe_redis, _probe_redis),
}


def _address(settings: Settings, name: str) -> str:
    return f"127.0.0.1:{_port_settings(settings, name)[0][0]}"


def _pid(settings: Settings, name: str) -> int | None:
    if name == "postgres" and (pid := _postmaster_pid(settings)) is not None:
        if _our_pid(settings, name) != pid:
            _write_pid(settings, name, pid)  # adopt a postmaster of our own data dir (e.g. after a crash)
        return pid
    return _our_pid(settings, name)


def _selected(services: Sequence[str] | None) -> list[str]:
    chosen = list(services or SERVICES)
    if unknown := sorted(set(chosen) - set(SERVICES)):
        raise StackError(f"unknown service(s) {', '.join(unknown)}; choose from {', '.join(SERVICES)}")
    return chosen


def _make_dirs(settings: Settings) -> None:
    run = settings.stack.run_dir
    for sub in ("kafka/data", "postgres", "redis", "logs", "pids"):
        (run / sub).mkdir(parents=True, exist_ok=True)


async def _status_of(settings: Settings, name: str) -> ServiceStatus:
    pid = _pid(settings, name)
    running, detail = False, "not started (no live pid file in run_dir/pids)"
    if pid is not None:
        try:
            detail, running = await asyncio.wait_for(_STACK[name].probe(settings), timeout=10), True
        except Exception as e:  # reported, not raised: status describes whatever state it finds
            detail = f"process {pid} alive but not answering: {e!r}"
    elif any(_port_in_use(port) for port, _, _ in _port_settings(settings, name)):
        detail = "not ours: another process holds its port"
    return _status(settings, name, pid, running, detail)


def _status(settings: Settings, name: str, pid: int | None, running: bool, detail: str) -> ServiceStatus:
    return ServiceStatus(
        name=name,
        running=running,
        address=_address(settings, name),
        log=_log_path(settings, name),
        pid=pid,
        detail=detail,
        rss_bytes=_tree_rss(pid) if pid else None,
    )


async def _bring_up(settings: Settings, name: str) -> ServiceStatus:
    if _pid(settings, name) is not None:
        status = await _status_of(settings, name)
        _say(f"{name} already running at {status.address} (pid {status.pid})")
        return status
    service = _STACK[name]
    await asyncio.to_thread(service.prepare, settings)
    _say(f"starting {name}…")
    log_offset = _log_size(_log_path(settings, name))
    await asyncio.to_thread(service.start, settings)
    detail = await _wait_ready(
        settings, name, lambda: _pid(settings, name), lambda: service.ready(settings), log_offset
    )
    status = _status(settings, name, _pid(settings, name), True, detail)
    _say(f"{name} ready at {status.address} (log: {status.log})")
    return status


async def _up(settings: Settings, names: list[str]) -> list[ServiceStatus]:
    outcomes = await asyncio.gather(*(_bring_up(settings, name) for name in names), return_exceptions=True)
    failures = [str(o) for o in outcomes if isinstance(o, BaseException)]
    if failures:
        raise StackError("\n\n".join(failures))
    return [o for o in outcomes if isinstance(o, ServiceStatus)]


def up(settings: Settings, services: Sequence[str] | None = None) -> list[ServiceStatus]:
    """Start the services that are not already running (all by default) and wait until each answers."""
    names = _selected(services)
    _make_dirs(settings)
    to_start = [name for name in names if _pid(settings, name) is None]
    if conflicts := port_conflicts(settings, to_start):
        raise StackError("\n".join(conflicts))
    if "kafka" in to_start and f":{settings.kafka.port}" not in settings.kafka.bootstrap_servers:
        _say(
            f"warning: ESPORTS_KAFKA__BOOTSTRAP_SERVERS={settings.kafka.bootstrap_servers} does not name "
            f"the local broker's port {settings.kafka.port}; clients will not find it"
        )
    return asyncio.run(_up(settings, names))


def down(settings: Settings, services: Sequence[str] | None = None) -> None:
    """Stop the services this module started (pid files only); anything else on the ports is left alone."""
    for name in _selected(services):
        pid = _pid(settings, name)
        if pid is None:
            _say(f"{name} not running")
            continue
        _say(f"stopping {name} (pid {pid})…")
        if name == "postgres":
            _stop_postgres(settings, pid)
        else:
            _terminate(pid, name)
        (settings.stack.run_dir / "pids" / f"{name}.pid").unlink(missing_ok=True)
        _say(f"{name} stopped")


def status(settings: Settings, services: Sequence[str] | None = None) -> list[ServiceStatus]:
    """The state of each service: ours and answering, dead, or its port held by someone else."""
    names = _selected(services)

    async def gather() -> list[ServiceStatus]:
        return list(await asyncio.gather(*(_status_of(settings, name) for name in names)))

    return asyncio.run(gather())


# ----------------------------------------------------------------------------- CLI


def _print_table(statuses: Sequence[ServiceStatus]) -> None:
    for s in statuses:
        rss = f"{s.rss_bytes / 2**20:.0f} MiB" if s.rss_bytes else "-"
        state = "running" if s.running else "stopped"
        print(f"{s.name:<9} {state:<8} {s.address:<16} pid {s.pid or '-':<8} rss {rss:<9} {s.detail}")
        print(f"{'':<9} log: {s.log}")


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Run the local Kafka, PostgreSQL and Redis.")
    commands = parser.add_subparsers(dest="command", required=True)
    for command, text in (
        ("up", "start services (idempotent) and wait until they answer"),
        ("down", "stop the services started by `up`"),
        ("status", "show each service; exit 1 if one is not running"),
    ):
        sub = commands.add_parser(command, help=text, description=text)
        sub.add_argument(
            "services", nargs="*", metavar="SERVICE", help=f"any of {', '.join(SERVICES)} (default: all)"
        )
    commands.add_parser("jars", help="resolve Kafka's jars and print their directory")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "esports infra") -> int:
    """`esports infra up|down|status [SERVICE...]` and `jars`; returns the exit code."""
    try:
        args = _parser(prog).parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (argparse says 2; this CLI promises 0/1)
        return 0 if e.code in (0, None) else 1
    settings = Settings()
    try:
        if args.command == "jars":
            print(resolve_kafka_jars(settings))
            return 0
        if args.command == "down":
            down(settings, args.services)
            return 0
        statuses = (up if args.command == "up" else status)(settings, args.services)
    except StackError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    _print_table(statuses)
    return 0 if all(s.running for s in statuses) else 1


if __name__ == "__main__":
    sys.exit(main(prog="python -m infra.stack"))
