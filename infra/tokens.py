"""Access tokens (JWT, HS256 pinned) and refresh tokens (opaque, stored hashed, rotated on use).

The verifier accepts exactly one algorithm, HS256, and checks the header before PyJWT does, so
``alg: none`` and RS256/HS256 confusion are refused whatever the library's defaults become.
``exp``, ``iat``, ``iss``, ``aud``, ``sub`` and ``typ`` are required.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]


class InvalidToken(Exception):
    """The token is malformed, forged, expired or not meant for this API."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a verified access token says."""

    user_id: str
    role: str
    token_id: str
    expires_at: int
    name: str = ""  # display name at issue time, for chat (the edge has no user store)


class SignedClaims:
    """Signs and verifies JWTs of one ``typ`` (HS256 pinned, ``iss``/``aud``/``exp`` checked): the one
    place the rules of the API's signed tokens live. Two kinds with different ``typ`` never stand in
    for each other (an access token is no moderator pass, and the other way round)."""

    def __init__(
        self, secret: str, *, typ: str, issuer: str, audience: str, ttl_s: int, leeway_s: int
    ) -> None:
        if len(secret.encode()) < 32:
            raise ValueError("auth.jwt_secret must be at least 32 bytes")
        self._secret = secret
        self._typ = typ
        self._issuer = issuer
        self._audience = audience
        self.ttl_s = ttl_s
        self._leeway_s = leeway_s

    def sign(self, subject: str, claims: dict[str, object], *, now: float | None = None) -> str:
        """A token for ``subject`` with ``claims`` and the registered ones (``typ``, ``iat``, ``exp``...)."""
        issued = int(now if now is not None else time.time())
        registered = {
            "sub": subject,
            "typ": self._typ,
            "iss": self._issuer,
            "aud": self._audience,
            "iat": issued,
            "exp": issued + self.ttl_s,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode({**claims, **registered}, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, or :class:`InvalidToken` (never a PyJWT exception)."""
        try:
            if jwt.get_unverified_header(token).get("alg") != ALGORITHM:
                raise InvalidToken("unexpected signing algorithm")
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway_s,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError as e:
            raise InvalidToken(type(e).__name__) from None
        if claims.get("typ") != self._typ or not isinstance(claims.get("sub"), str):
            raise InvalidToken(f"not a token of type {self._typ!r}")
        return claims


class AccessTokens:
    """Issues and verifies the API's access tokens."""

    def __init__(self, secret: str, *, issuer: str, audience: str, ttl_s: int, leeway_s: int = 5) -> None:
        self._signed = SignedClaims(
            secret, typ="access", issuer=issuer, audience=audience, ttl_s=ttl_s, leeway_s=leeway_s
        )
        self.ttl_s = ttl_s

    def issue(self, user_id: str, role: str, *, name: str = "", now: float | None = None) -> str:
        return self._signed.sign(user_id, {"role": role, "name": name}, now=now)

    def verify(self, token: str) -> AccessClaims:
        """The token's claims, or :class:`InvalidToken` (never a PyJWT exception)."""
        claims = self._signed.verify(token)
        return AccessClaims(
            claims["sub"],
            str(claims.get("role", "viewer")),
            str(claims.get("jti", "")),
            claims["exp"],
            str(claims.get("name", "")),
        )


def new_refresh_token() -> str:
    """An opaque refresh token (256 bits from ``secrets``); only its hash is stored."""
    return "rt_" + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """The stored form of an opaque token: sha256 hex (the token has 256 bits of entropy; no salt needed)."""
    return hashlib.sha256(token.encode()).hexdigest()
