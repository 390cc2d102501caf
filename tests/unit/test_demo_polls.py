"""The demo streamer keeps one poll running on its live stream (ingest_workers.demo.DemoPolls).

The API is replaced by a small in-memory one (httpx.MockTransport): what is checked here is only
when the demo opens a poll, with what, and that a failing API costs the demo stream nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.settings import Settings
from ingest_workers.demo import POLLS, DemoPolls


class FakeApi:
    def __init__(self) -> None:
        self.live: list[dict[str, str]] = []
        self.opened: list[tuple[str, dict[str, Any], httpx.Headers]] = []
        self.failing = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.failing:
            return httpx.Response(503, json={"title": "unavailable"})
        path = request.url.path
        if path == "/api/v1/channels/demo":
            return httpx.Response(200, json={"channel_id": "chan-demo", "slug": "demo"})
        if path == "/api/v1/streams/live":
            return httpx.Response(200, json={"items": self.live, "next_cursor": None})
        if path == "/api/v1/auth/login":
            return httpx.Response(200, json={"access_token": "t0ken", "refresh_token": "r"})
        if path.endswith("/polls") and request.method == "POST":
            stream_id = path.split("/")[4]
            self.opened.append((stream_id, json.loads(request.content), request.headers))
            return httpx.Response(202, json={"poll_id": f"p{len(self.opened)}", "position": "polls:0:1"})
        return httpx.Response(404, json={"title": "not found"})


@pytest.fixture
def api(tmp_path: Path) -> tuple[FakeApi, DemoPolls]:
    fake = FakeApi()
    settings = Settings(stack={"run_dir": tmp_path})  # type: ignore[arg-type]
    client = httpx.Client(base_url="http://api", transport=httpx.MockTransport(fake))
    return fake, DemoPolls(settings, client, duration_s=60)


def test_nothing_opens_until_the_demo_stream_is_live(api: tuple[FakeApi, DemoPolls]) -> None:
    fake, polls = api
    fake.live = [{"stream_id": "other", "channel_id": "chan-other"}]
    assert polls.step(now=0) is None
    assert fake.opened == []


def test_one_poll_at_a_time_then_the_next_one(api: tuple[FakeApi, DemoPolls]) -> None:
    fake, polls = api
    fake.live = [
        {"stream_id": "other", "channel_id": "chan-other"},
        {"stream_id": "s1", "channel_id": "chan-demo"},
    ]
    assert polls.step(now=0) == "p1"
    stream_id, body, headers = fake.opened[0]
    assert stream_id == "s1"
    assert body == {"question": POLLS[0][0], "options": POLLS[0][1], "duration_s": 60}
    assert headers["authorization"] == "Bearer t0ken" and len(headers["idempotency-key"]) == 32
    assert polls.step(now=30) is None  # still running
    assert polls.step(now=63) == "p2"  # closed (60 s + 2 s of grace): the next question
    assert fake.opened[1][1]["question"] == POLLS[1][0]


def test_a_new_demo_stream_gets_its_own_poll_at_once(api: tuple[FakeApi, DemoPolls]) -> None:
    fake, polls = api
    fake.live = [{"stream_id": "s1", "channel_id": "chan-demo"}]
    assert polls.step(now=0) == "p1"
    fake.live = [{"stream_id": "s2", "channel_id": "chan-demo"}]  # the push restarted: a new stream
    assert polls.step(now=5) == "p2"
    assert fake.opened[1][0] == "s2"


def test_an_unavailable_api_is_retried_later(api: tuple[FakeApi, DemoPolls]) -> None:
    fake, polls = api
    fake.live = [{"stream_id": "s1", "channel_id": "chan-demo"}]
    fake.failing = True
    assert polls.step(now=0) is None
    fake.failing = False
    assert polls.step(now=5) == "p1"
    assert fake.opened[0][1]["question"] == POLLS[0][0]  # the failure did not skip a question
