"""Errors as RFC 9457 problem details (``application/problem+json``), for every failure the API answers.

Routes raise :class:`ApiProblem` subclasses (guard clauses before any event exists); the handlers
installed by :func:`install_problem_handlers` turn those, Starlette's HTTP errors (404, 405),
validation errors (422) and the adapters' unavailability errors (503) into one JSON shape. Kafka's
503 carries ``Retry-After`` (``api.retry_after_s``) and says whether the command may have been recorded
(type ``/problems/outcome-unknown``) or certainly was not (``/problems/service-unavailable``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from infra.kafka import KafkaError, PublishInDoubt
from infra.postgres import DatabaseError
from infra.redis import CacheError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
# Set (and stripped) on an answer whose command may or may not be recorded: the idempotency layer
# keeps it, so a retry with the same Idempotency-Key gets it again instead of running twice.
OUTCOME_UNKNOWN_HEADER = "X-Idempotency-Outcome"


class Problem(BaseModel):
    """An RFC 9457 problem: what went wrong, in a shape every client can parse."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "/problems/not-found",
                    "title": "Not found",
                    "status": 404,
                    "detail": "no stream 6f1c...",
                    "instance": "/api/v1/streams/6f1c...",
                }
            ]
        }
    )

    type: str = Field("about:blank", description="URI reference naming the problem type.")
    title: str = Field(description="Short, human-readable summary of the problem type.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field("", description="Explanation specific to this occurrence.")
    instance: str = Field("", description="The request path this occurrence happened on.")
    errors: list[dict[str, Any]] | None = Field(None, description="Validation errors, field by field.")


class ApiProblem(Exception):
    """Base of the API's domain errors; each subclass fixes a status, a type and a title."""

    status = 400
    code = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str = "", *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


class Unauthorized(ApiProblem):
    status, code, title = 401, "unauthorized", "Authentication required"


class Forbidden(ApiProblem):
    status, code, title = 403, "forbidden", "Not allowed"


class NotFound(ApiProblem):
    status, code, title = 404, "not-found", "Not found"


class Conflict(ApiProblem):
    status, code, title = 409, "conflict", "Conflict with the current state"


class IllegalTransition(Conflict):
    code, title = "illegal-transition", "Transition not allowed from the current state"


class Unprocessable(ApiProblem):
    status, code, title = 422, "unprocessable", "Request not processable"


class TooManyRequests(ApiProblem):
    status, code, title = 429, "too-many-requests", "Too many requests"

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after_s))})


class ServiceUnavailable(ApiProblem):
    status, code, title = 503, "service-unavailable", "A dependency is unavailable"


_TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Request not processable",
    429: "Too many requests",
    500: "Internal server error",
    503: "A dependency is unavailable",
}


def problem_body(
    status: int, *, code: str | None = None, title: str | None = None, detail: str = "", instance: str = ""
) -> dict[str, Any]:
    return {
        "type": f"/problems/{code}" if code else "about:blank",
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": instance,
    }


def problem_response(
    status: int,
    *,
    code: str | None = None,
    title: str | None = None,
    detail: str = "",
    instance: str = "",
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    body = problem_body(status, code=code, title=title, detail=detail, instance=instance)
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entry documenting a route's error statuses as problem+json."""
    return {
        status: {
            "model": Problem,
            "description": _TITLES.get(status, "Error"),
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Never echo `input`: it can be a password or a token.
    return [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type", "")}
        for e in exc.errors()
    ]


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiProblem)
    return problem_response(
        exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        instance=request.url.path,
        headers=exc.headers,
    )


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else ""
    return problem_response(
        exc.status_code,
        detail=detail,
        instance=request.url.path,
        headers=dict(exc.headers) if exc.headers else None,
    )


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return problem_response(
        422,
        code="validation",
        title="Request validation failed",
        detail="the request does not match the schema",
        instance=request.url.path,
        errors=_validation_errors(exc),
    )


async def _on_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("dependency unavailable on %s %s: %s", request.method, request.url.path, exc)
    retriable = bool(getattr(exc, "retriable", False))
    return problem_response(
        503,
        code="service-unavailable",
        detail="a dependency is unavailable; retry later"
        if retriable
        else "a dependency refused the request",
        instance=request.url.path,
        headers={"Retry-After": "1"} if retriable else None,
    )


def _on_kafka_unavailable(retry_after_s: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    """Kafka errors: a retriable one (the broker did not answer in time) is a 503 with ``Retry-After``
    and says whether anything may have been recorded; a refusal is a 503 without it."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        if not getattr(exc, "retriable", False):
            return await _on_unavailable(request, exc)
        log.warning("Kafka unavailable on %s %s: %s", request.method, request.url.path, exc)
        in_doubt = isinstance(exc, PublishInDoubt)
        return problem_response(
            503,
            code="outcome-unknown" if in_doubt else "service-unavailable",
            title="Outcome unknown: Kafka stalled while recording the command" if in_doubt else None,
            detail=_IN_DOUBT if in_doubt else _NOT_RECORDED,
            instance=request.url.path,
            headers={
                "Retry-After": str(retry_after_s),
                **({OUTCOME_UNKNOWN_HEADER: "unknown"} if in_doubt else {}),
            },
        )

    return handler


_NOT_RECORDED = (
    "the event log (Kafka) did not answer in time; nothing was recorded, now or later: retry after "
    "Retry-After seconds (with the same Idempotency-Key)"
)
_IN_DOUBT = (
    "the event log (Kafka) stalled after receiving part of the command; it may still be recorded: "
    "read its outcome before repeating it with a new Idempotency-Key (this one keeps this answer)"
)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(500, code="internal", instance=request.url.path)


def install_problem_handlers(app: FastAPI, *, kafka_retry_after_s: int = 1) -> None:
    """Route every error the app can raise to a problem+json answer."""
    app.add_exception_handler(ApiProblem, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(KafkaError, _on_kafka_unavailable(kafka_retry_after_s))
    for unavailable in (DatabaseError, CacheError):
        app.add_exception_handler(unavailable, _on_unavailable)
    app.add_exception_handler(Exception, _on_unexpected)
