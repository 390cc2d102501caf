"""Topic administration: the catalogue's topics created idempotently, what the cluster has, and a wait
for the cluster to answer at start-up."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.conn import create_conn
from aiokafka.errors import SaslAuthenticationFailed, for_code
from aiokafka.protocol.admin import CreateAclsRequest

from events.topics import CATALOGUE, TopicSpec
from infra.kafka.errors import AuthenticationFailed, BrokerUnavailable, KafkaError, PublishFailed, translate
from infra.kafka.names import TopicNames, client_options, security_options
from infra.security import AclBinding
from infra.settings import KafkaSettings

__all__ = ["TopicAdmin", "TopicState", "diagnose", "topic_configs", "wait_for_broker"]

TOPIC_ALREADY_EXISTS = 36
ALLOW = 3  # Kafka's ACL permission type code


@dataclass(frozen=True, slots=True)
class TopicState:
    """A topic as the cluster has it (for `esports topics list`)."""

    name: str
    partitions: int
    exists: bool


class TopicAdmin:
    """Creates the catalogue's topics idempotently and reports what the cluster has."""

    def __init__(self, settings: KafkaSettings, names: TopicNames | None = None) -> None:
        self._settings = settings
        self._names = names or TopicNames(settings.topic_prefix)
        self._admin = AIOKafkaAdminClient(**client_options(settings, "admin"))

    async def __aenter__(self) -> TopicAdmin:
        try:
            await self._admin.start()
        except Exception as e:
            await self._admin.close()
            raise await diagnose(self._settings, translate(e, "connecting the admin client")) from e
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._admin.close()

    def new_topic(self, spec: TopicSpec) -> NewTopic:
        return NewTopic(
            self._names.physical(spec.name),
            spec.partitions or self._settings.default_partitions,
            self._settings.replication,
            topic_configs=topic_configs(spec, self._settings),
        )

    async def ensure(self, specs: Iterable[TopicSpec] = CATALOGUE) -> list[str]:
        """Create the topics that do not exist yet; returns the names created (empty when all existed)."""
        wanted = [self.new_topic(spec) for spec in specs]
        try:
            response = await self._admin.create_topics(wanted)
        except Exception as e:
            raise translate(e, "creating topics") from e
        created = []
        for name, code, message in (error[:3] for error in response.topic_errors):
            if code == 0:
                created.append(name)
            elif code != TOPIC_ALREADY_EXISTS:
                raise PublishFailed(f"creating topic {name}: error {code} {message}")
        await self._wait_for_leaders(created)
        return created

    async def _wait_for_leaders(self, names: list[str], timeout_s: float = 15.0) -> None:
        """A new topic takes a moment to elect leaders; producing before that only earns retries."""
        deadline = time.monotonic() + timeout_s
        while names and time.monotonic() < deadline:
            described = await self._admin.describe_topics(names)
            if len(described) == len(names) and all(_has_leaders(topic) for topic in described):
                return
            await asyncio.sleep(0.1)

    async def states(self, specs: Iterable[TopicSpec] = CATALOGUE) -> list[TopicState]:
        names = [self._names.physical(spec.name) for spec in specs]
        try:
            existing = set(await self._admin.list_topics())
            described = await self._admin.describe_topics([n for n in names if n in existing])
        except Exception as e:
            raise translate(e, "describing topics") from e
        partitions = {t["topic"]: len(t["partitions"]) for t in described}
        return [TopicState(n, partitions.get(n, 0), n in existing) for n in names]

    async def create_acls(self, acls: Iterable[AclBinding]) -> None:
        """Create ALLOW rules (an existing one is left as it is); the admin user's right alone."""
        requests = [
            CreateAclsRequest(
                acl.resource_type, acl.resource_name, acl.pattern, acl.principal, "*", acl.operation, ALLOW
            )
            for acl in acls
        ]
        try:
            responses = await asyncio.gather(*(self._admin._send_request(r) for r in requests))
        except Exception as e:
            raise translate(e, "creating ACLs") from e
        for request, response in zip(requests, responses, strict=True):
            for code, message in response.creation_responses:
                if code != 0:
                    raise translate(for_code(code)(message), f"creating ACL {request._principal}")

    async def delete(self, physical_names: Sequence[str]) -> None:
        try:
            await self._admin.delete_topics(list(physical_names))
        except Exception as e:
            raise translate(e, "deleting topics") from e


def _has_leaders(described: dict[str, Any]) -> bool:
    """Metadata can list a new topic before its partitions exist: no partitions is not ready."""
    partitions = described.get("partitions") or []
    return (
        bool(partitions) and described.get("error_code", 0) == 0 and all(p["leader"] >= 0 for p in partitions)
    )


def topic_configs(spec: TopicSpec, settings: KafkaSettings) -> dict[str, str]:
    """The per-topic broker configuration the catalogue and the deployment ask for."""
    configs = {"cleanup.policy": spec.cleanup_policy, "min.insync.replicas": str(settings.min_insync)}
    if spec.retention_ms is not None:
        configs["retention.ms"] = str(spec.retention_ms)
    return configs


async def wait_for_broker(settings: KafkaSettings, timeout_s: float = 30.0) -> None:
    """Wait until the cluster answers a metadata request (start-up ordering without sleeps); refused
    credentials or certificates fail at once (waiting cannot fix them)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            async with TopicAdmin(settings) as admin:
                await admin._admin.list_topics()
                return
        except KafkaError as e:
            if not e.retriable or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def diagnose(settings: KafkaSettings, error: KafkaError) -> KafkaError:
    """Why a secured client could not connect, when it is its credentials or the broker's certificate:
    aiokafka only says it could not bootstrap (the cause is in its log). ``error`` otherwise."""
    if settings.protocol == "PLAINTEXT" or not isinstance(error, BrokerUnavailable):
        return error
    host, _, port = settings.bootstrap_servers.split(",")[0].strip().rpartition(":")
    options = security_options(settings)
    try:
        conn = await asyncio.wait_for(
            create_conn(
                host,
                int(port),
                client_id=f"{settings.client_id}-diagnose",
                request_timeout_ms=settings.request_timeout_ms,
                **options,
            ),
            settings.request_timeout_ms / 1000,
        )
    except SaslAuthenticationFailed as e:
        user = options.get("sasl_plain_username")
        return AuthenticationFailed(
            f"Kafka at {host}:{port} refused the {settings.sasl_mechanism} credentials of user {user!r} "
            f"(wrong password, or no such user): {e}"
        )
    except ssl.SSLCertVerificationError as e:
        return AuthenticationFailed(
            f"the TLS certificate of Kafka at {host}:{port} failed verification against "
            f"{settings.ssl_cafile or 'the system CAs'}: {e.verify_message}"
        )
    except Exception:
        return error  # unreachable or slow: the original answer says so
    conn.close()
    return error
