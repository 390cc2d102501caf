"""Hooks for the whole run: how the tests are shared among pytest-xdist workers, and the attack
suite's figures summed over them.

``make test`` runs pytest in two processes (``-n 2 --dist loadfile``). A module is the unit of work
(its module-wide platform is started once), except where a package shares one platform among its
modules (:data:`SHARED_PLATFORMS`): the package is one unit. The units are handed out longest first
(:data:`SLOW_FIRST`, then the other integration modules, the unit tests last as fillers), so that the
two processes finish together.

The tests of a worker run in that worker's process, so what the attack suite counted
(:data:`tests.security.tally.TALLY`) is handed from each worker to the controller when the worker
finishes, and printed once at the end of the run.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

from tests.security.tally import TALLY

# Commands wait up to 10 s for Kafka's acknowledgement (3 s by default) in every process a test
# starts: the tests judge what is stored, and one local broker serving every test's namespace on a
# loaded 2-core machine was seen answering an edge later than 3 s. The tests of the deadline itself
# (test_api_unavailable, test_edge_paused) set their own.
os.environ.setdefault("ESPORTS_API__PUBLISH_TIMEOUT_S", "10")


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: hand the figures to the controller
        workeroutput["attack_tally"] = TALLY.to_json()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """xdist's controller, as each worker finishes: add its figures."""
    TALLY.add(getattr(node, "workeroutput", {}).get("attack_tally", {}))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TALLY.requests or TALLY.rendered:
        terminalreporter.write_sep("=", "attack suite")
        terminalreporter.write_line(TALLY.summary())


# Packages whose modules share one platform (a session or package fixture): one unit of work each.
SHARED_PLATFORMS = ("tests/chaos/", "tests/e2e/")
# The longest units (about a minute or more each on 2 cores, `--durations=0`), handed out first.
SLOW_FIRST = (
    "tests/chaos/",
    "tests/e2e/",
    "tests/integration/test_platform_restart.py",
    "tests/integration/test_hot_stream.py",
    "tests/integration/test_processor_restarts.py",
    "tests/integration/test_api_fuzz.py",
    "tests/integration/test_ingest.py",
    "tests/integration/test_notifications.py",
    "tests/integration/test_ingest_restart.py",
    "tests/integration/test_api_unavailable.py",
)


def _unit_of_work(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    return next((shared for shared in SHARED_PLATFORMS if path.startswith(shared)), path)


def _rank(unit: str) -> tuple[int, int]:
    if unit in SLOW_FIRST:
        return 0, SLOW_FIRST.index(unit)
    return (2, 0) if unit.startswith("tests/unit/") else (1, 0)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slowest units first, the unit tests last (a stable sort: modules stay whole and in order)."""
    items.sort(key=lambda item: _rank(_unit_of_work(item.nodeid)))


class PlatformScheduling(LoadScopeScheduling):
    """``--dist loadfile`` with the shared platforms as one unit, handed out in collection order."""

    def __init__(self, config: pytest.Config, log: Any = None) -> None:
        super().__init__(config, log)
        config.option.loadscopereorder = False  # keep the order above (not: most tests first)

    def _split_scope(self, nodeid: str) -> str:
        return _unit_of_work(nodeid)


@pytest.hookimpl(optionalhook=True, tryfirst=True)  # before xdist's own (a first-result hook)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getoption("dist") == "loadfile":
        return PlatformScheduling(config, log)
    return None
