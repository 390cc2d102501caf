"""The deployment files are valid and agree with the code: no Docker engine, cluster or network needed.

- infra/k8s/*.yaml: every object validates against the Kubernetes OpenAPI schemas bundled by
  kubernetes-validate, strict (an unknown or misspelt field fails), for the oldest and newest supported
  Kubernetes versions; kustomization.yaml lists every manifest; references (ConfigMap, Secret keys,
  selectors, probe ports, HPA target) point at things that exist.
- docker-compose.yml: validates against the Compose Specification schema vendored by check-jsonschema;
  every service has a healthcheck or is a one-shot the others wait for.
- Both: every `esports` command parses with infra.cli.build_parser(), every ESPORTS_* name is a field of
  infra.settings.Settings, secrets are never literal values.
- Dockerfile/.dockerignore: the structure promised in the Dockerfile (multi-stage, non-root, no dev deps).
- pyproject.toml: the image installs the project non-editable, so every subpackage and every data file
  the services read must be declared there.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import os
import re
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
from infra.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "infra" / "k8s"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
SECRET_TEMPLATE = "secret.template.yaml"
IMAGE = "esports-live"  # the image name the manifests use (kustomize rewrites it to the user's registry)
# Kubernetes versions validated against: the oldest still in common support and the newest bundled.
K8S_VERSIONS = sorted({"1.30", kubernetes_validate.latest_version().rsplit(".", 1)[0]})
# The port each service's /health is served on, by command.
HEALTH_PORT_SETTING = {
    "api": "ESPORTS_API__PORT",
    "processors": "ESPORTS_PROCESSORS__WEB_PORT",
    "projector": "ESPORTS_PROJECTIONS__WEB_PORT",
}
SERVICES = set(HEALTH_PORT_SETTING)
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
    """The same rule `esports config` masks by."""
    return any(word in name.lower() for word in ("password", "secret", "token"))


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


def esports_containers() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, container) for every container running the platform's image."""
    return [
        (obj, c)
        for obj in k8s_objects("Deployment") + k8s_objects("Job")
        for c in pod_spec(obj)["containers"]
        if c["image"].split(":")[0] == IMAGE
    ]


def configmap() -> dict[str, str]:
    return one("ConfigMap", "esports-config")["data"]


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def compose_esports_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose()["services"].items() if s.get("image", "").startswith(IMAGE)}


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
    for obj in objects:
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
    assert [i["name"] for i in kustomization["images"]] == [IMAGE]


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
    for _obj, container in esports_containers():
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


def test_compose_commands_exist_and_health_ports_match_the_settings() -> None:
    services = compose_esports_services()
    assert {s["command"][0] for s in services.values()} == SERVICES | {"topics"}
    for name, service in services.items():
        parse_cli(service["command"])
        command = service["command"][0]
        if command in HEALTH_PORT_SETTING:
            port = service["environment"][HEALTH_PORT_SETTING[command]]
            health = " ".join(service["healthcheck"]["test"])
            assert f"127.0.0.1:{port}/health" in health, f"{name}: healthcheck is not on port {port}"


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


def test_dockerfile_is_multi_stage_non_root_without_dev_deps() -> None:
    instructions = dockerfile_instructions()
    args = dict(a.split("=", 1) for i, a in instructions if i == "ARG" and "=" in a)
    stages = [i for i, (op, _) in enumerate(instructions) if op == "FROM"]
    assert len(stages) >= 2
    for index in stages:
        image = instructions[index][1].split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        assert image.startswith("python:3.11-slim"), image
    final = instructions[stages[-1] :]
    users = [a for op, a in final if op == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    assert ("ENTRYPOINT", '["esports"]') in final
    assert not any(op == "RUN" and "apt-get install" in a for op, a in final), "no build tools at run time"
    assert not any("[dev]" in a for _, a in instructions)
    copies = [a for op, a in instructions if op == "COPY" and "--from" not in a]
    assert copies[0].startswith("pyproject.toml"), "copy pyproject.toml first: the dependency layer caches"


def test_dockerignore_keeps_local_state_and_secrets_out() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".run", ".env", "tests"} <= ignored


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
