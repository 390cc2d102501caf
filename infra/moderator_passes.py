"""Moderator passes: short-lived signed proofs, issued by the API, that a user may moderate a stream.

The edge knows no channel's moderators (it has no user store); the API does. A moderator's page asks
the API for a pass and shows it to the edge (``moderate`` frame), which then sends that connection
the stream's held messages. A pass is a JWT like an access token (HS256 pinned, ``iss``, ``aud``,
``exp`` checked, the same secret) but with ``typ: moderator_pass`` and a ``stream`` claim, so neither
can stand in for the other. It lives :data:`PASS_TTL_S`: a moderator removed from a channel keeps the
queue at most that long on a connection opened before, and gets no new pass.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import jwt

from infra.tokens import ALGORITHM, InvalidToken

__all__ = ["PASS_TTL_S", "InvalidToken", "ModeratorPass", "ModeratorPasses"]

PASS_TTL_S = 300
TYP = "moderator_pass"


@dataclass(frozen=True, slots=True)
class ModeratorPass:
    """What a verified pass says: this user may moderate this stream until ``expires_at``."""

    user_id: str
    stream_id: str
    expires_at: int


class ModeratorPasses:
    """Issues and verifies moderator passes (the same secret, issuer and audience as access tokens)."""

    def __init__(self, secret: str, *, issuer: str, audience: str, ttl_s: int = PASS_TTL_S) -> None:
        if len(secret.encode()) < 32:
            raise ValueError("auth.jwt_secret must be at least 32 bytes")
        self._secret = secret
        self._issuer = issuer
        self._audience = audience
        self.ttl_s = ttl_s

    def issue(self, user_id: str, stream_id: str, *, now: float | None = None) -> str:
        """A signed pass for ``user_id`` on ``stream_id``."""
        issued = int(now if now is not None else time.time())
        claims = {
            "sub": user_id,
            "stream": stream_id,
            "typ": TYP,
            "iss": self._issuer,
            "aud": self._audience,
            "iat": issued,
            "exp": issued + self.ttl_s,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> ModeratorPass:
        """The pass's claims, or :class:`InvalidToken` (never a PyJWT exception)."""
        try:
            if jwt.get_unverified_header(token).get("alg") != ALGORITHM:
                raise InvalidToken("unexpected signing algorithm")
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as e:
            raise InvalidToken(type(e).__name__) from None
        if claims.get("typ") != TYP or not isinstance(claims.get("stream"), str):
            raise InvalidToken("not a moderator pass")
        return ModeratorPass(str(claims["sub"]), claims["stream"], int(claims["exp"]))
