"""The browser modules' own logic, run by Node's test runner: the edge client (backoff, resume
positions, nonces, against a fake WebSocket), its pause while the tab is hidden, and the prediction
card's arithmetic (payout ratio, shares, countdown). Node comes with npm from
infra/local/install-system.sh; without it the tests are skipped, except under CI=true where that is a
failure."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from infra.settings import REPO_ROOT


@pytest.mark.parametrize(
    ("script", "passing"),
    [("edge.test.mjs", 6), ("edge_pause.test.mjs", 2), ("predictions.test.mjs", 5)],
)
def test_browser_module_logic_under_node(script: str, passing: int) -> None:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is missing: infra/local/install-system.sh installs it (npm)")
        pytest.skip("node is not installed")
    run = subprocess.run(
        [node, "--test", f"web/tests/{script}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "# fail 0" in run.stdout and f"# pass {passing}" in run.stdout
