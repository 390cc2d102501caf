"""The HTTP side of the node's port: /health, /metrics, and the checks made before an upgrade.

websockets answers plain HTTP through ``process_request``: a response returned here ends the
request; None lets the websocket handshake go on. Origin, per-address cap and a handshake token are
checked here, so a refused client costs one HTTP response and no connection state.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
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
from edge_ws.siblings import Siblings
from infra.net import ClientAddresses

WEBSOCKET_PATHS = ("/", "/ws")
PROMETHEUS_TEXT = "text/plain; version=0.0.4"


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
    worker: int | None = None  # this process's index among the node's workers (None: the only one)
    siblings: Siblings | None = None  # the node's other workers, whose reports /health, /metrics merge
    draining: bool = False
    identities: dict[int, Identity] = field(default_factory=dict)  # handshake token → its session

    def __call__(
        self, connection: ServerConnection, request: Request
    ) -> Response | Awaitable[Response] | None:
        path = request.path.split("?", 1)[0]
        if path == "/health":
            return self._health() if self.siblings is None else self._node_health(self.siblings)
        if path == "/metrics":
            if self.siblings is not None:
                return self._node_metrics(self.siblings)
            return respond(HTTPStatus.OK, self.exposition(), PROMETHEUS_TEXT)
        if path not in WEBSOCKET_PATHS:
            return refuse(HTTPStatus.NOT_FOUND, "not_found", "websocket at / ; GET /health, /metrics")
        refusal = self._check(connection, request)
        if refusal is not None:
            self.metrics.refused_handshakes += 1
        return refusal

    def exposition(self) -> str:
        """This process's series, labelled with the node (and the worker, on a node of several)."""
        return self.metrics.prometheus(self.node_id, self.worker)

    def _health(self, report: dict[str, Any] | None = None) -> Response:
        report = self.health() if report is None else report
        status = HTTPStatus.OK if report.get("status") == "ok" else HTTPStatus.SERVICE_UNAVAILABLE
        return respond(status, json.dumps(report))

    async def _node_health(self, siblings: Siblings) -> Response:
        return self._health(await siblings.node_health())

    async def _node_metrics(self, siblings: Siblings) -> Response:
        return respond(HTTPStatus.OK, await siblings.node_metrics(), PROMETHEUS_TEXT)

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
