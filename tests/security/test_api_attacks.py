"""The OWASP API Top 10 items that fit this API, against the real stack.

* Mass assignment: ``role``, ``owner_id``, ``user_id``, ``state`` slipped into bodies are refused
  (422) or ignored; never applied.
* Excessive data exposure: no password hash, stream-key hash, refresh token or internal token in any
  response but the one that hands a secret out once (login, rotate).
* Rate limiting: failed logins and wrong stream keys answer 429 past their budget (each test from its
  own client address, so the limits it trips are its own).
* Oversized bodies: 413 problem+json, whether announced by Content-Length or streamed.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from producers.routes.internal import KEY_FAILURES_PER_WINDOW
from tests.integration.test_api_support import PASSWORD, ApiStack, User, eventually
from tests.security.tally import TALLY

pytestmark = pytest.mark.integration


def _app(stack: ApiStack) -> Any:
    return stack.client._transport.app  # type: ignore[attr-defined]


async def _client_from(stack: ApiStack, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=_app(stack), client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://api.test", timeout=30)


async def _seen(response: httpx.Response, *, refused: bool = False) -> httpx.Response:
    TALLY.saw(response, refused=refused)
    assert response.status_code < 500, response.text
    return response


async def _streamer(stack: ApiStack) -> tuple[User, str]:
    user = await stack.register()
    body = {"slug": f"ma-{uuid.uuid4().hex[:10]}", "display_name": "Mass"}
    channel = await stack.command("POST", "/api/v1/channels", user, body, expect=201)
    return user, channel["channel_id"]


async def test_mass_assignment_is_refused_or_ignored(security_stack: ApiStack) -> None:
    stack = security_stack
    client = stack.client
    other = await stack.register()
    name = f"u{uuid.uuid4().hex[:12]}"
    register = {"username": name, "password": PASSWORD, "role": "admin", "user_id": "u-chosen"}
    r = await _seen(await client.post("/api/v1/auth/register", json=register), refused=True)
    assert r.status_code == 422
    user, channel = await _streamer(stack)
    attempts: list[tuple[str, str, dict[str, Any]]] = [
        (
            "POST",
            "/api/v1/channels",
            {"slug": f"ma-{uuid.uuid4().hex[:8]}", "display_name": "x", "owner_id": other.user_id},
        ),
        (
            "POST",
            "/api/v1/streams",
            {"channel_id": channel, "title": "t", "owner_id": other.user_id, "state": "live"},
        ),
        ("PATCH", f"/api/v1/channels/{channel}", {"description": "d", "owner_id": other.user_id}),
        ("PATCH", f"/api/v1/users/{user.user_id}/role", {"role": "admin"}),
    ]
    for method, url, body in attempts:
        r = await _seen(await client.request(method, url, json=body, headers=user.auth), refused=True)
        assert r.status_code in (403, 422), f"{method} {url} -> {r.status_code} {r.text}"
    me = await _seen(await client.get("/api/v1/me", headers=user.auth))
    assert me.json()["role"] != "admin"
    channel_url = f"/api/v1/channels/{channel}"
    await eventually(lambda: _status_is(client, channel_url, 200))  # the projector applies it shortly
    shown = await _seen(await client.get(channel_url))
    assert shown.json()["owner_id"] == user.user_id


async def _status_is(client: Any, url: str, status: int) -> bool:
    return (await client.get(url)).status_code == status


async def test_no_secret_in_any_response(security_stack: ApiStack) -> None:
    stack = security_stack
    user, channel = await _streamer(stack)
    rotated = await _seen(
        await stack.client.post(f"/api/v1/channels/{channel}/stream-key", headers=user.auth)
    )
    key = rotated.json()["stream_key"]
    await stack.relogin(user)
    internal = stack.settings.auth.internal_token
    secrets = {
        "stream key": key,
        "refresh token": user.refresh_token,
        "password": PASSWORD,
        "argon2 hash": "$argon2",
        "internal token": internal.get_secret_value() if internal else "-",
    }
    from producers.stream_keys import hash_key

    secrets["stream key hash"] = hash_key(key)
    urls = [
        "/api/v1/me",
        f"/api/v1/users/{user.user_id}",
        f"/api/v1/channels/{channel}",
        "/api/v1/channels",
        "/api/v1/streams",
        "/api/v1/me/follows",
        "/api/v1/me/notifications",
        "/metrics",
        "/health",
        "/openapi.json",
    ]
    exposed = []
    for url in urls:
        response = await _seen(await stack.client.get(url, headers=user.auth))
        exposed += [f"{what} in {url}" for what, secret in secrets.items() if secret in response.text]
    assert not exposed
    assert all(word not in rotated.text for word in ("key_hash", "$argon2"))


async def test_failed_logins_are_limited(security_stack: ApiStack) -> None:
    stack = security_stack
    user = await stack.register()
    async with await _client_from(stack, "203.0.113.10") as client:
        statuses = []
        for _ in range(stack.settings.auth.login_attempts_per_minute + 2):
            body = {"username": user.username, "password": "wrong password!"}
            response = await _seen(await client.post("/api/v1/auth/login", json=body), refused=True)
            statuses.append(response.status_code)
        right = {"username": user.username, "password": PASSWORD}
        blocked = await _seen(await client.post("/api/v1/auth/login", json=right), refused=True)
    assert set(statuses[: stack.settings.auth.login_attempts_per_minute]) == {401}
    assert statuses[-1] == 429 and blocked.status_code == 429  # the right password waits too
    assert int(blocked.headers["Retry-After"]) >= 1


async def test_stream_key_guessing_is_limited(security_stack: ApiStack) -> None:
    stack = security_stack
    user, channel = await _streamer(stack)
    key = (await stack.command("POST", f"/api/v1/channels/{channel}/stream-key", user, expect=201))[
        "stream_key"
    ]
    token = stack.settings.auth.internal_token
    assert token is not None
    headers = {"Authorization": f"Bearer {token.get_secret_value()}"}
    url = "/internal/ingest/authorize"
    async with await _client_from(stack, "203.0.113.20") as guesser:
        statuses = []
        for _ in range(KEY_FAILURES_PER_WINDOW + 3):
            guess = {"stream_key": f"live_{uuid.uuid4().hex}"}
            response = await _seen(await guesser.post(url, json=guess, headers=headers), refused=True)
            statuses.append(response.status_code)
        blocked = await _seen(
            await guesser.post(url, json={"stream_key": key}, headers=headers), refused=True
        )
    assert set(statuses[:KEY_FAILURES_PER_WINDOW]) == {403}
    assert set(statuses[KEY_FAILURES_PER_WINDOW:]) == {429}
    assert blocked.status_code == 429  # a right key from the guessing address waits out the window
    async with await _client_from(stack, "203.0.113.21") as publisher:
        fine = await _seen(await publisher.post(url, json={"stream_key": key}, headers=headers))
    assert fine.status_code == 200  # another address is not locked out

    # Through one ingest node: the node forwards each publisher's address, which the limit counts.
    async with await _client_from(stack, "203.0.113.30") as node:
        for _ in range(KEY_FAILURES_PER_WINDOW + 1):
            guess = {"stream_key": f"live_{uuid.uuid4().hex}", "publisher_addr": "198.51.100.7"}
            guessed = await _seen(await node.post(url, json=guess, headers=headers), refused=True)
        honest = {"stream_key": key, "publisher_addr": "198.51.100.8"}
        allowed = await _seen(await node.post(url, json=honest, headers=headers))
        bad = await node.post(url, json={"stream_key": key, "publisher_addr": "not-an-ip"}, headers=headers)
    assert guessed.status_code == 429  # the guessing publisher is limited...
    assert allowed.status_code == 200  # ...not the other publishers of the same ingest node
    assert bad.status_code == 422


@pytest.fixture
async def streamer(security_stack: ApiStack) -> AsyncIterator[tuple[User, str]]:
    yield await _streamer(security_stack)


async def test_oversized_bodies_get_413(security_stack: ApiStack, streamer: tuple[User, str]) -> None:
    stack = security_stack
    user, channel = streamer
    limit = stack.settings.api.max_body_bytes
    big = {"channel_id": channel, "title": "x" * (limit + 1)}

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(limit // 1024 + 2):
            yield b"a" * 1024

    announced = await stack.client.post("/api/v1/streams", json=big, headers=user.auth)
    streamed = await stack.client.post(
        "/api/v1/streams", content=chunks(), headers={**user.auth, "content-type": "application/json"}
    )
    for response in (announced, streamed):
        await _seen(response, refused=True)
        assert response.status_code == 413
        assert response.headers["content-type"].startswith("application/problem+json")
