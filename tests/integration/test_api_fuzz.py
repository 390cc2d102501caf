"""schemathesis against the live API (uvicorn over real HTTP) from its own OpenAPI document:
at least 500 generated requests across every operation, authenticated as a real streamer, and no 5xx.

Generation covers valid and invalid data (positive and negative modes), so it checks the error
paths too: every 4xx must be a problem document, never a crash.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase
from hypothesis.configuration import set_hypothesis_home_dir

from infra.settings import Settings
from tests.integration.test_api_support import open_api_stack
from tests.ports import free_port
from web.app import create_app

pytestmark = pytest.mark.integration

MIN_REQUESTS = 500
EXAMPLES_PER_OPERATION = 25


class ThreadedUvicorn:
    """uvicorn in a thread with its own event loop; the app opens its own services there."""

    def __init__(self, app: Any, port: int) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadedUvicorn:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def _fuzz(base_url: str, headers: dict[str, str]) -> Counter[int]:
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    session = requests.Session()
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid operation fails the test

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def call(case: schemathesis.Case) -> None:
            response = case.call(
                base_url=base_url, session=session, headers={**dict(case.headers or {}), **headers}
            )
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code} {response.text[:300]}"
                )
            elif response.status_code >= 400:
                content_type = (response.headers.get("content-type") or [""])[0]
                # The Schema Registry routes answer in the registry's own error format, which the
                # tools that call them parse (producers/routes/schema_registry.py).
                expected = REGISTRY_ERRORS if _is_registry(case.path) else "application/problem+json"
                if not content_type.startswith(expected):
                    failures.append(
                        f"{case.method} {case.formatted_path} -> {response.status_code} {content_type}"
                    )

        call()
    assert not failures, "\n".join(failures[:20])
    return statuses


REGISTRY_ERRORS = "application/vnd.schemaregistry.v1+json"


def _is_registry(path: str) -> bool:
    return path.startswith(("/schemas/", "/subjects"))


async def _scenario(settings: Settings, tmp: Path) -> Counter[int]:
    async with open_api_stack(settings, tmp) as stack:
        user = await stack.register()
        await stack.command(
            "POST", "/api/v1/channels", user, {"slug": f"fz-{uuid.uuid4().hex[:10]}", "display_name": "F"}
        )
        user = await stack.relogin(user)
        port = free_port()
        app = create_app(stack.settings, namespace=stack.namespace)
        with ThreadedUvicorn(app, port):
            # the generator blocks; the projector keeps running on this loop meanwhile
            return await asyncio.to_thread(_fuzz, f"http://127.0.0.1:{port}", user.auth)


async def test_no_server_errors_over_generated_requests(settings: Settings, tmp_path: Path) -> None:
    set_hypothesis_home_dir(str(tmp_path / "hypothesis"))  # keep hypothesis' caches out of the repo
    statuses = await _scenario(settings, tmp_path)
    total = sum(statuses.values())
    print(f"schemathesis: {total} requests, statuses {dict(sorted(statuses.items()))}")
    assert total >= MIN_REQUESTS, statuses
    assert not [s for s in statuses if s >= 500]
