"""The local Kafka (KRaft, combined broker + controller nodes) run from Maven Central jars.

One broker by default; ``ESPORTS_KAFKA__BROKERS=3`` (``esports infra up --brokers 3``) runs a cluster
of three nodes on loopback, node N on ports ``kafka.port + 100·(N-1)`` and
``kafka.controller_port + 100·(N-1)``, each voting in a static controller quorum. The service "kafka"
starts, checks and stops all of them; in a cluster each node is also a service of its own,
"kafka-N", so one broker can be stopped and started again (ops, and the chaos suite)::

    run_dir/kafka/libs-<version>/        the jars, shared by every node
    run_dir/kafka/data/                  the single broker's storage (one node)
    run_dir/kafka/cluster-3/node-N/      node N's server.properties and data/ (a cluster of 3)
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, cast

from infra.kafka.names import client_options
from infra.settings import Settings
from infra.stack import processes, secure_broker
from infra.stack.service import LOCAL_DIR, Port, Service, StackError, render

KAFKA_POM = LOCAL_DIR / "kafka" / "pom.xml"
# Small-heap JVM for a shared 2-core box: G1 with short pauses, heap committed up front (-Xms = -Xmx)
# so RSS is predictable. On a dedicated broker raise settings.kafka.heap to 2-4g; keep the rest.
KAFKA_JVM_FLAGS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)


def nodes(settings: Settings) -> range:
    """The local node ids (1..brokers)."""
    return range(1, settings.kafka.brokers + 1)


def node_name(settings: Settings, node: int) -> str:
    """The pid-file and log name of a node: "kafka" alone, "kafka-N" in a cluster."""
    return "kafka" if settings.kafka.brokers == 1 else f"kafka-{node}"


def node_dir(settings: Settings, node: int) -> Path:
    # A secure broker keeps its own storage: it is formatted with the SCRAM users.
    base = settings.stack.run_dir / ("kafka-secure" if settings.kafka.secure else "kafka")
    return (
        base if settings.kafka.brokers == 1 else base / f"cluster-{settings.kafka.brokers}" / f"node-{node}"
    )


def node_ports(settings: Settings, node: int) -> list[Port]:
    client, controller = settings.kafka.node_ports(node)
    # The offset names the setting that moves the port: node N is ESPORTS_KAFKA__PORT + 100·(N-1).
    suffix = "" if node == 1 else f" + {100 * (node - 1)}"
    where = "" if settings.kafka.brokers == 1 else f" (node {node})"
    return [
        Port(client, f"ESPORTS_KAFKA__PORT{suffix}", f"Kafka client listener{where}"),
        Port(controller, f"ESPORTS_KAFKA__CONTROLLER_PORT{suffix}", f"Kafka controller{where}"),
    ]


def ports(settings: Settings) -> list[Port]:
    return [port for node in nodes(settings) for port in node_ports(settings, node)]


# ----------------------------------------------------------------------------- jars


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
    processes.say(f"resolving Kafka {settings.kafka.version} jars… (into {libs})")
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


# ----------------------------------------------------------------------------- lifecycle


def prepare(settings: Settings) -> None:
    """Resolve the jars; render each node's server.properties and format its storage on first start."""
    libs = resolve_kafka_jars(settings)
    cluster_id = _cluster_id(settings)
    for node in nodes(settings):
        _prepare_node(settings, node, libs, cluster_id)


def _cluster_id(settings: Settings) -> str:
    """The id every node of the local cluster is formatted with (kept next to the nodes' folders)."""
    if settings.kafka.brokers == 1:
        return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    path = node_dir(settings, 1).parent / "cluster-id"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=") + "\n")
    return path.read_text().strip()


def _prepare_node(settings: Settings, node: int, libs: Path, cluster_id: str) -> None:
    base = node_dir(settings, node)
    (base / "data").mkdir(parents=True, exist_ok=True)
    kafka = settings.kafka
    client, controller = kafka.node_ports(node)
    replication = min(kafka.replication, kafka.brokers)  # a remote cluster's setting may say more
    if kafka.brokers == 1:
        quorum = f"controller.quorum.bootstrap.servers=127.0.0.1:{controller}"
    else:
        voters = ",".join(f"{n}@127.0.0.1:{kafka.node_ports(n)[1]}" for n in nodes(settings))
        quorum = f"controller.quorum.voters={voters}"
    config = base / "server.properties"
    render(
        "kafka/server.properties.tmpl",
        config,
        node_id=node,
        quorum=quorum,
        port=client,
        controller_port=controller,
        log_dirs=base / "data",
        default_partitions=kafka.default_partitions,
        replication=replication,
        min_isr=min(kafka.min_insync, replication),
    )
    if kafka.secure:
        secure_broker.append_security(settings, config, client, controller)
    if (base / "data" / "meta.properties").is_file():
        return
    processes.say(f"formatting {node_name(settings, node)} storage (first start)…")
    arguments = [
        "kafka.tools.StorageTool",
        "format",
        f"--cluster-id={cluster_id}",  # one argument: a base64url id starts with "-" 1 time in 64
        "-c",
        str(config),
        *(["--standalone"] if kafka.brokers == 1 else []),  # a cluster's voters are in the config
    ]
    with secure_broker.format_arguments(settings, arguments) as arguments:
        result = subprocess.run(
            _java_cmd(libs, "tools-log4j2.yaml", *arguments), capture_output=True, text=True
        )
    if result.returncode != 0:
        raise StackError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")


def start(settings: Settings) -> None:
    """Start every node that is not running (all at once: a cluster's quorum needs a majority)."""
    for node in nodes(settings):
        if processes.our_pid(settings, node_name(settings, node)) is None:
            start_node(settings, node)


def start_node(settings: Settings, node: int) -> None:
    heap = settings.kafka.heap
    command = _java_cmd(_kafka_libs(settings), "log4j2.yaml")
    command[1:1] = [f"-Xms{heap}", f"-Xmx{heap}", *KAFKA_JVM_FLAGS]
    base = node_dir(settings, node)
    command += ["kafka.Kafka", str(base / "server.properties")]
    processes.spawn(settings, node_name(settings, node), command, cwd=base)


@contextmanager
def _quiet_aiokafka() -> Iterator[None]:
    # aiokafka logs every refused connection at ERROR; while polling for readiness they are expected.
    logger = logging.getLogger("aiokafka")
    level, logger.level = logger.level, logging.CRITICAL
    try:
        yield
    finally:
        logger.level = level


async def probe(settings: Settings) -> str:
    """A metadata round trip to every node; returns the version, cluster id and brokers seen."""
    if stopped := [
        name for node in nodes(settings) if (name := node_name(settings, node)) not in running(settings)
    ]:
        raise StackError(
            f"{', '.join(stopped)} not running (`esports infra up kafka` starts the missing nodes)"
        )
    answers = await asyncio.gather(
        *(probe_node(settings, node) for node in nodes(settings)), return_exceptions=True
    )
    if errors := [answer for answer in answers if isinstance(answer, BaseException)]:
        raise errors[0]
    clusters = [answer for answer in answers if not isinstance(answer, BaseException)]
    brokers = {broker["node_id"] for cluster in clusters for broker in cluster["brokers"]}
    if len(brokers) < settings.kafka.brokers:  # a node answers before it has registered with the quorum
        raise StackError(f"{len(brokers)} of {settings.kafka.brokers} brokers registered")
    size = "" if settings.kafka.brokers == 1 else f", {len(brokers)} brokers"
    return f"Kafka {_kafka_version(settings)}, cluster {clusters[0]['cluster_id']}{size}"


async def probe_node(settings: Settings, node: int) -> dict[str, Any]:
    """describe_cluster answered by node `node` alone (its client port as the only bootstrap)."""
    from aiokafka.admin import AIOKafkaAdminClient

    options = {
        **client_options(settings.kafka, "infra"),
        "bootstrap_servers": f"127.0.0.1:{settings.kafka.node_ports(node)[0]}",
        "request_timeout_ms": 4000,
    }
    admin = AIOKafkaAdminClient(**options)
    with _quiet_aiokafka():
        try:
            await admin.start()
            return cast(dict[str, Any], await admin.describe_cluster())  # a real metadata round trip
        finally:
            await admin.close()


async def ready(settings: Settings) -> str:
    """`probe`, then (a secure broker) every service user's ACLs, created idempotently."""
    answer = await probe(settings)
    if settings.kafka.secure:
        granted = await secure_broker.grant_service_acls(settings.kafka)
        answer += f", TLS + SASL/SCRAM, {granted} ACLs"
    return answer


def _kafka_version(settings: Settings) -> str:
    """The version of the kafka_2.13 jar on the running broker's classpath (its log rolls past the banner)."""
    if (pid := find_pid(settings)) is not None:
        with suppress(OSError, ValueError, IndexError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
            libs = Path(argv[argv.index("-cp") + 1].removesuffix("/*"))
            for jar in libs.glob("kafka_2.13-*.jar"):
                return jar.name.removeprefix("kafka_2.13-").removesuffix(".jar")
    return f"{settings.kafka.version} (from settings)"


def running(settings: Settings) -> dict[str, int]:
    """Every live local Kafka node by name (see `processes.live_nodes`)."""
    return processes.live_nodes(settings, "kafka")


def mismatch(settings: Settings) -> str | None:
    """Why the running local Kafka is not the one `settings` describe, or None."""
    live = running(settings)
    wanted = {node_name(settings, node) for node in nodes(settings)}
    if not live or set(live) <= wanted:
        return None
    size = "one broker" if "kafka" in live else f"a cluster ({', '.join(live)})"
    return (
        f"the local Kafka runs as {size}, not {settings.kafka.brokers} broker(s): set "
        f"ESPORTS_KAFKA__BROKERS to match, or `esports infra down kafka` first"
    )


def find_pid(settings: Settings) -> int | None:
    """A live node's pid (the lowest node's), or None when no node runs."""
    return next(iter(running(settings).values()), None)


def complete(settings: Settings) -> bool:
    """Whether every node runs (`up` starts the missing ones of a partly running cluster)."""
    return all(processes.our_pid(settings, node_name(settings, node)) for node in nodes(settings))


def stop(settings: Settings, pid: int) -> None:
    """Stop every running node, all at once (one by one, each would wait for a new leader)."""
    live = running(settings)
    for node_pid in live.values():
        processes.send_term(node_pid)
    for name, node_pid in live.items():
        processes.terminate(node_pid, name)
        processes.forget_pid(settings, name)


SERVICE = Service(
    name="kafka",
    ports=ports,
    prepare=prepare,
    start=start,
    ready=ready,
    probe=probe,
    stop=stop,
    find_pid=find_pid,
    complete=complete,
)


def node_service(node: int) -> Service:
    """Node `node` of a local cluster alone, as service "kafka-N" (one broker stopped and started again)."""
    name = f"kafka-{node}"

    async def ready(settings: Settings) -> str:
        cluster = await probe_node(settings, node)
        if node not in {broker["node_id"] for broker in cluster["brokers"]}:
            raise StackError(f"node {node} not registered yet")
        return f"Kafka node {node} of cluster {cluster['cluster_id']}"

    def prepare_one(settings: Settings) -> None:
        _prepare_node(settings, node, resolve_kafka_jars(settings), _cluster_id(settings))

    def stop_one(settings: Settings, pid: int) -> None:
        processes.terminate(pid, name)

    return Service(
        name=name,
        ports=lambda settings: node_ports(settings, node),
        prepare=prepare_one,
        start=lambda settings: start_node(settings, node),
        ready=ready,
        probe=ready,
        stop=stop_one,
    )
