"""``Idempotency-Key`` on POST: the same key, caller and route replay the stored response.

A pure ASGI middleware: the first request with a key reserves a row (so a concurrent duplicate
gets 409 instead of running twice), runs, and stores its response when it is final (2xx, a 422
the same body will always get, or a 503 whose command Kafka may still record: see
:data:`~producers.problems.OUTCOME_UNKNOWN_HEADER`); other outcomes (a 503 that recorded nothing)
free the key so a retry runs again. The same key
with a different body is a client bug: 422. Keys live 24 hours.

A route whose response holds a secret (the stream-key rotation) sets :data:`DO_NOT_STORE_HEADER`:
only the fact that the key was used is kept, and a replay answers 409 instead of the secret.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infra.postgres import DatabaseError
from infra.tokens import InvalidToken
from producers.problems import OUTCOME_UNKNOWN_HEADER, problem_response
from producers.store import translated

log = logging.getLogger(__name__)

DO_NOT_STORE_HEADER = "X-Idempotency-Store"
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")
TTL = "24 hours"
IN_FLIGHT_TIMEOUT = "60 seconds"
BODY_SCOPE_KEY = "esports.body"


@dataclass(frozen=True, slots=True)
class Stored:
    """What the store holds for a key: the outcome of the first request (status None = still running)."""

    request_hash: str
    status: int | None
    content_type: str | None
    body: bytes | None
    replayable: bool


class IdempotencyStore:
    """Rows of ``idempotency_keys``."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def reserve(self, key: str, user: str, route: str, request_hash: str) -> Stored | None:
        """Reserve the key for this request (None), or return what an earlier request stored."""
        with translated("reserving an idempotency key"):
            async with self._pool.connection() as conn:
                await conn.execute(
                    "DELETE FROM idempotency_keys WHERE idem_key = %s AND user_id = %s AND route = %s"
                    f" AND (created_at < now() - interval '{TTL}'"
                    f" OR (status IS NULL AND created_at < now() - interval '{IN_FLIGHT_TIMEOUT}'))",
                    (key, user, route),
                )
                cur = await conn.execute(
                    "INSERT INTO idempotency_keys (idem_key, user_id, route, request_hash)"
                    " VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT DO NOTHING RETURNING 1",
                    (key, user, route, request_hash),
                )
                if await cur.fetchone():
                    return None
                cur = await conn.execute(
                    "SELECT request_hash, status, content_type, body, replayable FROM idempotency_keys"
                    " WHERE idem_key = %s AND user_id = %s AND route = %s",
                    (key, user, route),
                )
                row = await cur.fetchone()
        return Stored(*row) if row else Stored(request_hash, None, None, None, True)

    async def complete(
        self, key: str, user: str, route: str, status: int, content_type: str | None, body: bytes | None
    ) -> None:
        with translated("storing an idempotent response"):
            async with self._pool.connection() as conn:
                await conn.execute(
                    "UPDATE idempotency_keys SET status = %s, content_type = %s, body = %s, replayable = %s"
                    " WHERE idem_key = %s AND user_id = %s AND route = %s",
                    (status, content_type, body, body is not None, key, user, route),
                )

    async def release(self, key: str, user: str, route: str) -> None:
        with translated("releasing an idempotency key"):
            async with self._pool.connection() as conn:
                await conn.execute(
                    "DELETE FROM idempotency_keys WHERE idem_key = %s AND user_id = %s AND route = %s",
                    (key, user, route),
                )

    async def purge(self) -> int:
        """Delete keys older than 24 hours; returns how many."""
        with translated("purging idempotency keys"):
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    f"DELETE FROM idempotency_keys WHERE created_at < now() - interval '{TTL}'"
                )
                return cur.rowcount


def _storable(status: int) -> bool:
    return 200 <= status < 300 or status == 422


class IdempotencyMiddleware:
    """Honours ``Idempotency-Key`` on every POST (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        key = headers.get("idempotency-key")
        if key is None:
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if not KEY_PATTERN.match(key):
            bad = problem_response(
                400, code="invalid-idempotency-key", detail="1-255 printable ASCII characters", instance=path
            )
            await bad(scope, receive, send)
            return
        services = scope["app"].state.services
        user = _caller(services, headers)
        body: bytes = scope.get(BODY_SCOPE_KEY, b"")
        store = IdempotencyStore(services.pool)
        try:
            await self._handle(scope, receive, send, store, (key, user, f"POST {path}"), body)
        except DatabaseError as e:
            log.warning("idempotency store unavailable on %s: %s", path, e)
            await problem_response(
                503, code="service-unavailable", instance=path, headers={"Retry-After": "1"}
            )(scope, receive, send)

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        store: IdempotencyStore,
        ident: tuple[str, str, str],
        body: bytes,
    ) -> None:
        request_hash = hashlib.sha256(body).hexdigest()
        stored = await store.reserve(*ident, request_hash)
        if stored is not None:
            await _answer_from(stored, request_hash, scope["path"])(scope, receive, send)
            return
        captured = _Capture(send)
        try:
            await self.app(scope, receive, captured.send)
        except BaseException:
            await store.release(*ident)
            raise
        if captured.status is not None and (_storable(captured.status) or captured.outcome_unknown):
            kept = None if captured.secret else bytes(captured.body)
            await store.complete(*ident, captured.status, captured.content_type, kept)
        else:
            await store.release(*ident)


class _Capture:
    """Forwards the response and keeps a copy of its status, type and body."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status: int | None = None
        self.content_type: str | None = None
        self.secret = False
        self.outcome_unknown = False
        self.body = bytearray()

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            kept = []
            for name, value in message.get("headers", []):
                lowered = name.lower()
                if lowered == DO_NOT_STORE_HEADER.lower().encode():
                    self.secret = True
                    continue
                if lowered == OUTCOME_UNKNOWN_HEADER.lower().encode():
                    self.outcome_unknown = True
                    continue
                if lowered == b"content-type":
                    self.content_type = value.decode("latin-1")
                kept.append((name, value))
            message = {**message, "headers": kept}
        elif message["type"] == "http.response.body":
            self.body.extend(message.get("body", b""))
        await self._send(message)


def _answer_from(stored: Stored, request_hash: str, path: str) -> ASGIApp:
    if stored.request_hash != request_hash:
        return problem_response(
            422,
            code="idempotency-key-reused",
            detail="this Idempotency-Key was used with a different request body",
            instance=path,
        )
    if stored.status is None:
        return problem_response(
            409,
            code="request-in-progress",
            detail="a request with this Idempotency-Key is still running",
            instance=path,
            headers={"Retry-After": "1"},
        )
    if not stored.replayable:
        return problem_response(
            409,
            code="secret-not-replayed",
            detail="this response held a secret shown only once; rotate again with a new Idempotency-Key",
            instance=path,
        )
    return _Replay(stored)


class _Replay:
    def __init__(self, stored: Stored) -> None:
        self._stored = stored

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"idempotent-replayed", b"true")]
        if self._stored.content_type:
            headers.append((b"content-type", self._stored.content_type.encode("latin-1")))
        body = self._stored.body or b""
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": self._stored.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _caller(services: object, headers: Headers) -> str:
    """The user id of a valid bearer token, else "" (anonymous: register, login, bad tokens)."""
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return ""
    try:
        return services.tokens.verify(token.strip()).user_id  # type: ignore[attr-defined]
    except InvalidToken:
        return ""


__all__ = ["DO_NOT_STORE_HEADER", "IdempotencyMiddleware", "IdempotencyStore"]
