"""The metric names a PromQL expression reads, and the expressions of rule files and dashboards.

Not a PromQL parser: enough of its lexical rules to tell a metric name from a function, a keyword,
a label, a duration or a Grafana variable, for the expressions this repository writes. Strings, label
matchers, ranges and grouping clauses are removed first; what remains is a name unless a ``(``
follows it (a function or an aggregation) or it is a keyword.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["dashboard_exprs", "metric_names", "rule_exprs"]

KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "by", "without", "on", "ignoring", "group_left", "group_right"}
    | {"offset", "inf", "nan", "start", "end"}
)
_REMOVED = (
    re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`'),  # string literals
    re.compile(r"\{[^}]*\}"),  # label matchers
    re.compile(r"\[[^\]]*\]"),  # ranges and subqueries
    re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"),  # label lists
    re.compile(r"\boffset\s+-?\w+"),  # offset 5m
    re.compile(r"\$\{[^}]*\}|\$\w+"),  # Grafana variables ($__rate_interval, ${node})
    re.compile(r"(?<![\w:])\d+(?:\.\d*)?(?:[eE][+-]?\d+)?[a-z]*"),  # numbers and durations
)
_TOKEN = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*(?=\s*(\(?))")


def metric_names(expr: str) -> set[str]:
    """Every metric name `expr` reads (selectors by ``__name__`` alone are not seen)."""
    text = expr
    for pattern in _REMOVED:
        text = pattern.sub(" ", text)
    return {
        match.group(0)
        for match in _TOKEN.finditer(text)
        if not match.group(1) and match.group(0).lower() not in KEYWORDS
    }


def rule_exprs(rules: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(alert or record name, expr) of a parsed Prometheus rule file."""
    for group in rules.get("groups", []):
        for rule in group.get("rules", []):
            yield str(rule.get("alert") or rule.get("record")), str(rule["expr"])


def dashboard_exprs(dashboard: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, expr) of every query of a parsed Grafana dashboard, rows' nested panels too."""
    for panel in _panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            if target.get("expr"):
                yield str(panel.get("title", "")), str(target["expr"])


def _panels(panels: list[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # a collapsed row keeps its panels inside it
