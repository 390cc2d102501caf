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


class AccessTokens:
    """Issues and verifies the API's access tokens."""

    def __init__(self, secret: str, *, issuer: str, audience: str, ttl_s: int, leeway_s: int = 5) -> None:
        if len(secret.encode()) < 32:
            raise ValueError("auth.jwt_secret must be at least 32 bytes")
        self._secret = secret
        self._issuer = issuer
        self._audience = audience
        self.ttl_s = ttl_s
        self._leeway_s = leeway_s

    def issue(self, user_id: str, role: str, *, name: str = "", now: float | None = None) -> str:
        issued = int(now if now is not None else time.time())
        claims = {
            "sub": user_id,
            "role": role,
            "name": name,
            "typ": "access",
            "iss": self._issuer,
            "aud": self._audience,
            "iat": issued,
            "exp": issued + self.ttl_s,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> AccessClaims:
        """The token's claims, or :class:`InvalidToken` (never a PyJWT exception)."""
        try:
            if jwt.get_unverified_header(token).get("alg") != ALGORITHM:
                raise InvalidToken("unexpected signing algorithm")
            claims = jwt.decode(
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
        if claims.get("typ") != "access" or not isinstance(claims.get("sub"), str):
            raise InvalidToken("not an access token")
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
