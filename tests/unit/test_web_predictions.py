"""The prediction card's logic (payout ratio, shares, countdown, reading the API's prediction), run by
Node's test runner (web/tests/predictions.test.mjs). Without Node the test is skipped, except under
CI=true where that is a failure."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from infra.settings import REPO_ROOT


def test_prediction_card_logic_under_node() -> None:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is missing: infra/local/install-system.sh installs it (npm)")
        pytest.skip("node is not installed")
    run = subprocess.run(
        [node, "--test", "web/tests/predictions.test.mjs"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "# fail 0" in run.stdout and "# pass 4" in run.stdout
