"""Remembered access tokens (producers.auth.verified_tokens): a verified token is answered from memory
until its ``exp``, then verified again; a bad token is never remembered."""

from __future__ import annotations

import time

import pytest

from infra.tokens import AccessClaims, AccessTokens, InvalidToken
from producers.auth import verified_tokens
from producers.auth.verified_tokens import RememberedTokens

SECRET = "s" * 64
OPTIONS = {"issuer": "esports-live", "audience": "esports-live", "ttl_s": 60}


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(verified_tokens, "time", fake)
    return fake


def test_a_verified_token_is_remembered_until_it_expires(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = RememberedTokens(SECRET, **OPTIONS)  # type: ignore[arg-type]
    full: list[str] = []
    original = AccessTokens.verify

    def counted(self: AccessTokens, token: str) -> AccessClaims:
        full.append(token)
        return original(self, token)

    monkeypatch.setattr(AccessTokens, "verify", counted)
    token = tokens.issue("u1", "streamer", name="U One")
    first = tokens.verify(token)
    assert tokens.verify(token) == first and first.user_id == "u1" and first.role == "streamer"
    assert len(full) == 1
    clock.now = first.expires_at  # at exp it is verified afresh (PyJWT's leeway then decides)
    tokens.verify(token)
    assert len(full) == 2


def test_bad_tokens_are_never_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = RememberedTokens(SECRET, **OPTIONS)  # type: ignore[arg-type]
    other = RememberedTokens("o" * 64, **OPTIONS)  # type: ignore[arg-type]
    forged = other.issue("u1", "admin")
    expired = tokens.issue("u1", "viewer", now=time.time() - 3600)
    for bad in (forged, expired, "not-a-token"):
        for _ in range(2):
            with pytest.raises(InvalidToken):
                tokens.verify(bad)
    assert tokens._verified == {}


def test_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RememberedTokens, "MAX_REMEMBERED", 3)
    tokens = RememberedTokens(SECRET, **OPTIONS)  # type: ignore[arg-type]
    issued = [tokens.issue(f"u{i}", "viewer") for i in range(7)]
    assert [tokens.verify(t).user_id for t in issued] == [f"u{i}" for i in range(7)]
    assert len(tokens._verified) <= 3
