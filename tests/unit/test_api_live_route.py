"""The live listing's fast route (producers.routes.streams.LiveListingRoute): which requests it takes
(a plain ``limit``/``cursor`` query, no ``X-Min-Position``) and which it leaves to the FastAPI route."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.routing import Match

from infra.settings import Settings
from producers.routes.streams import LIVE_PATH, LiveListingRoute, _plain_live_query
from web.app import create_app


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (b"", (20, None)),
        (b"limit=20", (20, None)),
        (b"limit=1", (1, None)),
        (b"limit=100", (100, None)),
        (b"cursor=MjA", (20, "MjA")),
        (b"limit=5&cursor=MjA", (5, "MjA")),
        (b"cursor=a_b-C9&limit=7", (7, "a_b-C9")),
    ],
)
def test_plain_queries_are_taken(query: bytes, expected: tuple[int, str | None]) -> None:
    assert _plain_live_query(query) == expected


@pytest.mark.parametrize(
    "query",
    [
        b"limit=0",  # FastAPI's 422
        b"limit=101",
        b"limit=020",  # leading zero, +, spaces, escapes: whatever FastAPI makes of them, it decides
        b"limit=%32",
        b"limit=+5",
        b"limit=",
        b"limit",
        b"limit=abc",
        b"limit=5&limit=6",  # repeated
        b"cursor=",
        b"cursor=a%3D",
        b"cursor=a.b",
        b"cursor=" + b"a" * 513,
        b"limit=5&cursor=MjA&_=1",  # an unknown parameter (FastAPI ignores it)
        b"&",
        b"limit=5&",
    ],
)
def test_anything_else_is_left_to_the_fastapi_route(query: bytes) -> None:
    assert _plain_live_query(query) is None


def _scope(path: str = LIVE_PATH, method: str = "GET", query: bytes = b"", **headers: str) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "query_string": query,
        "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
    }


def test_the_route_matches_only_plain_gets_without_positions() -> None:
    route = LiveListingRoute()
    match, child = route.matches(_scope(query=b"limit=3"))
    assert match is Match.FULL and child["route"] is route and route.path == LIVE_PATH
    for scope in (
        _scope(method="HEAD"),
        _scope(method="POST"),
        _scope(path=LIVE_PATH + "/"),
        _scope(path="/api/v1/streams/other"),
        _scope(x_min_position="streams:0:1"),
        _scope(query=b"limit=0"),
    ):
        assert route.matches(scope)[0] is Match.NONE, scope


def test_the_route_comes_first_and_the_documented_route_stays() -> None:
    app = create_app(Settings())
    assert isinstance(app.router.routes[0], LiveListingRoute)
    assert app.url_path_for("live_streams") == LIVE_PATH  # the documented route keeps its name
    live = app.openapi()["paths"][LIVE_PATH]["get"]
    assert live["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/LivePage")
    assert {p["name"] for p in live["parameters"]} >= {"limit", "cursor", "x-min-position"}
