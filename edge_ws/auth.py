"""Who is on a connection: verified by the access-token adapter the API uses too (``infra.tokens``).

Anonymous viewers may read; writing (chat, votes, moderation) needs a valid, unexpired token,
given at the handshake (``?token=`` or ``Authorization: Bearer``) or later in an ``auth`` message.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from infra.moderator_passes import ModeratorPass, ModeratorPasses
from infra.settings import AuthSettings
from infra.tokens import AccessClaims, AccessTokens, InvalidToken

log = logging.getLogger(__name__)

__all__ = ["Identity", "InvalidToken", "TokenCheck", "token_from_request"]


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified user on a connection."""

    user_id: str
    role: str
    expires_at: int
    name: str = ""  # display name from the token; the user id when the token carries none

    def expired(self, now: float | None = None) -> bool:
        return (now if now is not None else time.time()) >= self.expires_at

    @classmethod
    def of(cls, claims: AccessClaims) -> Identity:
        return cls(claims.user_id, claims.role, claims.expires_at, claims.name or claims.user_id)


class TokenCheck:
    """Verifies access tokens; without a configured secret every token is refused (read-only node)."""

    def __init__(self, settings: AuthSettings) -> None:
        secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        self._tokens: AccessTokens | None = None
        self._passes: ModeratorPasses | None = None
        if secret is None:
            log.warning("auth.jwt_secret is not set: the edge accepts anonymous (read-only) viewers only")
        else:
            self._tokens = AccessTokens(
                secret,
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                ttl_s=settings.access_ttl_s,
            )
            self._passes = ModeratorPasses(secret, issuer=settings.jwt_issuer, audience=settings.jwt_audience)

    def verify(self, token: str) -> Identity:
        if self._tokens is None:
            raise InvalidToken("this node has no token secret configured")
        return Identity.of(self._tokens.verify(token))

    def verify_pass(self, moderator_pass: str) -> ModeratorPass:
        """A moderator pass the API issued (``infra.moderator_passes``), or :class:`InvalidToken`."""
        if self._passes is None:
            raise InvalidToken("this node has no token secret configured")
        return self._passes.verify(moderator_pass)


def token_from_request(path: str, authorization: str | None) -> str | None:
    """The token of a handshake: ``Authorization: Bearer ...`` wins over ``?token=``."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    values = parse_qs(urlsplit(path).query).get("token")
    return values[0] if values else None
