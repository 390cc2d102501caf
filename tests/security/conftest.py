"""The attack suite's platform: one isolated API stack for the whole package, and its tally.

``security_stack`` is :func:`~tests.integration.test_api_support.open_api_stack` (own topics, schemas
and Redis prefix; the API in-process over ASGI; the projector; the processors worker) opened once for
every module of the suite (once per pytest-xdist worker that runs some of it), which keeps the suite's
wall time to a minute. Every module
adds what it tried to :data:`TALLY`; ``tests/conftest.py`` prints the figures at the end of the run
(the README quotes them).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from infra.settings import Settings
from tests.integration.conftest import codec, settings
from tests.integration.test_api_support import ApiStack, open_api_stack

__all__ = ["codec", "settings"]

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
async def security_stack(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ApiStack]:
    async with open_api_stack(settings, tmp_path_factory.mktemp("security")) as stack:
        yield stack
