"""Dashboards and alerts of the platform, as files a Prometheus and a Grafana load as they are.

    alerts.yml                    Prometheus alert rules (the local Prometheus of `make up OBSERVE=1`
                                  loads them; `promtool check rules` in the tests)
    alerts.test.yml               `promtool test rules` cases: each alert fires on the series it is for
    grafana/esports-platform.json the Grafana dashboard (Dashboards → New → Import)

Every query names only metrics the services expose; :func:`metric_names` finds the names a PromQL
expression uses, so a test can compare them with what the running services' ``/metrics`` show.
"""

from __future__ import annotations

from infra.observability.promql import dashboard_exprs, metric_names, rule_exprs
from infra.settings import REPO_ROOT

__all__ = ["ALERT_RULES", "ALERT_TESTS", "DASHBOARD", "dashboard_exprs", "metric_names", "rule_exprs"]

HERE = REPO_ROOT / "infra" / "observability"
ALERT_RULES = HERE / "alerts.yml"
ALERT_TESTS = HERE / "alerts.test.yml"
DASHBOARD = HERE / "grafana" / "esports-platform.json"
