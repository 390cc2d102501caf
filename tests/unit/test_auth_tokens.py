"""Access tokens: HS256 pinned, required claims, refusal of none/RS/expired/foreign tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest

from infra.tokens import AccessTokens, InvalidToken, new_refresh_token, token_hash

SECRET = "s" * 64


def tokens(**overrides: object) -> AccessTokens:
    options: dict[str, object] = {"issuer": "esports-live", "audience": "esports-live", "ttl_s": 60}
    options.update(overrides)
    return AccessTokens(SECRET, **options)  # type: ignore[arg-type]


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    base: dict[str, object] = {
        "sub": "u1",
        "role": "viewer",
        "typ": "access",
        "iss": "esports-live",
        "aud": "esports-live",
        "iat": now,
        "exp": now + 60,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def test_round_trip() -> None:
    verified = tokens().verify(tokens().issue("u1", "streamer"))
    assert (verified.user_id, verified.role) == ("u1", "streamer")


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError):
        AccessTokens("short", issuer="i", audience="a", ttl_s=60)


@pytest.mark.parametrize(
    "token",
    [
        jwt.encode(claims(exp=int(time.time()) - 60, iat=int(time.time()) - 120), SECRET, "HS256"),
        jwt.encode(claims(iss="other"), SECRET, "HS256"),
        jwt.encode(claims(aud="other"), SECRET, "HS256"),
        jwt.encode(claims(exp=None), SECRET, "HS256"),
        jwt.encode(claims(iat=None), SECRET, "HS256"),
        jwt.encode(claims(typ="refresh"), SECRET, "HS256"),
        jwt.encode(claims(), "x" * 48, "HS256"),
        jwt.encode(claims(), SECRET, "HS512"),
        f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims())}.",
        "garbage",
        "",
    ],
    ids=[
        "expired",
        "issuer",
        "audience",
        "no-exp",
        "no-iat",
        "not-access",
        "foreign-key",
        "hs512",
        "alg-none",
        "garbage",
        "empty",
    ],
)
def test_refused(token: str) -> None:
    with pytest.raises(InvalidToken):
        tokens().verify(token)


def test_rs256_header_over_an_hmac_signature_is_refused() -> None:
    signing_input = f"{b64({'alg': 'RS256', 'typ': 'JWT'})}.{b64(claims())}"
    signature = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{base64.urlsafe_b64encode(signature).decode().rstrip('=')}"
    with pytest.raises(InvalidToken):
        tokens().verify(forged)


def test_refresh_tokens_are_random_and_stored_hashed() -> None:
    first, second = new_refresh_token(), new_refresh_token()
    assert first != second and first.startswith("rt_") and len(first) > 40
    assert token_hash(first) == hashlib.sha256(first.encode()).hexdigest() != first
