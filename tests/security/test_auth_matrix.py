"""Every route of the OpenAPI document x {no token, expired, tampered, ``alg: none``, B's token, A's token}.

The expectation of each cell is computed, not listed: from the operation's declared ``security``
(none, bearer required, bearer optional ``[{HTTPBearer: []}, {}]``, internal token) and from whether
the request names an object of user A (a path or body id of A's channel, stream, poll, tournament,
match or clip; ``/me/...`` routes act on the caller's own things). So a route whose behaviour drifts
from its declaration fails here, and a new route is covered the day it is added.

* a required bearer: missing, expired, tampered and ``alg: none`` tokens get 401; an internal
  route refuses every user token with 401;
* an optional bearer (the beacon): no token is served, a bad token is refused with 401;
* no declared security: any Authorization header is ignored (the same status as without one);
* B on A's objects (BOLA): 403 or 404; A itself: never 401; nobody ever gets a 5xx.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events.streams import StreamWentLive
from tests.integration.test_api_support import PASSWORD, ApiStack, User, eventually
from tests.security.tally import TALLY

pytestmark = pytest.mark.integration

FUTURE = "2031-06-14T17:00:00Z"
TEAMS = ["Vitality", "Spirit"]
BAD_TOKENS = ("none", "expired", "tampered", "alg-none")
# Routes any signed-in user calls on another user's object by design (not BOLA): a viewer stakes
# channel points on the streamer's prediction.
ANY_VIEWER = {"/api/v1/predictions/{prediction_id}/stakes"}


@dataclass
class World:
    """User A's objects (the targets), user B (the attacker, a streamer too) and a third user C."""

    a: User
    b: User
    c: User
    ids: dict[str, str]  # path parameter name -> A's object
    tokens: dict[str, str | None]  # variant -> bearer token (None: no header)

    def owned(self) -> set[str]:
        return {v for k, v in self.ids.items() if k not in ("user_id", "schema_id", "subject", "version")}


def _b64(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def _claims(stack: ApiStack, user: User, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    auth = stack.settings.auth
    claims: dict[str, Any] = {"sub": user.user_id, "role": "user", "name": user.username, "typ": "access"}
    claims |= {"iss": auth.jwt_issuer, "aud": auth.jwt_audience, "iat": now, "exp": now + 600}
    return claims | overrides


def _signed(stack: ApiStack, claims: dict[str, Any]) -> str:
    secret = stack.settings.auth.jwt_secret
    assert secret is not None
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64(claims)}"
    digest = hmac.new(secret.get_secret_value().encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(digest).decode().rstrip('=')}"


def forged_tokens(stack: ApiStack, a: User, b: User) -> dict[str, str | None]:
    head, claims, signature = a.access_token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    past = int(time.time()) - 3600
    return {
        "none": None,
        "expired": _signed(stack, _claims(stack, a, iat=past - 600, exp=past)),
        "tampered": f"{head}.{claims}.{flipped}",
        "alg-none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(stack, a))}.",
        "b": b.access_token,
        "a": a.access_token,
    }


async def _found(stack: ApiStack, url: str) -> bool:
    return (await stack.client.get(url)).status_code == 200


async def build_world(stack: ApiStack) -> World:
    a, b, c = await stack.register(), await stack.register(), await stack.register()
    channels = []
    for user in (a, b):
        slug = f"sec-{uuid.uuid4().hex[:10]}"
        body = {"slug": slug, "display_name": "Security Channel"}
        channels.append(await stack.command("POST", "/api/v1/channels", user, body, expect=201))
    channel = channels[0]["channel_id"]
    stream = await stack.command(
        "POST", "/api/v1/streams", a, {"channel_id": channel, "title": "A's stream"}, expect=201
    )
    await stack.query(f"/api/v1/streams/{stream['stream_id']}", after=stream["positions"])
    poll = await stack.command(
        "POST",
        f"/api/v1/streams/{stream['stream_id']}/polls",
        a,
        {"question": "Who wins?", "options": TEAMS},
    )
    tournament = await stack.command(
        "POST", "/api/v1/tournaments", a, {"name": "Sec Cup", "game": "CS2", "starts_at": FUTURE}, expect=201
    )
    await stack.query(f"/api/v1/tournaments/{tournament['tournament_id']}", after=tournament["positions"])
    match = await stack.command(
        "POST",
        f"/api/v1/tournaments/{tournament['tournament_id']}/matches",
        a,
        {"teams": TEAMS, "scheduled_start": FUTURE},
        expect=201,
    )
    await stack.query(f"/api/v1/matches/{match['match_id']}", after=match["positions"])
    # A poll enters the read model with the poll agent's first tally (after its open is applied).
    poll_url = f"/api/v1/polls/{poll['poll_id']}"
    await eventually(lambda: _found(stack, poll_url))
    prediction = await stack.command(
        "POST",
        f"/api/v1/streams/{stream['stream_id']}/predictions",
        a,
        {"title": "Who wins?", "outcomes": TEAMS, "window_s": 1800},
    )
    await stack.query(f"/api/v1/predictions/{prediction['prediction_id']}", after=prediction["positions"])
    clip = await _clip_of(stack, a, stream["stream_id"], channel)
    ids = {
        "stream_id": stream["stream_id"],
        "channel": channel,
        "channel_id": channel,
        "poll_id": poll["poll_id"],
        "prediction_id": prediction["prediction_id"],
        "tournament_id": tournament["tournament_id"],
        "match_id": match["match_id"],
        "clip_id": clip,
        "user_id": a.user_id,
        "schema_id": "1",
        "subject": "streams.lifecycle-value",
        "version": "1",
    }
    return World(a, b, c, ids, forged_tokens(stack, a, b))


async def _clip_of(stack: ApiStack, a: User, stream_id: str, channel_id: str) -> str:
    """A clip A requested of its stream, gone live as the lifecycle agent would say (no ingest node
    runs: the clip stays pending, which is all a route needs of it)."""
    started = datetime.now(UTC) - timedelta(minutes=5)
    live = await stack.publisher.publish(
        StreamWentLive(stream_id=stream_id, channel_id=channel_id, started_at=started)
    )
    await stack.query(f"/api/v1/streams/{stream_id}", after=[str(live)])
    body = {"stream_id": stream_id, "start_ms": 0, "duration_ms": 10_000}
    clip = await stack.command("POST", "/api/v1/clips", a, body, expect=202)
    await stack.query(f"/api/v1/clips/{clip['clip_id']}", after=[clip["position"]])
    return str(clip["clip_id"])


def _body(doc: dict[str, Any], operation: dict[str, Any], world: World) -> Any:
    """The request model's first documented example, pointed at A's objects."""
    if "requestBody" not in operation:
        return None
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    refs = [s["$ref"] for s in [schema, *schema.get("anyOf", [])] if "$ref" in s]
    examples = doc["components"]["schemas"][refs[0].rsplit("/", 1)[1]].get("examples") if refs else None
    body = dict(examples[0]) if examples else {}
    replace = {
        "channel_id": world.ids["channel"],
        "user_id": world.c.user_id,
        "scheduled_start": FUTURE,
        "starts_at": FUTURE,
        "ends_at": "2031-09-07T20:00:00Z",
        "teams": TEAMS,
        "scores": [{"team": TEAMS[0], "score": 1}, {"team": TEAMS[1], "score": 0}],
        "slug": f"sec-{uuid.uuid4().hex[:10]}",
        "username": f"u{uuid.uuid4().hex[:12]}",
        "session_id": f"s-{uuid.uuid4().hex[:8]}",
    }
    body = {k: replace.get(k, v) for k, v in body.items()}
    body.pop("match_id", None)
    if operation.get("operationId", "").startswith("login"):  # failures would trip the login limiter
        body = {"username": world.a.username, "password": PASSWORD}
    return body


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    operation: dict[str, Any]

    @property
    def schemes(self) -> list[dict[str, Any]]:
        return list(self.operation.get("security") or [])

    @property
    def anonymous_allowed(self) -> bool:
        return not self.schemes or {} in self.schemes

    @property
    def internal(self) -> bool:
        return any("InternalToken" in s for s in self.schemes)

    def url(self, world: World) -> str:
        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            if name == "user_id" and "moderators" in self.template:
                return world.c.user_id
            return world.ids[name]

        return re.sub(r"\{(\w+)\}", fill, self.template)

    def names_a_object(self, world: World, body: Any) -> bool:
        if self.template.startswith("/api/v1/me") or self.template in ANY_VIEWER:
            return False
        ids = set(re.findall(r"\{(\w+)\}", self.template)) - {"schema_id", "subject", "version"}
        in_body = isinstance(body, dict) and body.get("channel_id") in world.owned()
        return bool(ids) or in_body


def routes(doc: dict[str, Any]) -> list[Route]:
    found = [
        Route(method.upper(), path, op)
        for path, operations in doc["paths"].items()
        for method, op in operations.items()
    ]
    # Operations that end or remove A's objects last, so the others still find them.
    return sorted(found, key=lambda r: bool(re.search(r"/(end|close)$", r.template) or r.method == "DELETE"))


def expected(route: Route, variant: str, world: World, body: Any, anonymous_status: int) -> set[int] | None:
    """The statuses allowed for one cell (None: any non-5xx, checked separately)."""
    if route.internal:
        return {401}
    if not route.schemes:  # public: the header is not looked at
        return {anonymous_status}
    if variant in BAD_TOKENS:
        if variant == "none" and route.anonymous_allowed:
            return None
        return {401}
    if variant == "b" and not route.anonymous_allowed and route.names_a_object(world, body):
        return {403, 404}
    return None


async def _call(stack: ApiStack, route: Route, url: str, token: str | None, body: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await stack.client.request(route.method, url, headers=headers, json=body)


async def test_every_route_refuses_what_its_declaration_says(security_stack: ApiStack) -> None:
    stack = security_stack
    world = await build_world(stack)
    doc = stack.client._transport.app.openapi()  # type: ignore[attr-defined]
    problems: list[str] = []
    cells = 0
    for phase in (("none", "expired", "tampered", "alg-none", "b"), ("a",)):
        for route in routes(doc):
            url = route.url(world)
            anonymous = None
            for variant in phase:
                body = _body(doc, route.operation, world)
                response = await _call(stack, route, url, world.tokens[variant], body)
                if variant == "none":
                    anonymous = response.status_code
                allowed = expected(route, variant, world, body, anonymous or response.status_code)
                ok = response.status_code < 500 and (
                    response.status_code in allowed if allowed is not None else True
                )
                if variant == "a" and route.schemes and not route.internal:
                    ok = ok and response.status_code != 401
                refused = allowed is not None and allowed <= {401, 403, 404}
                TALLY.saw(response, refused=refused and ok)
                cells += 1
                if not ok:
                    problems.append(
                        f"{route.method} {route.template} [{variant}] -> {response.status_code} "
                        f"(expected {sorted(allowed) if allowed else 'not 5xx'}): {response.text[:160]}"
                    )
    assert cells >= 6 * 50
    assert not problems, "\n".join(problems)


async def test_the_beacon_declares_its_anonymous_access(security_stack: ApiStack) -> None:
    doc = security_stack.client._transport.app.openapi()  # type: ignore[attr-defined]
    security = doc["paths"]["/api/v1/streams/{stream_id}/beacon"]["post"]["security"]
    assert {} in security and {"HTTPBearer": []} in security
