"""Moderator passes: short-lived signed proofs, issued by the API, that a user may moderate a stream.

The edge knows no channel's moderators (it has no user store); the API does. A moderator's page asks
the API for a pass and shows it to the edge (``moderate`` frame), which then sends that connection
the stream's held messages. A pass is a JWT like an access token (HS256 pinned, ``iss``, ``aud``,
``exp`` checked, the same secret) but with ``typ: moderator_pass`` and a ``stream`` claim, so neither
can stand in for the other. It lives :data:`PASS_TTL_S`: a moderator removed from a channel keeps the
queue at most that long on a connection opened before, and gets no new pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.tokens import InvalidToken, SignedClaims

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
        self._signed = SignedClaims(
            secret, typ=TYP, issuer=issuer, audience=audience, ttl_s=ttl_s, leeway_s=0
        )
        self.ttl_s = ttl_s

    def issue(self, user_id: str, stream_id: str, *, now: float | None = None) -> str:
        """A signed pass for ``user_id`` on ``stream_id``."""
        return self._signed.sign(user_id, {"stream": stream_id}, now=now)

    def verify(self, token: str) -> ModeratorPass:
        """The pass's claims, or :class:`InvalidToken` (never a PyJWT exception)."""
        claims = self._signed.verify(token)
        if not isinstance(claims.get("stream"), str):
            raise InvalidToken("not a moderator pass")
        return ModeratorPass(str(claims["sub"]), claims["stream"], int(claims["exp"]))
