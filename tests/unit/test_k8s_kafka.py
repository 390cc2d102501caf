"""Kafka on Kubernetes through Strimzi: the custom resources of infra/k8s agree with the code.

- kafka-topics.yaml: one KafkaTopic per topic of events.topics.CATALOGUE, with the partitions, replicas
  and configs `esports topics create` would give it under the ConfigMap's settings (infra.kafka's
  topic_configs), and nothing else.
- kafka-users.yaml: one KafkaUser per service (infra.security.SERVICE_USERS), SCRAM-SHA-512, whose ACLs
  are exactly infra.security.acls_of(service): WRITE only on the topics the catalogue says it writes.
- Every workload connects as the KafkaUser of its package and mounts that user's Secret and the cluster
  CA where the ConfigMap's ESPORTS_KAFKA__PASSWORD_FILE and ESPORTS_KAFKA__SSL_CAFILE point.
- The Strimzi resources validate against STRIMZI_SCHEMA: the subset of Strimzi's kafka.strimzi.io/v1beta2
  API these files use, strict (an unknown or misspelt field fails), since kubernetes-validate knows no
  custom resources.

Both generated files are rewritten from the code by running this module:
    .venv/bin/python -m tests.unit.test_k8s_kafka
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import pytest
import yaml

from events.topics import CATALOGUE, TopicSpec
from infra.kafka import topic_configs
from infra.security import SERVICE_USERS, AclBinding, PatternType, acls_of
from infra.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "infra" / "k8s"
TOPICS_FILE = K8S / "kafka-topics.yaml"
USERS_FILE = K8S / "kafka-users.yaml"
STRIMZI_API = "kafka.strimzi.io/v1beta2"
CLUSTER = "esports"  # the Kafka resource's name: Strimzi names its Services and Secrets after it
CLUSTER_CA_SECRET = f"{CLUSTER}-cluster-ca-cert"
# Which package's user each service's command runs as (the catalogue names writers by package).
USER_OF_COMMAND = {
    "api": "producers",
    "edge": "edge_ws",
    "ingest": "ingest_workers",
    "processors": "stream_processors",
    "projector": "projections",
}
STRIMZI_OPERATION = {  # infra.security's operations as Strimzi spells them
    "ALL": "All",
    "READ": "Read",
    "WRITE": "Write",
    "CREATE": "Create",
    "DESCRIBE": "Describe",
    "DESCRIBE_CONFIGS": "DescribeConfigs",
    "IDEMPOTENT_WRITE": "IdempotentWrite",
}
STRIMZI_PATTERN = {PatternType.LITERAL: "literal", PatternType.PREFIXED: "prefix"}


# --- what the code says --------------------------------------------------------------------------


def k8s_name(name: str) -> str:
    """A Kubernetes object name for a Kafka name: DNS-1123 allows no underscore."""
    return name.replace("_", "-")


def configmap() -> dict[str, str]:
    docs = yaml.safe_load_all((K8S / "configmap.yaml").read_text())
    (config,) = [d for d in docs if d and d["kind"] == "ConfigMap"]
    return dict(config["data"])


def deployed_kafka_settings() -> KafkaSettings:
    """The KafkaSettings the pods get from the ConfigMap (partition and replication defaults)."""
    data = configmap()
    return KafkaSettings(
        bootstrap_servers=data["ESPORTS_KAFKA__BOOTSTRAP_SERVERS"],
        default_partitions=int(data["ESPORTS_KAFKA__DEFAULT_PARTITIONS"]),
        replication_factor=int(data["ESPORTS_KAFKA__REPLICATION_FACTOR"]),
    )


def expected_topic(spec: TopicSpec, settings: KafkaSettings) -> dict[str, Any]:
    configs: dict[str, Any] = topic_configs(spec, settings)
    return {
        "apiVersion": STRIMZI_API,
        "kind": "KafkaTopic",
        "metadata": {"name": k8s_name(str(spec.name)), "labels": {"strimzi.io/cluster": CLUSTER}},
        "spec": {
            "topicName": str(spec.name),
            "partitions": spec.partitions or settings.default_partitions,
            "replicas": settings.replication,
            "config": {k: int(v) if v.lstrip("-").isdigit() else v for k, v in sorted(configs.items())},
        },
    }


def strimzi_acls(acls: list[AclBinding]) -> list[dict[str, Any]]:
    """infra.security's bindings as Strimzi ACL rules, one rule per resource with all its operations."""
    by_resource: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for acl in acls:
        by_resource[(acl.resource_type.name.lower(), acl.resource_name, STRIMZI_PATTERN[acl.pattern])].append(
            STRIMZI_OPERATION[acl.operation.name]
        )
    rules = []
    for (kind, name, pattern), operations in sorted(by_resource.items()):
        resource = (
            {"type": kind} if kind == "cluster" else {"type": kind, "name": name, "patternType": pattern}
        )
        rules.append({"resource": resource, "operations": sorted(operations), "host": "*"})
    return rules


def expected_user(service: str) -> dict[str, Any]:
    return {
        "apiVersion": STRIMZI_API,
        "kind": "KafkaUser",
        "metadata": {"name": k8s_name(service), "labels": {"strimzi.io/cluster": CLUSTER}},
        "spec": {
            "authentication": {"type": "scram-sha-512"},
            "authorization": {"type": "simple", "acls": strimzi_acls(acls_of(service))},
        },
    }


# --- what the files say --------------------------------------------------------------------------


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def strimzi_objects() -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.name, obj)
        for path in sorted(K8S.glob("*.y*ml"))
        if path.name != "kustomization.yaml"
        for obj in documents(path)
        if obj["apiVersion"].startswith("kafka.strimzi.io/")
    ]


def objects(kind: str) -> list[dict[str, Any]]:
    return [o for _, o in strimzi_objects() if o["kind"] == kind]


def acl_set(rules: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    return {
        (r["resource"]["type"], r["resource"].get("name", ""), r["resource"].get("patternType", ""), op)
        for r in rules
        for op in r["operations"]
    }


# --- schema of the Strimzi fields used -----------------------------------------------------------


def _strict(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"}
_CLUSTER_LABEL = _strict({"strimzi.io/cluster": {"type": "string"}}, ("strimzi.io/cluster",))
_QUANTITY = {"type": ["string", "integer"]}
_RESOURCES = _strict({k: _strict({"cpu": _QUANTITY, "memory": _QUANTITY}) for k in ("requests", "limits")})
_CONFIG_VALUE = {"type": ["string", "integer", "boolean", "number"]}
_OPERATIONS = [
    "Read", "Write", "Create", "Delete", "Alter", "Describe", "ClusterAction", "AlterConfigs",
    "DescribeConfigs", "IdempotentWrite", "All",
]  # fmt: skip
_PEER = _strict(
    {"podSelector": _strict({"matchLabels": _LABELS}), "namespaceSelector": _strict({"matchLabels": _LABELS})}
)

STRIMZI_SCHEMA: dict[str, dict[str, Any]] = {
    "Kafka": _strict(
        {
            "apiVersion": {"const": STRIMZI_API},
            "kind": {"const": "Kafka"},
            "metadata": _strict({"name": _NAME, "labels": _LABELS, "annotations": _LABELS}, ("name",)),
            "spec": _strict(
                {
                    "kafka": _strict(
                        {
                            "version": {"type": "string", "pattern": r"^\d+\.\d+\.\d+$"},
                            "listeners": {
                                "type": "array",
                                "minItems": 1,
                                "items": _strict(
                                    {
                                        "name": {"type": "string", "pattern": "^[a-z0-9]{1,11}$"},
                                        "port": {"type": "integer", "minimum": 9092},
                                        "type": {
                                            "enum": [
                                                "internal",
                                                "route",
                                                "loadbalancer",
                                                "nodeport",
                                                "ingress",
                                                "cluster-ip",
                                            ]
                                        },
                                        "tls": {"type": "boolean"},
                                        "authentication": _strict(
                                            {"type": {"enum": ["tls", "scram-sha-512", "oauth", "custom"]}},
                                            ("type",),
                                        ),
                                        "networkPolicyPeers": {"type": "array", "items": _PEER},
                                    },
                                    ("name", "port", "type", "tls"),
                                ),
                            },
                            "authorization": _strict(
                                {
                                    "type": {"enum": ["simple", "opa", "keycloak", "custom"]},
                                    "superUsers": {"type": "array", "items": {"type": "string"}},
                                },
                                ("type",),
                            ),
                            "config": {"type": "object", "additionalProperties": _CONFIG_VALUE},
                        },
                        ("listeners",),
                    ),
                    "entityOperator": _strict({"topicOperator": _strict({}), "userOperator": _strict({})}),
                },
                ("kafka",),
            ),
        },
        ("apiVersion", "kind", "metadata", "spec"),
    ),
    "KafkaNodePool": _strict(
        {
            "apiVersion": {"const": STRIMZI_API},
            "kind": {"const": "KafkaNodePool"},
            "metadata": _strict({"name": _NAME, "labels": _CLUSTER_LABEL}, ("name", "labels")),
            "spec": _strict(
                {
                    "replicas": {"type": "integer", "minimum": 0},
                    "roles": {
                        "type": "array",
                        "minItems": 1,
                        "uniqueItems": True,
                        "items": {"enum": ["controller", "broker"]},
                    },
                    "storage": _strict(
                        {
                            "type": {"const": "jbod"},
                            "volumes": {
                                "type": "array",
                                "minItems": 1,
                                "items": _strict(
                                    {
                                        "id": {"type": "integer", "minimum": 0},
                                        "type": {"enum": ["persistent-claim", "ephemeral"]},
                                        "size": {"type": "string"},
                                        "deleteClaim": {"type": "boolean"},
                                        "kraftMetadata": {"const": "shared"},
                                    },
                                    ("id", "type"),
                                ),
                            },
                        },
                        ("type", "volumes"),
                    ),
                    "resources": _RESOURCES,
                },
                ("replicas", "roles", "storage"),
            ),
        },
        ("apiVersion", "kind", "metadata", "spec"),
    ),
    "KafkaTopic": _strict(
        {
            "apiVersion": {"const": STRIMZI_API},
            "kind": {"const": "KafkaTopic"},
            "metadata": _strict({"name": _NAME, "labels": _CLUSTER_LABEL}, ("name", "labels")),
            "spec": _strict(
                {
                    "topicName": {"type": "string", "pattern": r"^[A-Za-z0-9._-]{1,249}$"},
                    "partitions": {"type": "integer", "minimum": 1},
                    "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
                    "config": {"type": "object", "additionalProperties": _CONFIG_VALUE},
                },
                ("partitions", "replicas"),
            ),
        },
        ("apiVersion", "kind", "metadata", "spec"),
    ),
    "KafkaUser": _strict(
        {
            "apiVersion": {"const": STRIMZI_API},
            "kind": {"const": "KafkaUser"},
            "metadata": _strict({"name": _NAME, "labels": _CLUSTER_LABEL}, ("name", "labels")),
            "spec": _strict(
                {
                    "authentication": _strict(
                        {"type": {"enum": ["tls", "tls-external", "scram-sha-512"]}}, ("type",)
                    ),
                    "authorization": _strict(
                        {
                            "type": {"const": "simple"},
                            "acls": {
                                "type": "array",
                                "items": _strict(
                                    {
                                        "resource": {
                                            "oneOf": [
                                                _strict({"type": {"const": "cluster"}}, ("type",)),
                                                _strict(
                                                    {
                                                        "type": {
                                                            "enum": ["topic", "group", "transactionalId"]
                                                        },
                                                        "name": {"type": "string", "minLength": 1},
                                                        "patternType": {"enum": ["literal", "prefix"]},
                                                    },
                                                    ("type", "name", "patternType"),
                                                ),
                                            ]
                                        },
                                        "operations": {
                                            "type": "array",
                                            "minItems": 1,
                                            "uniqueItems": True,
                                            "items": {"enum": _OPERATIONS},
                                        },
                                        "host": {"type": "string"},
                                    },
                                    ("resource", "operations"),
                                ),
                            },
                        },
                        ("type", "acls"),
                    ),
                },
                ("authentication", "authorization"),
            ),
        },
        ("apiVersion", "kind", "metadata", "spec"),
    ),
}


# --- tests ---------------------------------------------------------------------------------------


def test_the_strimzi_schema_is_a_valid_json_schema() -> None:
    for schema in STRIMZI_SCHEMA.values():
        jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize(
    "filename,obj",
    strimzi_objects(),
    ids=lambda v: v if isinstance(v, str) else f"{v['kind']}/{v['metadata']['name']}",
)
def test_strimzi_resource_validates_against_the_schema_of_the_fields_used(
    filename: str, obj: dict[str, Any]
) -> None:
    assert obj["kind"] in STRIMZI_SCHEMA, f"{filename}: {obj['kind']} has no schema here: add one"
    validator = jsonschema.Draft202012Validator(STRIMZI_SCHEMA[obj["kind"]])
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{filename}: {'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_one_kraft_cluster_with_node_pools_and_a_scram_tls_listener() -> None:
    (kafka,) = objects("Kafka")
    assert kafka["metadata"]["name"] == CLUSTER
    assert kafka["metadata"]["annotations"] == {
        "strimzi.io/node-pools": "enabled",
        "strimzi.io/kraft": "enabled",
    }
    pools = objects("KafkaNodePool")
    assert {role for p in pools for role in p["spec"]["roles"]} == {"controller", "broker"}
    assert all(p["metadata"]["labels"]["strimzi.io/cluster"] == CLUSTER for p in pools)
    (listener,) = kafka["spec"]["kafka"]["listeners"]
    assert listener["tls"] is True and listener["authentication"] == {"type": "scram-sha-512"}
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
    config = kafka["spec"]["kafka"]["config"]
    assert config["auto.create.topics.enable"] is False
    brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
    settings = deployed_kafka_settings()
    assert brokers >= settings.replication, "fewer brokers than the topics' replicas"
    assert config["min.insync.replicas"] == settings.min_insync
    # The services reach this listener (TLS + SCRAM) at the bootstrap Service Strimzi names after it.
    data = configmap()
    assert data["ESPORTS_KAFKA__BOOTSTRAP_SERVERS"] == f"{CLUSTER}-kafka-bootstrap:{listener['port']}"
    assert data["ESPORTS_KAFKA__SECURITY_PROTOCOL"] == "SASL_SSL"
    assert data["ESPORTS_KAFKA__SASL_MECHANISM"] == "SCRAM-SHA-512"


def test_kafka_topics_are_the_catalogue() -> None:
    settings = deployed_kafka_settings()
    expected = {spec.name: expected_topic(spec, settings) for spec in CATALOGUE}
    found = {t["spec"]["topicName"]: t for t in objects("KafkaTopic")}
    assert sorted(found) == sorted(expected), "regenerate: .venv/bin/python -m tests.unit.test_k8s_kafka"
    for name, topic in found.items():
        want = expected[name]
        assert topic["metadata"] == want["metadata"], name
        spec = topic["spec"]
        assert (spec["partitions"], spec["replicas"]) == (
            want["spec"]["partitions"],
            want["spec"]["replicas"],
        ), name
        as_strings = {k: str(v).lower() for k, v in spec["config"].items()}
        assert as_strings == {k: str(v).lower() for k, v in want["spec"]["config"].items()}, name


def test_kafka_users_and_acls_are_the_catalogues_writers() -> None:
    found = {u["metadata"]["name"]: u for u in objects("KafkaUser")}
    assert sorted(found) == sorted(k8s_name(s) for s in SERVICE_USERS)
    for service in SERVICE_USERS:
        user = found[k8s_name(service)]
        assert user["spec"]["authentication"] == {"type": "scram-sha-512"}, service
        want = acl_set(expected_user(service)["spec"]["authorization"]["acls"])
        assert acl_set(user["spec"]["authorization"]["acls"]) == want, (
            f"{service}: ACLs differ from infra.security.acls_of; "
            "regenerate: .venv/bin/python -m tests.unit.test_k8s_kafka"
        )


def test_a_user_writes_only_the_topics_its_package_writes() -> None:
    """The point of the ACLs, read from the file: edge_ws may not write chat.messages, and so on."""
    users = {u["metadata"]["name"]: u for u in objects("KafkaUser")}
    writes = {
        name: {
            r["resource"]["name"]
            for r in user["spec"]["authorization"]["acls"]
            if r["resource"]["type"] == "topic"
            and {"Write", "All"} & set(r["operations"])
            and r["resource"]["patternType"] == "literal"
        }
        for name, user in users.items()
    }
    assert "chat.messages" in writes["stream-processors"]
    assert "chat.messages" not in writes["edge-ws"]
    assert "chat.submitted" in writes["edge-ws"]
    assert writes["projections"] == {"deadletter"}, "the projector only reads (and dead-letters)"
    for spec in CATALOGUE:
        # "infra" (the dead-letter topic) is written by every consumer, not by a service of its own.
        owners = [k8s_name(s) for s in SERVICE_USERS] if spec.owner == "infra" else [k8s_name(spec.owner)]
        assert all(spec.name in writes[owner] for owner in owners), spec.name


def _workloads() -> list[dict[str, Any]]:
    return [
        obj
        for path in sorted(K8S.glob("*.y*ml"))
        if path.name != "kustomization.yaml"
        for obj in documents(path)
        if obj["kind"] in {"Deployment", "StatefulSet", "Job"}
    ]


def test_every_workload_connects_as_the_kafka_user_of_its_package() -> None:
    data = configmap()
    password_dir = str(PurePosixPath(data["ESPORTS_KAFKA__PASSWORD_FILE"]).parent)
    ca_dir = str(PurePosixPath(data["ESPORTS_KAFKA__SSL_CAFILE"]).parent)
    users = {u["metadata"]["name"] for u in objects("KafkaUser")}
    commands = set()
    for obj in _workloads():
        pod = obj["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for container in pod["containers"]:
            where = f"{obj['metadata']['name']}/{container['name']}"
            command = container["args"][0]
            commands.add(command)
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            user = env.get("ESPORTS_KAFKA__USERNAME")
            assert user == k8s_name(USER_OF_COMMAND[command]) and user in users, where
            mounts = {m["mountPath"]: volumes.get(m["name"], {}) for m in container["volumeMounts"]}
            secret = mounts[password_dir]["secret"]
            assert secret["secretName"] == user, f"{where}: mounts another user's password"
            assert {
                "key": "password",
                "path": PurePosixPath(data["ESPORTS_KAFKA__PASSWORD_FILE"]).name,
            } in secret["items"]
            ca = mounts[ca_dir]["secret"]
            assert ca["secretName"] == CLUSTER_CA_SECRET, where
            assert {"key": "ca.crt", "path": PurePosixPath(data["ESPORTS_KAFKA__SSL_CAFILE"]).name} in ca[
                "items"
            ]
    assert commands == set(USER_OF_COMMAND)


def test_kafka_client_traffic_is_admitted_from_the_platform_only() -> None:
    (kafka,) = objects("Kafka")
    (listener,) = kafka["spec"]["kafka"]["listeners"]
    assert listener["networkPolicyPeers"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "esports-live"}}}
    ]
    # Strimzi copies the Kafka resource's labels onto its pods: the platform's label there would let
    # every broker pass for a platform pod in the NetworkPolicies.
    for _, obj in strimzi_objects():
        assert "app.kubernetes.io/name" not in obj["metadata"].get("labels", {}), obj["metadata"]["name"]


# --- regeneration --------------------------------------------------------------------------------

HEADERS = {
    TOPICS_FILE: (
        "# GENERATED from events/topics.py (the topic catalogue) under configmap.yaml's partition and\n"
        "# replication settings: .venv/bin/python -m tests.unit.test_k8s_kafka\n"
        "# tests/unit/test_k8s_kafka.py fails when these differ from the catalogue. Strimzi's Topic\n"
        "# Operator creates and updates the topics; the services' own internal topics (Faust changelogs)\n"
        "# are theirs.\n"
    ),
    USERS_FILE: (
        "# GENERATED from infra/security.py (ACLs from the topic catalogue's writers: TopicSpec.owner and\n"
        "# gateways): .venv/bin/python -m tests.unit.test_k8s_kafka\n"
        "# tests/unit/test_k8s_kafka.py fails when these differ. One SCRAM-SHA-512 user per service;\n"
        "# Strimzi's User Operator keeps each password in a Secret named after the user (key: password).\n"
    ),
}


def write_generated() -> None:
    settings = deployed_kafka_settings()
    generated = {
        TOPICS_FILE: [expected_topic(spec, settings) for spec in CATALOGUE],
        USERS_FILE: [expected_user(service) for service in SERVICE_USERS],
    }
    for path, docs in generated.items():
        body = yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False, width=110)
        path.write_text(HEADERS[path] + body)
        print(f"wrote {path.relative_to(ROOT)} ({len(docs)} objects)", file=sys.stderr)


if __name__ == "__main__":
    write_generated()
