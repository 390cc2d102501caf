"""The chaos package's fixtures: the integration tests' `settings` (the shared stack's Kafka jars are
reused) and one private chaos platform for every test here (a three-broker cluster, PostgreSQL,
Redis), started once for the package: the cluster-mode tests and the short chaos run share it."""

from collections.abc import Iterator

import pytest

from infra.settings import Settings
from tests.chaos.platform import Platform
from tests.chaos.scenario import chaos_platform
from tests.integration.conftest import settings  # noqa: F401 - a fixture, re-exported


@pytest.fixture(scope="package")
def platform(settings: Settings) -> Iterator[Platform]:  # noqa: F811 - the re-exported fixture
    with chaos_platform(settings) as started:
        yield started
