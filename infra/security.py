"""Who may do what on the brokers, and how clients prove who they are.

Each service of the platform connects as its own SCRAM user (``User:<package>``), and the ACLs of that
user follow from the topic catalogue: WRITE (and DESCRIBE) on the topics its package owns or is a
declared gateway of, READ on the catalogue (reads are not declared per service), READ on its own
consumer groups, IdempotentWrite on the cluster. A service writing any other topic is refused by the
broker (TopicAuthorizationFailed). The admin user is a super user: it creates the topics and the ACLs.
"""

from __future__ import annotations

import os
import secrets
import ssl
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from events.topics import CATALOGUE, Topic, TopicSpec

__all__ = [
    "ADMIN",
    "SERVICE_USERS",
    "AclBinding",
    "Operation",
    "PatternType",
    "ResourceType",
    "acls_of",
    "client_ssl_context",
    "new_password",
    "write_secret",
]

ADMIN = "admin"
# The user of each service: its package, the name the catalogue knows it by as a writer.
SERVICE_USERS = ("producers", "stream_processors", "projections", "edge_ws", "ingest_workers")
# What each service's own prefixed resources are called, before the deployment's topic prefix: its
# consumer groups (and, for the processors, their internal topics: changelogs, partials, chat state).
GROUP_PREFIXES = {"stream_processors": "esports-processors", "projections": "projector."}
INTERNAL_TOPIC_PREFIXES = {"stream_processors": "esports-processors"}


class ResourceType(IntEnum):
    """Kafka's resource type codes (CreateAcls)."""

    TOPIC = 2
    GROUP = 3
    CLUSTER = 4


class PatternType(IntEnum):
    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):
    """Kafka's ACL operation codes."""

    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DESCRIBE = 8
    DESCRIBE_CONFIGS = 10
    IDEMPOTENT_WRITE = 12


@dataclass(frozen=True, slots=True, order=True)
class AclBinding:
    """One ALLOW rule: ``principal`` may do ``operation`` on the resource (from any host)."""

    principal: str
    resource_type: ResourceType
    resource_name: str
    pattern: PatternType
    operation: Operation

    def __str__(self) -> str:
        kind = "prefix " if self.pattern is PatternType.PREFIXED else ""
        return f"{self.principal} {self.operation.name} {self.resource_type.name} {kind}{self.resource_name}"


def writers_of(spec: TopicSpec) -> set[str]:
    """The packages that may write ``spec``: its owner and its gateways' packages."""
    return {spec.owner} | {gateway.module.split(".")[0] for gateway in spec.gateways}


def written_by(service: str, catalogue: Iterable[TopicSpec] = CATALOGUE) -> list[str]:
    """The catalogue topics ``service`` writes; every consumer writes the dead-letter topic too."""
    return [spec.name for spec in catalogue if service in writers_of(spec) or spec.name == Topic.DEADLETTER]


def acls_of(service: str, prefix: str = "", catalogue: Iterable[TopicSpec] = CATALOGUE) -> list[AclBinding]:
    """Every ACL of ``service``'s user, for a deployment whose topics carry ``prefix``."""
    return sorted(set(_acls(service, prefix, tuple(catalogue))))


def _acls(service: str, prefix: str, catalogue: tuple[TopicSpec, ...]) -> Iterator[AclBinding]:
    user = f"User:{service}"
    topic, literal, prefixed = ResourceType.TOPIC, PatternType.LITERAL, PatternType.PREFIXED
    for name in written_by(service, catalogue):
        yield AclBinding(user, topic, prefix + name, literal, Operation.WRITE)
    for spec in catalogue:
        yield AclBinding(user, topic, prefix + spec.name, literal, Operation.READ)
        yield AclBinding(user, topic, prefix + spec.name, literal, Operation.DESCRIBE)
    if own := INTERNAL_TOPIC_PREFIXES.get(service):
        yield AclBinding(user, topic, prefix + own, prefixed, Operation.ALL)
    if group := GROUP_PREFIXES.get(service):
        yield AclBinding(user, ResourceType.GROUP, prefix + group, prefixed, Operation.READ)
    yield AclBinding(user, ResourceType.CLUSTER, "kafka-cluster", literal, Operation.IDEMPOTENT_WRITE)


def all_acls(prefix: str = "") -> list[AclBinding]:
    """The ACLs of every service user."""
    return [acl for service in SERVICE_USERS for acl in acls_of(service, prefix)]


def client_ssl_context(cafile: Path | None, *, check_hostname: bool = True) -> ssl.SSLContext:
    """The TLS context of a client: the brokers' certificates checked against ``cafile`` (or the
    system's CAs), TLS 1.2 at least."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cafile) if cafile else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = check_hostname
    return context


def new_password() -> str:
    """A random password for a local user (URL-safe, so it needs no quoting in any config format)."""
    return secrets.token_urlsafe(24)


def write_secret(path: Path, value: str) -> Path:
    """Write ``value`` to ``path`` readable by its owner only (created so; never world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.unlink(missing_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
        file.write(value + "\n")
    return path
