"""Hooks for the whole run: the attack suite's figures, summed over pytest-xdist workers.

``make test`` runs pytest with ``-n 2`` (pytest-xdist): the tests of a worker run in that worker's
process, so what the attack suite counted (:data:`tests.security.tally.TALLY`) is handed from each
worker to the controller when the worker finishes, and printed once at the end of the run.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.security.tally import TALLY


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
