"""Accounts: registration, login, token checks (expired, tampered, alg none, wrong key type), refresh
rotation, logout, failed-login rate limit, /me, profiles and admin role changes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import jwt
import pytest

from infra.tokens import AccessTokens
from tests.integration.test_api_support import PASSWORD, ApiStack, api_stack

pytestmark = pytest.mark.integration
__all__ = ["api_stack"]


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _hmac_signed(header: dict[str, object], claims: dict[str, object], secret: str) -> str:
    signing_input = f"{_b64(header)}.{_b64(claims)}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).decode().rstrip('=')}"


def _secret(stack: ApiStack) -> str:
    secret = stack.settings.auth.jwt_secret
    assert secret is not None
    return secret.get_secret_value()


def _claims(stack: ApiStack, user_id: str, **overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": user_id,
        "role": "admin",
        "typ": "access",
        "iss": stack.settings.auth.jwt_issuer,
        "aud": stack.settings.auth.jwt_audience,
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


async def _me_status(stack: ApiStack, token: str) -> int:
    response = await stack.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    if response.status_code == 401:
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "WWW-Authenticate" in response.headers
    return response.status_code


async def test_register_login_and_me(api_stack: ApiStack) -> None:
    user = await api_stack.register()
    me = await api_stack.query("/api/v1/me", user)
    assert (me["user_id"], me["username"], me["role"]) == (user.user_id, user.username, "viewer")
    profile = await api_stack.query(f"/api/v1/users/{user.user_id}", after=user.positions)
    assert profile["username"] == user.username and profile["role"] == "viewer"
    missing = await api_stack.client.get("/api/v1/users/nobody")
    assert missing.status_code == 404


async def test_usernames_are_unique_case_insensitively(api_stack: ApiStack) -> None:
    user = await api_stack.register()
    again = await api_stack.client.post(
        "/api/v1/auth/register", json={"username": user.username.upper(), "password": PASSWORD}
    )
    assert again.status_code == 409
    assert again.json()["type"] == "/problems/conflict"


async def test_tokens_that_must_be_refused(api_stack: ApiStack) -> None:
    user = await api_stack.register()
    secret = _secret(api_stack)
    assert await _me_status(api_stack, user.access_token) == 200
    # expired
    expired = jwt.encode(
        _claims(api_stack, user.user_id, iat=1_600_000_000, exp=1_600_000_600), secret, "HS256"
    )
    # tampered: payload changed, signature kept
    head, _, sig = user.access_token.split(".")
    tampered = f"{head}.{_b64(_claims(api_stack, user.user_id, role='admin'))}.{sig}"
    # alg none, with and without a signature part
    none_head = _b64({"alg": "none", "typ": "JWT"})
    alg_none = f"{none_head}.{_b64(_claims(api_stack, user.user_id))}."
    # HS/RS confusion: an RS256 header over an HMAC signature made with the shared secret
    rs_confused = _hmac_signed({"alg": "RS256", "typ": "JWT"}, _claims(api_stack, user.user_id), secret)
    wrong_key = jwt.encode(
        _claims(api_stack, user.user_id), "another-secret-that-is-long-enough-32b", "HS256"
    )
    wrong_issuer = jwt.encode(_claims(api_stack, user.user_id, iss="someone-else"), secret, "HS256")
    wrong_audience = jwt.encode(_claims(api_stack, user.user_id, aud="another-api"), secret, "HS256")
    without_exp = jwt.encode(_claims(api_stack, user.user_id, exp=None), secret, "HS256")
    refresh_as_access = user.refresh_token
    for token in (
        expired,
        tampered,
        alg_none,
        alg_none + "x",
        rs_confused,
        wrong_key,
        wrong_issuer,
        wrong_audience,
        without_exp,
        refresh_as_access,
        "not-a-jwt",
    ):
        assert await _me_status(api_stack, token) == 401, token
    assert (await api_stack.client.get("/api/v1/me")).status_code == 401


async def test_a_tokens_role_claim_grants_nothing(api_stack: ApiStack) -> None:
    """The role comes from the command side's credentials, not from the token."""
    user = await api_stack.register()
    tokens = AccessTokens(
        _secret(api_stack),
        issuer=api_stack.settings.auth.jwt_issuer,
        audience=api_stack.settings.auth.jwt_audience,
        ttl_s=60,
    )
    forged_role = tokens.issue(user.user_id, "admin")
    response = await api_stack.client.patch(
        f"/api/v1/users/{user.user_id}/role",
        json={"role": "admin"},
        headers={"Authorization": f"Bearer {forged_role}"},
    )
    assert response.status_code == 403


async def test_refresh_rotates_and_reuse_revokes_the_login(api_stack: ApiStack) -> None:
    user = await api_stack.register()
    first = await api_stack.command(
        "POST", "/api/v1/auth/refresh", None, {"refresh_token": user.refresh_token}
    )
    assert first["refresh_token"] != user.refresh_token
    assert await _me_status(api_stack, first["access_token"]) == 200
    # the spent token presented again: refused, and the whole family (incl. `first`) is revoked
    await api_stack.command(
        "POST", "/api/v1/auth/refresh", None, {"refresh_token": user.refresh_token}, expect=401
    )
    await api_stack.command(
        "POST", "/api/v1/auth/refresh", None, {"refresh_token": first["refresh_token"]}, expect=401
    )


async def test_logout_revokes_the_refresh_token(api_stack: ApiStack) -> None:
    user = await api_stack.register()
    response = await api_stack.client.post("/api/v1/auth/logout", json={"refresh_token": user.refresh_token})
    assert response.status_code == 204
    await api_stack.command(
        "POST", "/api/v1/auth/refresh", None, {"refresh_token": user.refresh_token}, expect=401
    )


async def test_wrong_passwords_are_rate_limited(api_stack: ApiStack) -> None:
    user = await api_stack.register()
    limit = api_stack.settings.auth.login_attempts_per_minute
    for _ in range(limit):
        await api_stack.command(
            "POST",
            "/api/v1/auth/login",
            None,
            {"username": user.username, "password": "wrong password!"},
            expect=401,
        )
    blocked = await api_stack.client.post(
        "/api/v1/auth/login", json={"username": user.username, "password": "wrong password!"}
    )
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) >= 1
    assert blocked.json()["status"] == 429
    # even the right password waits for the window (per username and per IP)
    right = await api_stack.client.post(
        "/api/v1/auth/login", json={"username": user.username, "password": PASSWORD}
    )
    assert right.status_code == 429
    await api_stack.services.redis.delete(
        f"{api_stack.namespace.redis_prefix}api:login-fail:user:{user.username.lower()}",
        f"{api_stack.namespace.redis_prefix}api:login-fail:ip:127.0.0.1",
    )


async def test_behind_a_trusted_proxy_the_ip_limit_counts_the_forwarded_client(
    api_stack: ApiStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The test client's peer is 127.0.0.1: make it the balancer every request comes through.
    monkeypatch.setattr(api_stack.services.settings.api, "trusted_proxies", ["127.0.0.1/32"])
    limit = api_stack.settings.auth.login_attempts_per_minute
    prefix = f"{api_stack.namespace.redis_prefix}api:login-fail"
    attacker, bystander = "198.51.100.7", "198.51.100.8"
    # The attacker tries many usernames (so only the per-IP count can stop it), spoofing a header.
    for _ in range(limit):
        failed = await api_stack.client.post(
            "/api/v1/auth/login",
            json={"username": f"nobody{uuid.uuid4().hex[:8]}", "password": "wrong password!"},
            headers={"X-Forwarded-For": f"6.6.6.{_}, {attacker}"},
        )
        assert failed.status_code == 401, failed.text
    blocked = await api_stack.client.post(
        "/api/v1/auth/login",
        json={"username": "nobody-else", "password": "wrong password!"},
        headers={"X-Forwarded-For": attacker},
    )
    assert blocked.status_code == 429
    # Another viewer behind the same balancer logs in normally.
    user = await api_stack.register()
    allowed = await api_stack.client.post(
        "/api/v1/auth/login",
        json={"username": user.username, "password": PASSWORD},
        headers={"X-Forwarded-For": bystander},
    )
    assert allowed.status_code == 200, allowed.text
    assert not await api_stack.services.redis.exists(f"{prefix}:ip:127.0.0.1")
    await api_stack.services.redis.delete(f"{prefix}:ip:{attacker}")


async def test_admins_change_roles_and_others_cannot(api_stack: ApiStack) -> None:
    admin = await api_stack.make_admin(await api_stack.register())
    target = await api_stack.register()
    await api_stack.command(
        "PATCH", f"/api/v1/users/{admin.user_id}/role", target, {"role": "admin"}, expect=403
    )
    changed = await api_stack.command(
        "PATCH", f"/api/v1/users/{target.user_id}/role", admin, {"role": "streamer"}
    )
    profile = await api_stack.query(f"/api/v1/users/{target.user_id}", after=changed["positions"])
    assert profile["role"] == "streamer"
    assert (await api_stack.query("/api/v1/me", target))["role"] == "streamer"
    await api_stack.command("PATCH", "/api/v1/users/nobody/role", admin, {"role": "viewer"}, expect=404)
