"""The chaos tests use the integration tests' `settings` (the shared stack must be reachable: its
Kafka jars are reused by the private cluster)."""

from tests.integration.conftest import settings  # noqa: F401 - a fixture, re-exported
