"""The pure parts of dashboards and alerts: PromQL names, the dashboard's layout, the rules' labels,
and the local Prometheus's generated config (no process started; promtool runs in the integration tests)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra import stack
from infra.observability import ALERT_RULES, DASHBOARD, dashboard_exprs, metric_names, rule_exprs
from infra.settings import Settings
from infra.stack import apps, prometheus

RULES: dict[str, Any] = yaml.safe_load(ALERT_RULES.read_text())
BOARD: dict[str, Any] = json.loads(DASHBOARD.read_text())


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up == 0", {"up"}),
        ('up{job="api", instance=~"127.*"} == bool 0', {"up"}),
        ("sum by (le) (rate(a_bucket[5m]))", {"a_bucket"}),
        (
            "histogram_quantile(0.99, sum(rate(a_bucket{x='y'}[$__rate_interval])) by (le, node))",
            {"a_bucket"},
        ),
        ("sum(rate(a_total[5m])) / ignoring(status) group_left(route) b_total > 1e3", {"a_total", "b_total"}),
        ("a and on(job) b or c unless d offset 1h", {"a", "b", "c", "d"}),
        ("max_over_time(edge2_x[10m:1m]) < 0.5 * rule:recorded", {"edge2_x", "rule:recorded"}),
        ('topk(8, label_replace(c, "dst", "$1", "src", "(.*)"))', {"c"}),
        ('sum without (partition) (kafka_consumer_lag{group!=""}) > Inf', {"kafka_consumer_lag"}),
        ("vector(1) + scalar(time())", set()),
    ],
)
def test_metric_names_of_an_expression(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_exprs_of_a_rule_file_and_of_nested_dashboard_rows() -> None:
    rules = {"groups": [{"rules": [{"alert": "A", "expr": "x > 1"}, {"record": "r:y", "expr": "y"}]}]}
    board = {
        "panels": [
            {"type": "row", "collapsed": True, "panels": [{"title": "in", "targets": [{"expr": "z"}]}]},
            {"title": "text", "type": "text"},
            {"title": "out", "targets": [{"expr": "w"}, {"refId": "B"}]},
        ]
    }

    assert list(rule_exprs(rules)) == [("A", "x > 1"), ("r:y", "y")]
    assert list(dashboard_exprs(board)) == [("in", "z"), ("out", "w")]


# ----------------------------------------------------------------------------- the alert rules


def _alerts() -> list[dict[str, Any]]:
    return [rule for group in RULES["groups"] for rule in group["rules"]]


def test_every_alert_has_a_severity_and_a_summary() -> None:
    names = [rule["alert"] for rule in _alerts()]

    assert len(names) == len(set(names))
    for rule in _alerts():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_the_alerts_cover_what_on_call_needs() -> None:
    read = {rule["alert"]: metric_names(rule["expr"]) for rule in _alerts()}

    def alerting_on(metric: str) -> set[str]:
        return {alert for alert, names in read.items() if metric in names}

    assert alerting_on("up") == {"ScrapeTargetDown"}
    assert alerting_on("ingest_transcoder_restarts_total")
    assert alerting_on("esports_edge_connections") and alerting_on(
        "esports_edge_delivery_latency_seconds_bucket"
    )
    assert {"ConsumerLagGrowing", "ConsumerLagHigh"} <= alerting_on("kafka_consumer_lag")
    assert alerting_on("api_requests_total") and alerting_on("api_request_duration_seconds_bucket")
    assert alerting_on("esports_processor_dead_letters_total")
    assert alerting_on("esports_projection_dead_letters_total")


def test_lag_alerts_are_per_consumer_group() -> None:
    for rule in _alerts():
        if rule["alert"].startswith("ConsumerLag"):
            assert "sum by (group)" in rule["expr"], rule["alert"]


# ----------------------------------------------------------------------------- the dashboard


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def test_the_dashboard_has_the_rows_on_call_looks_at() -> None:
    rows = [p["title"] for p in BOARD["panels"] if p["type"] == "row"]

    assert rows == [
        "Platform",
        "Ingest health",
        "Edge connections and deliveries",
        "Agent throughput and lag",
        "API latency and errors",
    ]


def test_the_dashboard_is_importable_as_it_is() -> None:
    """A current Grafana's JSON model: unique ids, a uid, the Prometheus data source as a variable."""
    panels = list(_panels(BOARD["panels"]))

    assert BOARD["uid"] == "esports-platform" and BOARD["id"] is None and BOARD["schemaVersion"] >= 36
    assert len({p["id"] for p in panels}) == len(panels)
    (variable,) = BOARD["templating"]["list"]
    assert (variable["type"], variable["query"]) == ("datasource", "prometheus")
    for panel in panels:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            refs = [t["refId"] for t in panel["targets"]]
            assert refs and len(refs) == len(set(refs)) and all(t["expr"] for t in panel["targets"])


def test_the_dashboard_panels_tile_the_grid_without_overlapping() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in _panels(BOARD["panels"]):
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


# ----------------------------------------------------------------------------- the local Prometheus


def _settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> Settings:
    monkeypatch.setenv("ESPORTS_STACK__RUN_DIR", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_the_config_scrapes_every_app_with_metrics_and_itself(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = _settings(
        monkeypatch,
        tmp_path,
        ESPORTS_PROCESSORS__WEB_HOST="0.0.0.0",
        ESPORTS_PROCESSORS__WEB_PORT="7066",
        ESPORTS_EDGE__SECOND_PORT="9766",
        ESPORTS_PROMETHEUS__PORT="9191",
        ESPORTS_PROMETHEUS__SCRAPE_INTERVAL_S="3",
    )

    config = prometheus.config(settings)

    jobs = {c["job_name"]: c["static_configs"][0]["targets"] for c in config["scrape_configs"]}
    assert jobs == {
        "api": ["127.0.0.1:8000"],
        "processors": ["127.0.0.1:7066"],  # bound to every address, scraped on loopback
        "projector": ["127.0.0.1:6067"],
        "edge": ["127.0.0.1:8765"],
        "edge2": ["127.0.0.1:9766"],
        "ingest": ["127.0.0.1:8090"],
        "prometheus": ["127.0.0.1:9191"],
    }
    assert "demo" not in jobs and apps.APP_TABLE["demo"].metrics_path is None
    assert {c["metrics_path"] for c in config["scrape_configs"]} == {"/metrics"}
    assert config["global"] == {"scrape_interval": "3s", "evaluation_interval": "3s"}
    assert config["rule_files"] == [str(ALERT_RULES)]


def test_the_config_file_is_yaml_of_the_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = _settings(monkeypatch, tmp_path)

    assert yaml.safe_load(prometheus.config_text(settings)) == prometheus.config(settings)


def test_prometheus_is_in_the_default_commands_only_when_enabled(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without the setting `status` (and `up`, `down`) are what they were; with it Prometheus is listed."""
    assert "prometheus" not in stack.ALL and "prometheus" in stack.OBSERVERS

    def listed(settings: Settings) -> list[str]:
        stack.main(["status"], settings=settings)
        return [line.split()[0] for line in capsys.readouterr().out.splitlines() if not line[0].isspace()]

    assert listed(_settings(monkeypatch, tmp_path)) == ["kafka", "postgres", "redis"]
    with socket.socket() as probe:  # a port nothing holds (a `make up OBSERVE=1` may hold 9090)
        probe.bind(("127.0.0.1", 0))
        free = str(probe.getsockname()[1])
    enabled = _settings(monkeypatch, tmp_path, ESPORTS_PROMETHEUS__ENABLED="1", ESPORTS_PROMETHEUS__PORT=free)
    assert listed(enabled) == ["kafka", "postgres", "redis", "prometheus"]
    (status,) = stack.status(enabled, ["prometheus"])
    assert not status.running and status.detail.startswith("not started")


def test_a_taken_prometheus_port_names_its_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        settings = _settings(monkeypatch, tmp_path, ESPORTS_PROMETHEUS__PORT=str(port))

        (conflict,) = stack.port_conflicts(settings, ["prometheus"])

    assert f"port {port} (Prometheus) on 127.0.0.1 is already in use" in conflict
    assert "ESPORTS_PROMETHEUS__PORT=<free port>" in conflict
