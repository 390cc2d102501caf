"""The HTTP side of the node's port: /health, /metrics, and the checks made before an upgrade.

websockets answers plain HTTP through ``process_request``: a response returned here ends the
request; None lets the websocket handshake go on. Origin, per-address cap and a handshake token are
checked here, so a refused client costs one HTTP response and no connection state.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from edge_ws.auth import Identity, InvalidToken, TokenCheck, token_from_request
from edge_ws.limits import AddressCap
from edge_ws.metrics import Metrics
from infra.net import ClientAddresses

WEBSOCKET_PATHS = ("/", "/ws")


def allowed_origins(cors_origins: list[str], public_url: str) -> frozenset[str]:
    """The API's CORS origins plus the origin of its public URL (the pages that open the socket)."""
    parts = urlsplit(public_url)
    return frozenset([*(o.rstrip("/") for o in cors_origins), f"{parts.scheme}://{parts.netloc}"])


def respond(status: HTTPStatus, body: str, content_type: str = "application/json") -> Response:
    headers = Headers([("Content-Type", content_type), ("Cache-Control", "no-store")])
    return Response(status.value, status.phrase, headers, body.encode())


def refuse(status: HTTPStatus, code: str, message: str) -> Response:
    return respond(status, json.dumps({"error": code, "message": message}))


@dataclass(slots=True)
class Gate:
    """Decides each HTTP request on the node's port."""

    origins: frozenset[str]
    cap: AddressCap
    tokens: TokenCheck
    metrics: Metrics
    health: Callable[[], dict[str, Any]]
    node_id: str
    addresses: ClientAddresses = field(default_factory=ClientAddresses)
    draining: bool = False
    identities: dict[int, Identity] = field(default_factory=dict)  # handshake token → its session

    def __call__(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/health":
            return self._health()
        if path == "/metrics":
            return respond(HTTPStatus.OK, self.metrics.prometheus(self.node_id), "text/plain; version=0.0.4")
        if path not in WEBSOCKET_PATHS:
            return refuse(HTTPStatus.NOT_FOUND, "not_found", "websocket at / ; GET /health, /metrics")
        refusal = self._check(connection, request)
        if refusal is not None:
            self.metrics.refused_handshakes += 1
        return refusal

    def _health(self) -> Response:
        report = self.health()
        status = HTTPStatus.OK if report.get("status") == "ok" else HTTPStatus.SERVICE_UNAVAILABLE
        return respond(status, json.dumps(report))

    def _check(self, connection: ServerConnection, request: Request) -> Response | None:
        if self.draining:
            return refuse(
                HTTPStatus.SERVICE_UNAVAILABLE, "draining", "this node is shutting down; use another"
            )
        origin = request.headers.get("Origin")
        # Browsers always send Origin; a client without one is not a page another site could abuse.
        if origin is not None and origin.rstrip("/") not in self.origins:
            return refuse(HTTPStatus.FORBIDDEN, "forbidden_origin", f"origin {origin} is not allowed")
        if self.cap.full(self.address_of(connection, request)):
            return refuse(
                HTTPStatus.TOO_MANY_REQUESTS, "too_many_connections", "connection limit per address"
            )
        token = token_from_request(request.path, request.headers.get("Authorization"))
        if token is None:
            return None
        try:
            self.identities[id(connection)] = self.tokens.verify(token)
        except InvalidToken:
            return refuse(HTTPStatus.UNAUTHORIZED, "unauthorized", "invalid or expired token")
        return None

    def identity_of(self, connection: ServerConnection) -> Identity | None:
        return self.identities.pop(id(connection), None)

    def address_of(self, connection: ServerConnection, request: Request | None = None) -> str:
        """The client's address: the peer's, or X-Forwarded-For's behind a trusted proxy."""
        remote = connection.remote_address
        peer = str(remote[0]) if remote else "unknown"
        request = request or connection.request
        forwarded = request.headers.get_all("X-Forwarded-For") if request is not None else []
        return self.addresses.resolve(peer, forwarded)
