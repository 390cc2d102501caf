"""The local Kafka broker (KRaft, combined broker + controller) run from Maven Central jars."""

from __future__ import annotations

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

from infra.settings import Settings
from infra.stack import processes
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


def ports(settings: Settings) -> list[Port]:
    return [
        Port(settings.kafka.port, "ESPORTS_KAFKA__PORT", "Kafka client listener"),
        Port(settings.kafka.controller_port, "ESPORTS_KAFKA__CONTROLLER_PORT", "Kafka controller"),
    ]


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
    """Resolve the jars, render server.properties and format the storage on first start."""
    base = settings.stack.run_dir / "kafka"
    (base / "data").mkdir(parents=True, exist_ok=True)
    libs = resolve_kafka_jars(settings)
    config = base / "server.properties"
    render(
        "kafka/server.properties.tmpl",
        config,
        port=settings.kafka.port,
        controller_port=settings.kafka.controller_port,
        log_dirs=base / "data",
        default_partitions=settings.kafka.default_partitions,
    )
    if (base / "data" / "meta.properties").is_file():
        return
    processes.say("formatting Kafka storage (first start)…")
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    command = _java_cmd(
        libs,
        "tools-log4j2.yaml",
        "kafka.tools.StorageTool",
        "format",
        f"--cluster-id={cluster_id}",  # one argument: a base64url id starts with "-" 1 time in 64
        "-c",
        str(config),
        "--standalone",
    )
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")


def start(settings: Settings) -> None:
    heap = settings.kafka.heap
    command = _java_cmd(_kafka_libs(settings), "log4j2.yaml")
    command[1:1] = [f"-Xms{heap}", f"-Xmx{heap}", *KAFKA_JVM_FLAGS]
    command += ["kafka.Kafka", str(settings.stack.run_dir / "kafka" / "server.properties")]
    processes.spawn(settings, "kafka", command, cwd=settings.stack.run_dir / "kafka")


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
    """A metadata round trip; returns the broker's version and cluster id."""
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
    if (pid := processes.our_pid(settings, "kafka")) is not None:
        with suppress(OSError, ValueError, IndexError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
            libs = Path(argv[argv.index("-cp") + 1].removesuffix("/*"))
            for jar in libs.glob("kafka_2.13-*.jar"):
                return jar.name.removeprefix("kafka_2.13-").removesuffix(".jar")
    return f"{settings.kafka.version} (from settings)"


def stop(settings: Settings, pid: int) -> None:
    processes.terminate(pid, "kafka")


SERVICE = Service(
    name="kafka", ports=ports, prepare=prepare, start=start, ready=probe, probe=probe, stop=stop
)
