"""Accounts' security: argon2id passwords, pinned HS256 access tokens, opaque refresh tokens,
and the failed-login limiter."""
