"""FastAPI dependencies as ``Annotated`` aliases: the services, the current user, paging, read-your-writes."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Literal

from fastapi import Depends, Header, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from infra.net import ClientAddresses
from infra.tokens import InvalidToken
from producers.consistency import InvalidPosition, parse_positions, wait_for_positions
from producers.pagination import CURSOR_PATTERN, DEFAULT_LIMIT, MAX_LIMIT
from producers.problems import ApiProblem, Forbidden, Unauthorized
from producers.services import Services
from producers.spoilers import HIDE, MAX_REVEALED, SHOW, SpoilerView, view_of

_bearer = HTTPBearer(auto_error=False, description="An access token from /api/v1/auth/login.")
_internal_bearer = HTTPBearer(
    auto_error=False, scheme_name="InternalToken", description="settings.auth.internal_token (ingest hooks)."
)


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_services(request: Request) -> Services:
    """The process's services (async: FastAPI would run a plain ``def`` dependency in a thread)."""
    return _services(request)


ServicesDep = Annotated[Services, Depends(get_services)]


@lru_cache(maxsize=8)
def _client_addresses(trusted_proxies: tuple[str, ...]) -> ClientAddresses:
    return ClientAddresses(trusted_proxies)


async def client_ip(request: Request, services: ServicesDep) -> str:
    """The caller's address for per-IP limits (X-Forwarded-For only from ``api.trusted_proxies``)."""
    peer = request.client.host if request.client else "unknown"
    addresses = _client_addresses(tuple(services.settings.api.trusted_proxies))
    return addresses.resolve(peer, request.headers.getlist("x-forwarded-for"))


ClientIp = Annotated[str, Depends(client_ip)]


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller, with the role the command side holds now (not the token's copy)."""

    user_id: str
    username: str
    display_name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _unauthorized(detail: str) -> Unauthorized:
    return Unauthorized(detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


async def current_user(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The caller named by a valid access token; 401 otherwise."""
    # The services from the request, not ServicesDep: one sub-dependency fewer to solve per command.
    services = _services(request)
    if credentials is None:
        raise Unauthorized("an access token is required", headers={"WWW-Authenticate": "Bearer"})
    try:
        claims = services.tokens.verify(credentials.credentials)
    except InvalidToken:
        raise _unauthorized("the access token is invalid or expired") from None
    account = await services.accounts.by_id(claims.user_id)
    if account is None:
        raise _unauthorized("the account no longer exists")
    return Principal(account.user_id, account.username, account.display_name, account.role)


CurrentUser = Annotated[Principal, Depends(current_user)]


_optional_bearer = HTTPBearer(auto_error=False, description="An access token (optional: anonymous viewers).")
OptionalCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_optional_bearer)]


def optional_user_id(
    services: Services, credentials: HTTPAuthorizationCredentials | None, *, anonymously: str
) -> str | None:
    """The user id of an optional token (None without one); 401 for a token that is bad, whose detail
    says what sending none does instead (``anonymously``: "beat anonymously", "read anonymously")."""
    if credentials is None:
        return None
    try:
        return services.tokens.verify(credentials.credentials).user_id
    except InvalidToken:
        raise _unauthorized(f"the access token is invalid or expired (send none to {anonymously})") from None


async def current_admin(user: CurrentUser) -> Principal:
    if not user.is_admin:
        raise Forbidden("admins only")
    return user


CurrentAdmin = Annotated[Principal, Depends(current_admin)]


async def internal_caller(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_internal_bearer)],
) -> None:
    """Internal endpoints accept only the shared internal token, compared in constant time."""
    expected = services.internal_token.encode()
    presented = credentials.credentials.encode() if credentials else b""
    if not expected or not hmac.compare_digest(presented, expected):
        raise Unauthorized("internal endpoint", headers={"WWW-Authenticate": "Bearer"})


InternalCaller = Annotated[None, Depends(internal_caller)]


async def spoiler_view(
    request: Request,
    spoilers: Annotated[
        Literal["hide", "show"] | None,
        Query(
            description=f"`{HIDE}`: scores, winners and end times hidden (spoiler-free); `{SHOW}`: shown. "
            "Default: the caller's own setting (PATCH /api/v1/me/preferences), else shown."
        ),
    ] = None,
    reveal: Annotated[
        list[str] | None,
        Query(
            max_length=MAX_REVEALED,
            description="A match whose result to show even in spoiler-free mode (repeatable).",
        ),
    ] = None,
) -> SpoilerView:
    """What this caller may see of match results; a missing or bad token just means "logged out".

    The token is read from the header rather than declared (HTTPBearer): these views are public, and
    a declared security scheme would tell clients (and the auth matrix) that they need one."""
    user_setting = False
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if spoilers is None and scheme.lower() == "bearer" and token:
        services = _services(request)
        try:
            claims = services.tokens.verify(token.strip())
        except InvalidToken:
            claims = None
        row = await services.catalog.user(claims.user_id) if claims else None
        user_setting = bool(row and row.get("spoiler_free"))
    return view_of(spoilers, reveal or (), user_setting=user_setting)


SpoilerViewDep = Annotated[SpoilerView, Depends(spoiler_view)]

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Page size (max {MAX_LIMIT}).")]
Cursor = Annotated[
    str | None, Query(pattern=CURSOR_PATTERN, description="`next_cursor` of the previous page.")
]
DEFAULT_PAGE = DEFAULT_LIMIT


async def read_your_writes(
    request: Request,
    response: Response,
    x_min_position: Annotated[
        list[str] | None,
        Header(
            description="`topic:partition:offset` from a command's response (repeatable or comma separated): "
            "the answer waits, bounded, until the read model includes it.",
            examples=["streams:2:1041"],
        ),
    ] = None,
) -> None:
    """Wait until the read model has reached every position the client names (or mark the answer stale)."""
    # The services from the request, not ServicesDep: this runs on nearly every routed request, and
    # each sub-dependency costs FastAPI a solve per request even when its value is cached.
    if not x_min_position:
        return
    services = _services(request)
    try:
        positions = parse_positions(x_min_position)
    except InvalidPosition as e:
        raise ApiProblem(str(e)) from None
    reached = await wait_for_positions(
        services.pool,
        positions,
        services.settings.api.read_your_writes_timeout_s,
        schema=services.namespace.read_schema,
    )
    if not reached:
        response.headers["X-Read-Model-Lag"] = "stale"


ReadYourWrites = Depends(read_your_writes)


def names_positions(request: Request) -> bool:
    """Whether the request names log positions: a route with a cached read then reads afresh (after
    its router's ReadYourWrites waited for them). Read from the header rather than declared again as a
    parameter, since FastAPI solves a repeated dependency's own parameters again on every request."""
    return "x-min-position" in request.headers
