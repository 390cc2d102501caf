"""Request limits: the body limit and per-user action rates.

:class:`BodyLimitMiddleware` (settings.api.max_body_bytes): larger bodies get a 413 problem before any
route runs. The body is read here once, bounded, and handed on (also to the idempotency layer, which
hashes it).

:class:`ActionRate`: at most so many actions per subject (a user) per fixed window, counted in Redis
by the same fixed-window counters as failed logins (:class:`~producers.auth.login_limiter.FailureWindow`);
a route over the limit answers 429 with ``Retry-After`` (clip requests: settings.api.clips_per_minute).
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infra.redis import RedisClient
from producers.auth.login_limiter import FailureWindow
from producers.idempotency import BODY_SCOPE_KEY
from producers.problems import problem_response

__all__ = ["ActionRate", "BodyLimitMiddleware"]

_WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class BodyLimitMiddleware:
    """Refuses bodies over ``max_bytes`` with 413, whether announced by Content-Length or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _WITH_BODY:
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._too_large(scope, receive, send)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body.extend(message.get("body", b""))
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
        scope[BODY_SCOPE_KEY] = bytes(body)
        await self.app(scope, _replay(bytes(body), receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            413,
            code="body-too-large",
            detail=f"request bodies are limited to {self.max_bytes} bytes",
            instance=scope["path"],
        )
        await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


class ActionRate:
    """At most ``per_window`` actions of ``kind`` per subject in each fixed window of ``window_s``
    (a :class:`FailureWindow` counting every action, not failures)."""

    def __init__(
        self, client: RedisClient, *, prefix: str, kind: str, per_window: int, window_s: int
    ) -> None:
        self._window = FailureWindow(client, prefix=prefix, kind=kind, limit=per_window, window_s=window_s)

    async def take(self, subject: str) -> int:
        """Count one action of ``subject``: 0 if it may go on, else the seconds until its window ends."""
        # Judged by the count its own INCR returned: of a burst sent at once exactly the first
        # per_window go on (reading the count afterwards would let none of them, and reading it
        # before counting would let them all). A refused action counts too; the window is fixed
        # (EXPIRE NX), so its end releases the subject whatever it kept sending.
        (count,) = await self._window.record(subject)
        if count <= self._window.limit:
            return 0
        return max(await self._window.blocked_for(subject), 1)
