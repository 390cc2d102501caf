"""The short chaos run inside `make test`: one fault of each kind under a mixed load, nothing lost.

A three-broker cluster, PostgreSQL and Redis of its own, and two processes of every tier (see
tests/chaos/platform.py); the nemesis kills the chat leader broker, a processors worker, a projector
and an edge, and pauses a broker past the session timeouts, while chatters, viewers, voters and
registrations run (tests/chaos/load.py). The checker (tests/chaos/checker.py) must find nothing
acknowledged lost, duplicated or reordered, tallies equal to their recount and the read models
equal to a clean replay. `make chaos` runs the long version (10 minutes, 20 broker kills).
"""

from __future__ import annotations

import pytest

from tests.chaos.platform import Platform
from tests.chaos.scenario import run_on, short_plan

pytestmark = pytest.mark.integration


@pytest.mark.timeout(900)
def test_a_short_chaos_run_loses_nothing_acknowledged(platform: Platform) -> None:
    report = run_on(platform, short_plan())
    print("\n" + report.table())
    assert report.verdict.acknowledged["chat"] > 50 and report.verdict.acknowledged["vote"] > 0
    assert report.verdict.acknowledged["register"] > 20
    assert len(report.faults) == len(short_plan())
    assert report.clean, report.table()
