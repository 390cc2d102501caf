"""Dashboards and alerts against the real tools and services: promtool on the rule file (which it can
refuse), the generated Prometheus config, and a local Prometheus scraping the platform's apps.

The apps (API, processors, projector, both edges, ingest) and Prometheus run under the stack's own
lifecycle (`infra.stack.up`, as `make up OBSERVE=1` starts them) from a run folder of their own, on free
ports and a topic prefix of their own, against the shared Kafka, PostgreSQL and Redis. Prometheus must
see `up == 1` for every target; every metric the rules and the dashboard read must be one the
running services expose on /metrics. Missing Prometheus: skipped on a workstation, a failure in CI.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from events.topics import CATALOGUE
from infra import stack
from infra.kafka import TopicAdmin, TopicNames
from infra.observability import ALERT_RULES, ALERT_TESTS, DASHBOARD, dashboard_exprs, metric_names, rule_exprs
from infra.settings import Settings
from infra.stack import apps, prometheus
from tests.ports import free_port

pytestmark = pytest.mark.integration

APPS = tuple(name for name, app in apps.APP_TABLE.items() if app.metrics_path)
UP_WITHIN_S = 60.0
# Series Prometheus makes itself for every target and alert, not read from any /metrics.
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "ALERTS", "ALERTS_FOR_STATE"}


def _tool(name: str) -> str:
    """The path of a Prometheus binary: skipped when missing, except in CI where that fails."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found: infra/local/install-system.sh installs Debian's prometheus"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_tool("promtool"), *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


# ----------------------------------------------------------------------------- promtool


def test_promtool_accepts_the_alert_rules() -> None:
    checked = _promtool("check", "rules", ALERT_RULES)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = sum(len(g["rules"]) for g in yaml.safe_load(ALERT_RULES.read_text())["groups"])
    assert f"SUCCESS: {rules} rules found" in checked.stdout


def test_promtool_refuses_a_broken_rule_file(tmp_path: Path) -> None:
    """The check above can fail: an expression that does not parse, and a rule without one."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "groups:\n  - name: broken\n    rules:\n"
        "      - alert: Unbalanced\n        expr: sum(rate(api_requests_total[5m])\n"
        "      - alert: Missing\n        for: 1m\n"
    )

    checked = _promtool("check", "rules", broken)

    assert checked.returncode != 0
    assert "unclosed left parenthesis" in checked.stderr
    assert "field 'expr' must be set in rule" in checked.stderr


def test_every_alert_fires_on_the_series_it_is_written_for() -> None:
    tested = _promtool("test", "rules", ALERT_TESTS)

    assert tested.returncode == 0, tested.stdout + tested.stderr
    cases = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    covered = {case["alertname"] for test in cases for case in test["alert_rule_test"]}
    alerts = {name for name, _ in rule_exprs(yaml.safe_load(ALERT_RULES.read_text()))}
    untested = alerts - covered
    # Thresholds only (their expressions match a tested twin): documented here, not left to chance.
    assert untested <= {
        "IngestKeyCheckUnavailable", "IngestHookSlow", "EdgeSlowConsumersDropped", "EdgeDeliveryLagHigh",
        "EdgeReaderBehind", "ProcessorRecordsSkipped", "ProcessorPublishRetrying", "ApiPublishFailing",
    }  # fmt: skip


def test_promtool_accepts_the_generated_config(tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(prometheus.config_text(Settings()))

    checked = _promtool("check", "config", config)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout and str(ALERT_RULES) in checked.stdout


# ----------------------------------------------------------------------------- the observed platform


def _environment(base: Settings, run_dir: Path) -> dict[str, str]:
    """ESPORTS_* variables moving every app port and folder off the shared stack's (the apps read them)."""
    ports = [
        "API__PORT", "PROCESSORS__WEB_PORT", "PROJECTIONS__WEB_PORT", "EDGE__PORT", "EDGE__SECOND_PORT",
        "INGEST__RTMP_PORT", "INGEST__SRT_PORT", "INGEST__ORIGIN_PORT", "INGEST__CDN_PORT",
        "INGEST__HOOK_PORT", "INGEST__WHIP_PORT", "INGEST__LL_ORIGIN_PORT", "PROMETHEUS__PORT",
    ]  # fmt: skip
    moved: dict[str, object] = {name: free_port() for name in ports}
    api = f"http://127.0.0.1:{moved['API__PORT']}"
    moved |= {
        "STACK__RUN_DIR": run_dir,
        "KAFKA__BOOTSTRAP_SERVERS": base.kafka.bootstrap_servers,
        "KAFKA__TOPIC_PREFIX": f"test-observe-{uuid.uuid4().hex[:10]}.",
        "KAFKA__DEFAULT_PARTITIONS": 2,
        "API__PUBLIC_URL": api,
        "INGEST__API_URL": api,
        "INGEST__HLS_DIR": run_dir / "hls",
        "INGEST__PUBLIC_HLS_URL": f"http://127.0.0.1:{moved['INGEST__CDN_PORT']}/hls",
        "PROCESSORS__DATA_DIR": run_dir / "faust",
        "PROMETHEUS__ENABLED": "true",
        "PROMETHEUS__SCRAPE_INTERVAL_S": 1,
    }
    return {f"ESPORTS_{name}": str(value) for name, value in moved.items()}


async def _create_topics(settings: Settings, *, delete: bool = False) -> None:
    async with TopicAdmin(settings.kafka) as admin:
        if delete:
            names = TopicNames(settings.kafka.topic_prefix)
            await admin.delete([names.physical(t.name) for t in CATALOGUE])
        else:
            await admin.ensure(CATALOGUE)


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The apps and Prometheus running (stopped at the end, whatever happened); their settings."""
    _tool("prometheus")
    run_dir = tmp_path_factory.mktemp("observe")
    with pytest.MonkeyPatch.context() as env:
        for name, value in _environment(Settings(), run_dir).items():
            env.setenv(name, value)  # inherited by every app the stack spawns
        settings = Settings()
        asyncio.run(_create_topics(settings))
        try:
            stack.up(settings, [*APPS, prometheus.NAME])
            yield settings
        finally:
            stack.down(settings, [*APPS, prometheus.NAME])
            asyncio.run(_create_topics(settings, delete=True))


def _api(settings: Settings, path: str, **params: str) -> Any:
    url = f"http://{prometheus.address(settings)}/api/v1/{path}"
    answer = httpx.get(url, params=params, timeout=5, trust_env=False)
    answer.raise_for_status()
    return answer.json()["data"]


def _up_by_job(settings: Settings) -> dict[str, str]:
    return {r["metric"]["job"]: r["value"][1] for r in _api(settings, "query", query="up")["result"]}


def test_prometheus_scrapes_every_service(observed: Settings) -> None:
    expected = {job: "1" for job in prometheus.targets(observed)}
    assert set(expected) == {*APPS, "prometheus"}
    deadline = time.monotonic() + UP_WITHIN_S
    while (up := _up_by_job(observed)) != expected and time.monotonic() < deadline:
        time.sleep(0.5)

    errors = {t["labels"]["job"]: t["lastError"] for t in _api(observed, "targets")["activeTargets"]}
    assert up == expected, f"up by job: {up}; last scrape errors: {errors}"


def test_prometheus_loads_the_alert_rules(observed: Settings) -> None:
    loaded = _api(observed, "rules")["groups"]
    written = yaml.safe_load(ALERT_RULES.read_text())["groups"]

    assert sorted(g["name"] for g in loaded) == sorted(g["name"] for g in written)
    assert sum(len(g["rules"]) for g in loaded) == sum(len(g["rules"]) for g in written)
    assert all(r["health"] in ("ok", "unknown") for g in loaded for r in g["rules"])


def test_status_shows_prometheus(observed: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    # --all: the shared Kafka, PostgreSQL and Redis show as "not ours" here (their pid files are elsewhere)
    stack.main(["status", "--all"], settings=observed)

    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("prometheus "))
    assert " running " in line and f"127.0.0.1:{observed.prometheus.port}" in line
    assert "Prometheus 2." in line


def test_prometheus_evaluates_every_dashboard_query(observed: Settings) -> None:
    """Each query parses and runs (Grafana's $__rate_interval as the 1m it would be)."""
    for title, expr in dashboard_exprs(json.loads(DASHBOARD.read_text())):
        query = expr.replace("$__rate_interval", "1m")
        answer = httpx.get(
            f"http://{prometheus.address(observed)}/api/v1/query",
            params={"query": query},
            timeout=5,
            trust_env=False,
        )
        assert answer.status_code == 200, f"{title}: {query}: {answer.text}"


def _exposed(text: str) -> set[str]:
    """Every series name a /metrics text can produce (a labelled family without children still counts)."""
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "summary": ("_sum", "_count"),
    }
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {sample.name for sample in family.samples} | {family.name}
        names |= {family.name + suffix for suffix in suffixes.get(family.type, ())}
    return names


def test_rules_and_dashboard_read_only_metrics_the_services_expose(observed: Settings) -> None:
    exposed = set(SYNTHETIC)
    for job, address in prometheus.targets(observed).items():
        if job != prometheus.NAME:
            exposed |= _exposed(httpx.get(f"http://{address}/metrics", timeout=5, trust_env=False).text)
    used = [
        *rule_exprs(yaml.safe_load(ALERT_RULES.read_text())),
        *dashboard_exprs(json.loads(DASHBOARD.read_text())),
    ]

    unknown = {f"{where}: {name}" for where, expr in used for name in metric_names(expr) - exposed}
    assert not unknown, f"not on any service's /metrics: {sorted(unknown)}"
    assert len(used) > 60 and {name for _, expr in used for name in metric_names(expr)} > {"up"}
