"""Access tokens the API has already verified, remembered until they expire.

A client sends the same access token with every command for its whole life (15 minutes by default),
and verifying it (HS256 over a base64 JSON payload, PyJWT's claim checks) cost about a tenth of a
``POST /streams``, profiled. Tokens are never revoked before their ``exp`` (logout revokes refresh
tokens), so a token verified once stays valid until then: a remembered one is answered without
verifying it again while ``exp`` is in the future, and verified afresh (and refused) after.
"""

from __future__ import annotations

import time

from infra.tokens import AccessClaims, AccessTokens


class RememberedTokens(AccessTokens):
    """:class:`~infra.tokens.AccessTokens` that remember each token they verified, keyed by the exact
    token, until its ``exp``; forged, foreign or expired tokens are never remembered."""

    MAX_REMEMBERED = 4096  # tokens; when full, forgotten all at once (each is then verified again)

    def __init__(self, secret: str, *, issuer: str, audience: str, ttl_s: int, leeway_s: int = 5) -> None:
        super().__init__(secret, issuer=issuer, audience=audience, ttl_s=ttl_s, leeway_s=leeway_s)
        self._verified: dict[str, AccessClaims] = {}

    def verify(self, token: str) -> AccessClaims:
        """The token's claims, or :class:`~infra.tokens.InvalidToken` (see :class:`AccessTokens`)."""
        claims = self._verified.get(token)
        if claims is not None and time.time() < claims.expires_at:
            return claims
        claims = super().verify(token)  # raises for a bad or expired token: nothing remembered
        if len(self._verified) >= self.MAX_REMEMBERED:
            self._verified.clear()
        self._verified[token] = claims
        return claims
