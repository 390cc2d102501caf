"""The deployment files are valid and agree with the code: no Docker engine, cluster or network needed.

- infra/k8s/*.yaml: every object validates against the Kubernetes OpenAPI schemas bundled by
  kubernetes-validate, strict (an unknown or misspelt field fails), for the oldest and newest supported
  Kubernetes versions (Strimzi's custom resources, which it does not know, are validated by
  test_k8s_kafka.py); kustomization.yaml lists every manifest; references (ConfigMap, Secret keys,
  selectors, probe ports, HPA and PDB targets, NetworkPolicy ports) point at things that exist.
- docker-compose.yml: validates against the Compose Specification schema vendored by check-jsonschema;
  every service has a healthcheck or is a one-shot the others wait for.
- Both: every `esports` command parses with infra.cli.build_parser(), every ESPORTS_* name is a field of
  infra.settings.Settings, secrets are never literal values. WHIP: its port and its media's UDP range
  are published port for port (compose ports, the LoadBalancer, the NetworkPolicy) at a public address,
  no pod takes the host network; Low-Latency HLS: the switch is there (off), the ingest settings are
  valid with it on, and the cache tier's rules for it hold with the ConfigMap's values.
- Dockerfile/.dockerignore: the structure promised in the Dockerfile (multi-stage, non-root, no dev deps,
  FFmpeg and nginx-rtmp in the `ingest` target only, hls.js from a Node stage).
- .github/workflows/ci.yml: validates against the GitHub workflow schema vendored by check-jsonschema
  (offline), and runs `make test` the way the project installs itself.
- pyproject.toml: the image installs the project non-editable, so every subpackage and every data file
  the services read must be declared there.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import os
import re
import subprocess
import sys
import tomllib
from fnmatch import fnmatch
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from pydantic import BaseModel

from infra.cli import build_parser
from infra.settings import IngestSettings, Settings
from ingest_workers import nginx

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "infra" / "k8s"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
SECRET_TEMPLATE = "secret.template.yaml"
IMAGE = "esports-live"  # the image name the manifests use (kustomize rewrites it to the user's registry)
INGEST_IMAGE = "esports-live-ingest"  # the Dockerfile's `ingest` target: + FFmpeg, nginx-rtmp
IMAGES = {IMAGE, INGEST_IMAGE}
INGEST_PACKAGES = {"ffmpeg", "nginx", "libnginx-mod-rtmp", "fonts-dejavu-core"}
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
# Kubernetes versions validated against: the oldest still in common support and the newest bundled.
K8S_VERSIONS = sorted({"1.30", kubernetes_validate.latest_version().rsplit(".", 1)[0]})
# The port each service's /health is served on, by command.
HEALTH_PORT_SETTING = {
    "api": "ESPORTS_API__PORT",
    "processors": "ESPORTS_PROCESSORS__WEB_PORT",
    "projector": "ESPORTS_PROJECTIONS__WEB_PORT",
    "edge": "ESPORTS_EDGE__PORT",
}
SERVICES = set(HEALTH_PORT_SETTING)  # each a Deployment
STATEFUL_SERVICES = {"ingest"}  # each a StatefulSet (its HLS folder is a volume of its own)
ESPORTS_NAME = re.compile(r"\bESPORTS_[A-Z0-9_]*[A-Z0-9]")


# --- helpers ------------------------------------------------------------------------------------


@cache
def setting_names() -> frozenset[str]:
    """Every environment variable Settings reads: ESPORTS_<CONCERN>__<FIELD> or ESPORTS_<FIELD>."""
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        model = field.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            names.update(f"ESPORTS_{name}__{sub}".upper() for sub in model.model_fields)
        else:
            names.add(f"ESPORTS_{name}".upper())
    return frozenset(names)


def is_secret(name: str) -> bool:
    """The same rule `esports config` masks by, except for *_FILE settings: those name a path (of a
    mounted Secret), which is no secret."""
    return not name.endswith("_FILE") and any(
        word in name.lower() for word in ("password", "secret", "token")
    )


def secret_settings() -> set[str]:
    return {n for n in setting_names() if is_secret(n)}


@cache
def k8s_files() -> dict[str, list[dict[str, Any]]]:
    """Every manifest file of infra/k8s (kustomization.yaml excluded) -> its objects."""
    out = {}
    for path in sorted(K8S.glob("*.y*ml")):
        if path.name == "kustomization.yaml":
            continue
        out[path.name] = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return out


def k8s_objects(kind: str | None = None) -> list[dict[str, Any]]:
    return [o for docs in k8s_files().values() for o in docs if kind is None or o["kind"] == kind]


def one(kind: str, name: str) -> dict[str, Any]:
    found = [o for o in k8s_objects(kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


def is_strimzi(obj: dict[str, Any]) -> bool:
    return bool(obj["apiVersion"].startswith("kafka.strimzi.io/"))


def esports_containers() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, container) for every container running one of the platform's images."""
    return [
        (obj, c)
        for obj in k8s_objects("Deployment") + k8s_objects("StatefulSet") + k8s_objects("Job")
        for c in pod_spec(obj)["containers"]
        if c["image"].split(":")[0] in IMAGES
    ]


def configmap() -> dict[str, str]:
    return one("ConfigMap", "esports-config")["data"]


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def compose_esports_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose()["services"].items() if s.get("image", "").startswith(IMAGE)}


def compose_default(value: str) -> str:
    """A compose value as it is without .env: ``${NAME:-default}`` is its default."""
    match = re.fullmatch(r"\$\{[A-Z0-9_]+:-([^}]*)\}", value)
    return match.group(1) if match else value


def ingest_settings(env: dict[str, Any], **overrides: str) -> IngestSettings:
    """IngestSettings from the ESPORTS_INGEST__* values of ``env`` (a ConfigMap's, a compose service's)."""
    prefix = "ESPORTS_INGEST__"
    values = {
        k.removeprefix(prefix).lower(): compose_default(str(v))
        for k, v in env.items()
        if k.startswith(prefix)
    }
    return IngestSettings(**(values | overrides))


def whip_udp_ports(env: dict[str, Any]) -> range:
    ports = ingest_settings(env).whip_udp_port_range
    assert ports is not None, "ESPORTS_INGEST__WHIP_UDP_PORTS: WebRTC behind NAT needs known media ports"
    return ports


def parse_cli(argv: list[str]) -> argparse.Namespace:
    try:
        return build_parser().parse_args(argv)
    except SystemExit as e:
        raise AssertionError(f"`esports {' '.join(argv)}` is not a valid command of infra.cli") from e


def probe_url(probe: dict[str, Any], ports: dict[str, int]) -> str:
    """The URL a probe GETs: httpGet on a named port, or exec of a python one-liner (services that bind
    their web server to the pod's loopback only)."""
    if "httpGet" in probe:
        get = probe["httpGet"]
        assert get["port"] in ports, f"probe port {get['port']} names no container port"
        return f"http://127.0.0.1:{ports[get['port']]}{get['path']}"
    command = probe["exec"]["command"]
    assert command[:2] == ["python", "-c"], command
    return command[2]


def deployment_for(command: str) -> dict[str, Any]:
    found = [o for o, c in esports_containers() if o["kind"] == "Deployment" and c["args"][0] == command]
    assert len(found) == 1, f"expected one Deployment running `esports {command}`"
    return found[0]


# --- Kubernetes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("filename", sorted(k8s_files()))
def test_k8s_manifest_validates_against_the_openapi_schema(filename: str, version: str) -> None:
    objects = k8s_files()[filename]
    assert objects, f"{filename} holds no object"
    for obj in (o for o in objects if not is_strimzi(o)):
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = "/".join(str(p) for p in e.path)
            pytest.fail(f"{filename}: {obj['kind']} {obj['metadata'].get('name')}: {path}: {e.message}")


def test_kustomization_lists_every_manifest_except_the_secret_template() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["namespace"] == one("Namespace", "esports")["metadata"]["name"]
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources)), "a resource is listed twice"
    # The template holds placeholders: applying it would run the services on them. It is left out so the
    # pods wait (CreateContainerConfigError) until the user creates the Secret with real values.
    assert set(resources) == set(k8s_files()) - {SECRET_TEMPLATE}
    assert [i["name"] for i in kustomization["images"]] == [IMAGE, INGEST_IMAGE]
    used = {c["image"] for _, c in esports_containers()}
    assert used == IMAGES, "every image of kustomization.yaml is used, and only those"


def test_secret_template_holds_only_placeholders_for_the_secret_settings() -> None:
    docs = k8s_files()[SECRET_TEMPLATE]
    assert len(docs) == 1 and docs[0]["kind"] == "Secret"
    secret = docs[0]
    assert secret["metadata"]["name"] == "esports-secrets"
    assert "data" not in secret, "use stringData with REPLACE_ME placeholders, never encoded values"
    assert set(secret["stringData"].values()) == {"REPLACE_ME"}
    assert set(secret["stringData"]) <= secret_settings()
    assert "ESPORTS_AUTH__JWT_SECRET" in secret["stringData"]


def test_configs_and_secrets_referenced_by_workloads_exist() -> None:
    keys = set(k8s_files()[SECRET_TEMPLATE][0]["stringData"])
    for obj, container in esports_containers():
        where = f"{obj['metadata']['name']}/{container['name']}"
        refs = [e["configMapRef"]["name"] for e in container.get("envFrom", [])]
        assert refs == ["esports-config"], where
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == "esports-secrets" and ref["key"] in keys, where
                assert env["name"] == ref["key"], where
            else:
                assert not is_secret(env["name"]), f"{where}: {env['name']} must come from the Secret"


def test_no_secret_in_the_configmap() -> None:
    assert not secret_settings() & set(configmap())
    assert all(isinstance(v, str) for v in configmap().values()), "ConfigMap values must be strings"


def test_every_service_has_a_deployment_and_commands_exist() -> None:
    commands = {c["args"][0] for o, c in esports_containers() if o["kind"] == "Deployment"}
    assert commands == SERVICES
    stateful = {c["args"][0] for o, c in esports_containers() if o["kind"] == "StatefulSet"}
    assert stateful == STATEFUL_SERVICES
    for obj, container in esports_containers():
        wanted = INGEST_IMAGE if container["args"][0] in STATEFUL_SERVICES else IMAGE
        assert container["image"] == wanted, f"{obj['metadata']['name']}: runs {container['image']}"
        assert "command" not in container, "keep the image's ENTRYPOINT (esports); pass args"
        parse_cli(container["args"])


def test_deployments_have_probes_resources_and_run_unprivileged() -> None:
    for obj in k8s_objects("Deployment"):
        name, spec = obj["metadata"]["name"], pod_spec(obj)
        labels = obj["spec"]["template"]["metadata"]["labels"]
        assert obj["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        for container in spec["containers"]:
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            assert len(ports) == 1, f"{name}: one port per service, serving /health and /metrics"
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                (port,) = ports.values()
                assert f"http://127.0.0.1:{port}/health" in probe_url(container[probe], ports), (
                    f"{name}: {probe} is not GET /health on the container port"
                )
            for kind in ("requests", "limits"):
                assert set(container["resources"][kind]) >= {"cpu", "memory"}, f"{name}: {kind}"
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name


def test_health_ports_match_the_settings_in_the_configmap() -> None:
    for command, setting in HEALTH_PORT_SETTING.items():
        container = pod_spec(deployment_for(command))["containers"][0]
        assert [p["containerPort"] for p in container["ports"]] == [int(configmap()[setting])], command
    assert configmap()["ESPORTS_API__HOST"] == "0.0.0.0", "the API must listen beyond the pod's loopback"


def test_api_replicas_service_pdb_and_hpa() -> None:
    api = deployment_for("api")
    name, labels = api["metadata"]["name"], api["spec"]["template"]["metadata"]["labels"]
    assert api["spec"]["replicas"] == 2
    service = one("Service", name)
    assert service["spec"]["selector"].items() <= labels.items()
    port_names = {p["name"] for p in pod_spec(api)["containers"][0]["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    pdb = one("PodDisruptionBudget", name)
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = one("HorizontalPodAutoscaler", name)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    assert hpa["spec"]["minReplicas"] >= 2 and hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]


def test_projector_is_a_single_replica_replaced_not_rolled() -> None:
    projector = deployment_for("projector")
    assert projector["spec"]["replicas"] == 1
    assert projector["spec"]["strategy"]["type"] == "Recreate"


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a LabelSelector (matchLabels, matchExpressions with In) selects pods with ``labels``."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", "only In is read here"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def pod_labels(obj: dict[str, Any]) -> dict[str, str]:
    return dict(obj["spec"]["template"]["metadata"]["labels"])


def test_edge_replicas_service_pdb_and_hpa() -> None:
    edge = deployment_for("edge")
    name, labels = edge["metadata"]["name"], pod_labels(edge)
    assert edge["spec"]["replicas"] >= 2
    assert edge["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, (
        "a new pod first: clients move to it"
    )
    container = pod_spec(edge)["containers"][0]
    drain_s = Settings().edge.drain_timeout_s
    assert pod_spec(edge)["terminationGracePeriodSeconds"] > drain_s, "time to drain the clients"
    service = one("Service", name)
    assert selects({"matchLabels": service["spec"]["selector"]}, labels)
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= {p["name"] for p in container["ports"]}
    pdb = one("PodDisruptionBudget", name)
    assert selects(pdb["spec"]["selector"], labels) and pdb["spec"]["maxUnavailable"] == 1
    hpa = one("HorizontalPodAutoscaler", name)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    assert hpa["spec"]["minReplicas"] >= 2 and hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]


def test_every_pdb_and_hpa_targets_a_workload() -> None:
    workloads = k8s_objects("Deployment") + k8s_objects("StatefulSet")
    for pdb in k8s_objects("PodDisruptionBudget"):
        assert any(selects(pdb["spec"]["selector"], pod_labels(w)) for w in workloads), pdb["metadata"][
            "name"
        ]
    deployments = {d["metadata"]["name"] for d in k8s_objects("Deployment")}
    hpas = {h["spec"]["scaleTargetRef"]["name"] for h in k8s_objects("HorizontalPodAutoscaler")}
    assert hpas <= deployments
    assert {deployment_for("api")["metadata"]["name"], deployment_for("edge")["metadata"]["name"]} <= hpas


def test_ingest_statefulset_has_its_hls_volume_probes_and_an_rtmp_load_balancer() -> None:
    (ingest,) = k8s_objects("StatefulSet")
    spec, labels = pod_spec(ingest), pod_labels(ingest)
    assert selects(ingest["spec"]["selector"], labels)
    assert ingest["spec"]["replicas"] == 1, (
        "one HLS base URL (ESPORTS_INGEST__PUBLIC_HLS_URL) for every stream; a WHIP session's resource "
        "URL lives on the node that answered its POST (a second node needs per-node WHIP routes)"
    )
    assert spec["securityContext"]["runAsNonRoot"] is True
    (container,) = spec["containers"]
    assert container["args"] == ["ingest"] and container["image"] == INGEST_IMAGE
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    setting_of = {
        "rtmp": "ESPORTS_INGEST__RTMP_PORT",
        "srt": "ESPORTS_INGEST__SRT_PORT",
        "origin": "ESPORTS_INGEST__ORIGIN_PORT",
        "hls": "ESPORTS_INGEST__CDN_PORT",
        "whip": "ESPORTS_INGEST__WHIP_PORT",
    }
    assert ports == {name: int(configmap()[setting]) for name, setting in setting_of.items()}
    assert configmap()["ESPORTS_INGEST__HOST"] == "0.0.0.0", "RTMP and HLS must listen beyond the loopback"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert probe_url(container[probe], ports).endswith("/health"), probe
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False and security["capabilities"]["drop"] == ["ALL"]
    # The transcoders write HLS to ESPORTS_INGEST__HLS_DIR: a claim of the StatefulSet's own.
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    claims = {c["metadata"]["name"] for c in ingest["spec"]["volumeClaimTemplates"]}
    assert mounts[configmap()["ESPORTS_INGEST__HLS_DIR"]] in claims
    # The nginx configs, temp folders and logs go under the run folder (the image's ESPORTS_STACK__RUN_DIR):
    # writable although the root filesystem is not.
    assert security["readOnlyRootFilesystem"] is True and "/var/lib/esports" in mounts
    governing = one("Service", ingest["spec"]["serviceName"])
    assert governing["spec"]["clusterIP"] == "None"
    public = [
        s for s in k8s_objects("Service")
        if s["spec"].get("type") == "LoadBalancer" and selects({"matchLabels": s["spec"]["selector"]}, labels)
    ]  # fmt: skip
    assert len(public) == 1
    exposed = {(p["port"], p.get("protocol", "TCP"), p["targetPort"]) for p in public[0]["spec"]["ports"]}
    # RTMP, SRT, WHIP and WHIP's media ports (each forwarded to the same port of the pod).
    wanted = {
        (1935, "TCP", "rtmp"),
        (int(configmap()["ESPORTS_INGEST__SRT_PORT"]), "UDP", "srt"),
        (int(configmap()["ESPORTS_INGEST__WHIP_PORT"]), "TCP", "whip"),
    }
    assert exposed == wanted | {(port, "UDP", port) for port in whip_udp_ports(configmap())}
    protocols = {p["name"]: p.get("protocol", "TCP") for p in container["ports"]}
    assert protocols["srt"] == "UDP" and protocols["rtmp"] == "TCP"


def policy_ports(rule: dict[str, Any]) -> set[tuple[str | int, str]]:
    """(port, protocol) of each port a rule admits, its ranges (port to endPort) spelt out."""
    out: set[tuple[str | int, str]] = set()
    for p in rule.get("ports", []):
        protocol = p.get("protocol", "TCP")
        if "endPort" in p:
            out.update((n, protocol) for n in range(p["port"], p["endPort"] + 1))
        else:
            out.add((p["port"], protocol))
    return out


def public_rules(labels: dict[str, str]) -> list[dict[str, Any]]:
    """The ingress rules admitting anyone (no `from`) to pods with ``labels``."""
    return [
        rule
        for policy in k8s_objects("NetworkPolicy")
        if selects(policy["spec"]["podSelector"], labels)
        for rule in policy["spec"].get("ingress", [])
        if "from" not in rule
    ]


def test_network_policies_deny_ingress_then_allow_each_public_path() -> None:
    policies = {p["metadata"]["name"]: p for p in k8s_objects("NetworkPolicy")}
    deny = policies["default-deny-ingress"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}, "no ingress rule: everything denied"
    public = {"api": {"http"}, "edge": {"ws"}, "ingest": {"rtmp", "srt", "hls", "whip"}}
    webrtc = {"ingest": {(port, "UDP") for port in whip_udp_ports(configmap())}}
    for command, port_names in public.items():
        workload = deployment_for(command) if command in SERVICES else k8s_objects("StatefulSet")[0]
        rules = public_rules(pod_labels(workload))
        assert len(rules) == 1, f"{command}: one rule admits the public"
        container = pod_spec(workload)["containers"][0]
        protocols = {p["name"]: p.get("protocol", "TCP") for p in container["ports"]}
        named = {(name, protocols[name]) for name in port_names}
        assert policy_ports(rules[0]) == named | webrtc.get(command, set()), command
    # Nothing else of the platform is reachable from outside: processors and projector get no such rule.
    for command in ("processors", "projector"):
        assert not public_rules(pod_labels(deployment_for(command))), command


def test_prometheus_may_scrape_where_the_annotations_point() -> None:
    (rule,) = one("NetworkPolicy", "prometheus-scrape")["spec"]["ingress"]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    annotated = {
        int(w["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"])
        for w in k8s_objects("Deployment")
        if w["spec"]["template"]["metadata"].get("annotations", {}).get("prometheus.io/scrape") == "true"
    }
    assert annotated == {p for p, _ in policy_ports(rule)}
    assert {
        c for c in SERVICES if deployment_for(c)["spec"]["template"]["metadata"].get("annotations")
    } == SERVICES


def test_network_policies_let_the_services_reach_kafka_postgres_and_redis() -> None:
    policies = {p["metadata"]["name"]: p for p in k8s_objects("NetworkPolicy")}
    platform = {"app.kubernetes.io/name": "esports-live"}
    kafka = policies["platform-to-kafka"]["spec"]
    (rule,) = kafka["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": platform}}]
    assert policy_ports(rule) == {(9093, "TCP")}
    assert configmap()["ESPORTS_KAFKA__BOOTSTRAP_SERVERS"].endswith(":9093")
    egress = policies["platform-egress"]["spec"]
    assert egress["policyTypes"] == ["Egress"]
    restricted = {c for c in SERVICES if selects(egress["podSelector"], pod_labels(deployment_for(c)))}
    assert restricted == SERVICES, "every Deployment's egress is limited (ingest pulls feeds anywhere)"
    allowed = {(port, proto) for rule in egress["egress"] for port, proto in policy_ports(rule)}
    data = configmap()
    for host, port in (
        ("ESPORTS_POSTGRES__HOST", "ESPORTS_POSTGRES__PORT"),
        ("ESPORTS_REDIS__HOST", "ESPORTS_REDIS__PORT"),
    ):
        namespace = data[host].split(".")[1]  # <service>.<namespace>.svc.cluster.local
        rules = [
            r for r in egress["egress"]
            if {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}} in r["to"]
        ]  # fmt: skip
        assert len(rules) == 1 and policy_ports(rules[0]) == {(int(data[port]), "TCP")}, host
    assert {(9093, "TCP"), (53, "UDP"), (53, "TCP")} <= allowed
    for policy in policies.values():
        for rule in policy["spec"].get("ingress", []):
            for named, _ in policy_ports(rule):
                assert isinstance(named, int) or any(
                    named in {p["name"] for c in pod_spec(w)["containers"] for p in c["ports"]}
                    for w in k8s_objects("Deployment") + k8s_objects("StatefulSet")
                    if selects(policy["spec"]["podSelector"], pod_labels(w))
                ), f"{policy['metadata']['name']}: port {named} names no container port"


# --- docker-compose.yml -------------------------------------------------------------------------


def test_compose_validates_against_the_compose_spec() -> None:
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(vendor.joinpath("compose-spec.json").read_text())
    validator_cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    validator_cls.check_schema(schema)
    errors = sorted(validator_cls(schema).iter_errors(compose()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_compose_services_are_healthchecked_or_one_shot() -> None:
    services = compose()["services"]
    waited_to_complete = {
        dep
        for s in services.values()
        for dep, cond in (s.get("depends_on") or {}).items()
        if cond["condition"] == "service_completed_successfully"
    }
    for name, service in services.items():
        one_shot = service.get("restart") == "no" and name in waited_to_complete
        assert one_shot or "test" in service.get("healthcheck", {}), f"{name}: no healthcheck"
        assert not (one_shot and "healthcheck" in service), f"{name}: a one-shot needs no healthcheck"
        for dep, cond in (service.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy: no check"


def test_compose_topics_runs_after_kafka_is_healthy() -> None:
    topics = compose()["services"]["topics"]
    assert topics["command"] == ["topics", "create"]
    assert topics["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    assert compose()["services"]["kafka"]["image"].startswith("apache/kafka:4.1.")


COMPOSE_HEALTH_PORT_SETTING = HEALTH_PORT_SETTING | {"ingest": "ESPORTS_INGEST__CDN_PORT"}


def test_compose_commands_exist_and_health_ports_match_the_settings() -> None:
    services = compose_esports_services()
    assert {s["command"][0] for s in services.values()} == SERVICES | STATEFUL_SERVICES | {"topics"}
    for name, service in services.items():
        parse_cli(service["command"])
        command = service["command"][0]
        if command in COMPOSE_HEALTH_PORT_SETTING:
            port = service["environment"][COMPOSE_HEALTH_PORT_SETTING[command]]
            health = " ".join(service["healthcheck"]["test"])
            assert f"127.0.0.1:{port}/health" in health, f"{name}: healthcheck is not on port {port}"


def test_compose_ingest_is_the_ingest_target_with_rtmp_and_hls_published() -> None:
    services = compose()["services"]
    ingest = services["ingest"]
    assert ingest["build"] == {"context": ".", "target": "ingest"}
    assert ingest["image"].split(":")[0] == INGEST_IMAGE
    env = ingest["environment"]
    assert env["ESPORTS_INGEST__HOST"] == "0.0.0.0"
    published = {p.split("/")[0].rsplit(":", 1)[-1]: p for p in ingest["ports"]}
    assert set(published) == {
        env["ESPORTS_INGEST__RTMP_PORT"],
        env["ESPORTS_INGEST__SRT_PORT"],
        env["ESPORTS_INGEST__CDN_PORT"],
        env["ESPORTS_INGEST__WHIP_PORT"],
        env["ESPORTS_INGEST__WHIP_UDP_PORTS"],
    }
    assert published[env["ESPORTS_INGEST__SRT_PORT"]].endswith("/udp")
    # WHIP's media: the range on the same ports of the host (what the answer offers is the container's
    # port, at ESPORTS_INGEST__WHIP_PUBLIC_IP).
    whip_range = env["ESPORTS_INGEST__WHIP_UDP_PORTS"]
    assert published[whip_range] == f"{whip_range}:{whip_range}/udp"
    whip = env["ESPORTS_INGEST__WHIP_PORT"]
    assert published[whip] == f"{whip}:{whip}"
    assert re.fullmatch(
        r"\$\{ESPORTS_INGEST__WHIP_PUBLIC_IP:-[0-9a-f.:]+\}", env["ESPORTS_INGEST__WHIP_PUBLIC_IP"]
    ), "the machine's address, from .env; what publishers on this machine reach by default"
    assert "network_mode" not in ingest, "the services' names (api, kafka) resolve on the compose network"
    assert env["ESPORTS_INGEST__HLS_DIR"] in {v.split(":")[1] for v in ingest["volumes"]}
    assert (
        env["ESPORTS_INGEST__API_URL"] == f"http://api:{services['api']['environment']['ESPORTS_API__PORT']}"
    )
    assert ingest["depends_on"]["api"] == {"condition": "service_healthy"}, "the publish hook asks the API"
    # What browsers are told agrees with what is published.
    assert env["ESPORTS_INGEST__PUBLIC_HLS_URL"].endswith(f":{env['ESPORTS_INGEST__CDN_PORT']}/hls}}")
    for name, service in services.items():
        if service.get("image", "").split(":")[0] == IMAGE:
            assert "build" not in service or service["build"] == ".", f"{name}: the default target"


def test_compose_edges_are_the_ones_the_pages_list() -> None:
    edges = {n: s for n, s in compose_esports_services().items() if s["command"] == ["edge"]}
    assert len(edges) >= 2, "two nodes, as `make up`: a client of a restarting node moves to the other"
    urls = json.loads(compose()["services"]["api"]["environment"]["ESPORTS_WEB__EDGE_URLS"])
    ports = sorted(s["environment"]["ESPORTS_EDGE__PORT"] for s in edges.values())
    assert sorted(re.sub(r".*:(\d+)/?$", r"\1", u) for u in urls) == ports
    for name, edge in edges.items():
        port = edge["environment"]["ESPORTS_EDGE__PORT"]
        assert edge["environment"]["ESPORTS_EDGE__HOST"] == "0.0.0.0", name
        assert f"{port}:{port}" in edge["ports"], name


def test_compose_secrets_are_required_variables_never_literals() -> None:
    required = re.compile(r"^\$\{(ESPORTS_[A-Z0-9_]+):\?[^}]+\}$")
    seen = set()
    for name, service in compose()["services"].items():
        for var, value in (service.get("environment") or {}).items():
            if is_secret(var):
                match = required.match(str(value))
                assert match, f"{name}: {var} must be ${{ESPORTS_...:?message}}, not a literal"
                seen.add(match.group(1))
    assert seen <= secret_settings()
    assert {"ESPORTS_AUTH__JWT_SECRET", "ESPORTS_AUTH__INTERNAL_TOKEN", "ESPORTS_POSTGRES__PASSWORD"} <= seen


# --- WHIP and Low-Latency HLS -------------------------------------------------------------------


def test_k8s_whip_media_ports_reach_the_pod_port_for_port_at_the_public_address() -> None:
    """aioice offers the port its socket is bound to: the LoadBalancer must keep it (a 1:1 NAT), and
    the address offered is the LoadBalancer's, which the pod cannot know by itself."""
    (ingest,) = k8s_objects("StatefulSet")
    public = [s for s in k8s_objects("Service") if s["spec"].get("type") == "LoadBalancer"]
    (service,) = [s for s in public if selects({"matchLabels": s["spec"]["selector"]}, pod_labels(ingest))]
    udp = {p["port"]: p["targetPort"] for p in service["spec"]["ports"] if p.get("protocol") == "UDP"}
    srt = int(configmap()["ESPORTS_INGEST__SRT_PORT"])
    assert {p: t for p, t in udp.items() if p != srt} == {p: p for p in whip_udp_ports(configmap())}
    assert service["spec"]["externalTrafficPolicy"] == "Local", "publishers' own addresses reach the node"
    settings = ingest_settings(configmap())
    assert settings.whip_public_ip, "set to the LoadBalancer's external IP: pod addresses are unreachable"
    assert settings.whip_port == next(p["port"] for p in service["spec"]["ports"] if p["name"] == "whip")


def test_no_pod_takes_the_host_network_or_host_ports() -> None:
    """The namespace enforces the "restricted" Pod Security Standard, which refuses both: WHIP's media
    goes through the LoadBalancer instead."""
    labels = one("Namespace", "esports")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    for obj in k8s_objects("Deployment") + k8s_objects("StatefulSet") + k8s_objects("Job"):
        spec = pod_spec(obj)
        assert not spec.get("hostNetwork") and not spec.get("hostPID"), obj["metadata"]["name"]
        for container in spec["containers"]:
            assert all("hostPort" not in p for p in container.get("ports", [])), obj["metadata"]["name"]


def deploy_ingest_envs() -> dict[str, dict[str, Any]]:
    return {
        "configmap.yaml": configmap(),
        "docker-compose.yml": compose()["services"]["ingest"]["environment"],
    }


@pytest.mark.parametrize("where", sorted(deploy_ingest_envs()))
def test_the_ingest_settings_are_valid_with_low_latency_off_and_on(where: str) -> None:
    env = deploy_ingest_envs()[where]
    assert "ESPORTS_INGEST__LOW_LATENCY" in env, f"{where}: where a user turns Low-Latency HLS off"
    assert ingest_settings(env).low_latency is True, f"{where}: on unless the user turns it off"
    assert ingest_settings(env, low_latency="false").low_latency is False
    on = ingest_settings(env)  # part_s divides segment_s
    # The LL origin is on the pod's (container's) loopback: no port of it leaves the node.
    assert on.ll_origin_port not in {on.rtmp_port, on.srt_port, on.origin_port, on.cdn_port, on.whip_port}
    assert str(on.ll_origin_port) not in json.dumps(env)
    assert ingest_settings(env).whip_udp_ports and ingest_settings(env).whip_public_ip, where


def test_the_cache_tier_keys_ll_playlists_by_their_query_and_outwaits_blocking_reloads(
    tmp_path: Path,
) -> None:
    """The cluster's cache tier is the node's own (the cdn nginx, Service esports-hls): with the
    ConfigMap's values and LL-HLS on, a playlist's cache key holds _HLS_msn/_HLS_part/_HLS_skip and the
    tier waits longer than the LL origin holds a blocking reload (3 target durations). The CDN in
    front is the user's: the README asks it for the same, at least as long."""
    ingest = ingest_settings(configmap(), low_latency="true")
    cdn = nginx.cdn(Settings(ingest=ingest))
    conf = tmp_path / "cdn.conf"
    nginx.render(cdn.template, conf, cdn.values(), low_latency=True)
    (location,) = re.findall(r"location ~ \^/hls/\.\+\\\.m3u8\$ \{(.*?)\}", conf.read_text(), re.S)
    assert "proxy_cache_key $uri$is_args$args;" in location
    hold_s = int(cdn.values()["LL_HOLD_S"])
    assert hold_s >= 3 * ingest.segment_s
    timeouts = re.findall(r"proxy_(?:read|cache_lock)_timeout (\d+)s;", location)
    assert timeouts and all(int(t) >= hold_s for t in timeouts)
    readme = (K8S / "README.md").read_text()
    (asked,) = re.findall(r"origin read timeout of at least (\d+) s", readme)
    assert int(asked) >= hold_s, "the README asks the CDN to wait less than the origin may hold a reload"
    for name in ("_HLS_msn", "_HLS_part", "_HLS_skip"):
        assert name in readme, f"the README tells the CDN to keep {name} in the cache key"


# --- both ---------------------------------------------------------------------------------------


def deploy_files() -> list[Path]:
    return [COMPOSE, DOCKERFILE, *sorted(K8S.iterdir())]


@pytest.mark.parametrize("path", deploy_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_esports_variable_is_a_setting(path: Path) -> None:
    unknown = set(ESPORTS_NAME.findall(path.read_text())) - setting_names()
    assert not unknown, f"not fields of infra.settings.Settings: {sorted(unknown)}"


# --- Dockerfile ---------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def dockerfile_stages() -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """Stage name -> (base: an image with ARGs resolved, or an earlier stage's name; its instructions)."""
    instructions = dockerfile_instructions()
    args = dict(a.split("=", 1) for op, a in instructions if op == "ARG" and "=" in a)
    stages: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    current: list[tuple[str, str]] = []
    for op, argument in instructions:
        if op == "FROM":
            words = argument.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], words[0])
            assert len(words) == 3 and words[1].upper() == "AS", f"name every stage: FROM {argument}"
            current = []
            stages[words[2]] = (base, current)
        elif stages:
            current.append((op, argument))
    return stages


def target_instructions(
    stages: dict[str, tuple[str, list[tuple[str, str]]]], name: str
) -> list[tuple[str, str]]:
    """A target's instructions, its parent stages' first (what the image it builds carries)."""
    base, own = stages[name]
    return (target_instructions(stages, base) if base in stages else []) + own


def apt_installed(run: str) -> set[str]:
    """The packages of an `apt-get install` command line."""
    words = run.split("apt-get install", 1)[1].split("&&")[0].split()
    return {w for w in words if not w.startswith("-")}


def test_dockerfile_is_multi_stage_non_root_without_dev_deps() -> None:
    stages = dockerfile_stages()
    names = list(stages)
    assert len(stages) >= 2
    assert names[-1] == "app", "the default target (the last stage) is the image without FFmpeg or nginx"
    for name, (base, _) in stages.items():
        if base in stages:
            continue
        if name == "web-assets":  # Node, only to fetch hls.js; nothing of it but node_modules is copied
            assert base.startswith("node:") and "-slim" in base, base
        else:
            assert base.startswith("python:3.11-slim"), f"{name}: {base}"
    copies_from = [
        a for _, (_, own) in stages.items() for op, a in own if op == "COPY" and "--from=web-assets" in a
    ]
    assert copies_from == ["--from=web-assets /web/node_modules web/node_modules"]
    build = stages["build"][1]
    copies = [a for op, a in build if op == "COPY" and "--from" not in a]
    assert copies[0].startswith("pyproject.toml"), "copy pyproject.toml first: the dependency layer caches"
    assert not any("[dev]" in a for _, (_, own) in stages.items() for _, a in own)
    for target in ("app", "ingest"):
        final = target_instructions(stages, target)
        users = [a for op, a in final if op == "USER"]
        assert users and users[-1].split(":")[0] not in {"0", "root"}, f"{target}: runs as root"
        assert ("ENTRYPOINT", '["esports"]') in final, target
        assert ("COPY", "--from=build /opt/venv /opt/venv") in final, target


def test_ffmpeg_and_nginx_rtmp_are_in_the_ingest_target_only() -> None:
    stages = dockerfile_stages()
    installed = {
        name: set().union(
            *(
                apt_installed(a)
                for op, a in target_instructions(stages, name)
                if op == "RUN" and "apt-get install" in a
            )
        )
        for name in stages
        if name != "web-assets"
    }
    assert installed["app"] == set(), "no build tools, FFmpeg or nginx in the default image"
    assert installed["ingest"] == INGEST_PACKAGES, "runtime packages only: no compiler in the ingest image"
    runs = [a for op, a in stages["ingest"][1] if op == "RUN" and "apt-get install" in a]
    assert all("--no-install-recommends" in a and "rm -rf /var/lib/apt/lists" in a for a in runs)
    # The module where IngestSettings.rtmp_module looks, the HLS folder where the node writes.
    ingest = dict(target_instructions(stages, "ingest"))
    assert str(Settings().ingest.rtmp_module) in " ".join(a for op, a in stages["ingest"][1] if op == "RUN")
    env = " ".join(a for op, a in target_instructions(stages, "ingest") if op == "ENV")
    assert "ESPORTS_INGEST__HOST=0.0.0.0" in env and "ESPORTS_INGEST__HLS_DIR=/var/lib/esports/hls" in env
    assert ingest["CMD"] == '["ingest"]'
    assert set(stages["ingest"][0:1]) == {"runtime"} and stages["app"][0] == "runtime"


def test_the_image_gets_hls_js_from_the_lock_file() -> None:
    (_, web) = dockerfile_stages()["web-assets"]
    runs = " ".join(a for op, a in web if op == "RUN")
    assert "npm ci" in runs and "--omit=dev" in runs and "--ignore-scripts" in runs
    assert ("COPY", "web/package.json web/package-lock.json ./") in web


def test_dockerignore_keeps_local_state_and_secrets_out() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".run", ".env", "tests"} <= ignored
    # A bare `node_modules` matches only the context's root: web/node_modules (a developer's `npm ci`)
    # must not reach the image, which takes hls.js from the lock file (the web-assets stage).
    assert "**/node_modules" in ignored


# --- pyproject.toml: what a non-editable install (the image) ships ---------------------------------

# Files the services read at run time, besides Python modules.
RUNTIME_DATA_SUFFIXES = {".sql", ".avsc", ".json", ".html", ".jinja", ".j2", ".css", ".js", ".tmpl"}


def installed_packages(setuptools: dict[str, Any]) -> set[str]:
    """The packages `pip install .` puts in the image: an explicit list, or what packages.find finds."""
    declared = setuptools["packages"]
    if isinstance(declared, list):
        return set(declared)
    find = declared["find"]
    include, exclude = find.get("include", ["*"]), find.get("exclude", [])
    namespaces = find.get("namespaces", True)  # the pyproject.toml default
    found = set()
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [d for d in subfolders if d.isidentifier()]  # also skips .venv, .git, .run
        dotted = ".".join(Path(folder).relative_to(ROOT).parts)
        if not dotted or not (namespaces or "__init__.py" in files):
            continue
        if any(fnmatch(dotted, p) for p in include) and not any(fnmatch(dotted, p) for p in exclude):
            found.add(dotted)
    return found


def test_the_image_install_ships_every_subpackage_and_data_file() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = installed_packages(setuptools)
    package_data: dict[str, list[str]] = setuptools.get("package-data", {})
    tops = sorted(p for p in packages if "." not in p)
    assert {"events", "schemas", "infra", "producers", "stream_processors", "projections"} <= set(tops)
    missing_packages, missing_data = [], []
    for top in tops:
        for init in sorted((ROOT / top).rglob("__init__.py")):
            dotted = ".".join(init.parent.relative_to(ROOT).parts)
            if dotted not in packages:
                missing_packages.append(dotted)
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix not in RUNTIME_DATA_SUFFIXES or "__pycache__" in path.parts or K8S in path.parents:
                continue
            # Patterns are relative to their package's folder; "*" applies to every package.
            owners = [
                (ROOT.joinpath(*pkg.split(".")), patterns)
                for key, patterns in package_data.items()
                for pkg in (packages if key == "*" else [key])
                if pkg in packages
            ]
            if not any(
                path.is_relative_to(folder) and path in set(folder.glob(pattern))
                for folder, patterns in owners
                for pattern in patterns
            ):
                missing_data.append(str(path.relative_to(ROOT)))
    assert not missing_packages, f"not installed by pyproject.toml: {missing_packages}"
    assert not missing_data, f"add to [tool.setuptools.package-data]: {missing_data}"


# --- .github/workflows/ci.yml --------------------------------------------------------------------


@cache
def workflow() -> dict[Any, Any]:
    return dict(yaml.safe_load(WORKFLOW.read_text()))


def test_workflow_validates_against_the_vendored_github_workflow_schema() -> None:
    """check-jsonschema's builtin schema is a file of the package: no network (CI may have none)."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            str(WORKFLOW),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflow_runs_make_test_on_debian_12_on_push_and_pull_request() -> None:
    # PyYAML reads the key `on` as the boolean True (YAML 1.1).
    triggers: dict[str, Any] = workflow().get("on") or workflow()[True]
    assert set(triggers) == {"push", "pull_request"}
    (job,) = workflow()["jobs"].values()
    assert job["timeout-minutes"] == 40
    assert job["env"]["CI"] == "true"
    steps = job["steps"]
    assert [s["run"].strip() for s in steps if "run" in s][-1] == "make test"
    # install-system.sh installs Debian 12's packages by name, and says so.
    assert "(Debian 12)" in (ROOT / "infra" / "local" / "install-system.sh").read_text()
    assert job["container"]["image"] == "debian:12"
    # What the Makefile runs before install-system.sh: $(PYTHON) with its venv module, make itself.
    python = re.search(r"^PYTHON \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert python
    first = steps[0]["run"]
    assert {python.group(1), f"{python.group(1)}-venv", "make", "git"} <= set(first.split())
    assert steps.index(next(s for s in steps if s.get("uses", "").startswith("actions/checkout@"))) == 1


def test_workflow_caches_maven_and_pip_where_they_write() -> None:
    (job,) = workflow()["jobs"].values()
    caches = {
        s["with"]["path"]: s["with"] for s in job["steps"] if s.get("uses", "").startswith("actions/cache@")
    }
    assert set(caches) == {"~/.m2/repository", "~/.cache/pip"}
    assert "infra/local/kafka/pom.xml" in caches["~/.m2/repository"]["key"]
    assert "pyproject.toml" in caches["~/.cache/pip"]["key"]
    # In a container job $HOME is /github/home, but Java takes user.home from /etc/passwd: Maven must be
    # told where ~/.m2 is, or the cache would hold nothing.
    assert job["env"]["MAVEN_OPTS"] == "-Dmaven.repo.local=/github/home/.m2/repository"
