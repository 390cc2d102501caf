"""Accounts: register, login, refresh (rotating), logout."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Response, status

from events.base import utc_now
from events.users import UserRegistered, UserRole
from infra.kafka import KafkaError
from infra.tokens import new_refresh_token, token_hash
from producers.commands import nothing_recorded
from producers.deps import ClientIp, ServicesDep
from producers.idempotency import DO_NOT_STORE_HEADER
from producers.models.accounts import LoginRequest, RefreshRequest, Registered, RegisterRequest, TokenPair
from producers.problems import Conflict, TooManyRequests, Unauthorized, documented
from producers.routes import API_PREFIX, accepted
from producers.services import Services
from producers.store.accounts import Credential, RefreshRejected

router = APIRouter(prefix=API_PREFIX + "/auth", tags=["accounts"])


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=Registered,
    responses=documented(409, 422, 503),
)
async def register(body: RegisterRequest, services: ServicesDep) -> Registered:
    """Create an account (role viewer); the username is unique."""
    user_id, now = str(uuid.uuid4()), utc_now()
    display_name = body.display_name or body.username
    password_hash = await services.passwords.hash(body.password)
    credential = Credential(user_id, body.username, display_name, password_hash, "viewer", now)
    if not await services.accounts.create(credential):
        raise Conflict(f"the username {body.username!r} is taken")
    event = UserRegistered(
        user_id=user_id,
        username=body.username,
        display_name=display_name,
        role=UserRole.VIEWER,
        occurred_at=now,
    )
    try:
        receipt = await services.bus.publish(event)
    except KafkaError as e:
        if nothing_recorded(e):  # the name is free again; in doubt it stays taken (one event per name)
            await services.accounts.delete(user_id)
        raise  # 503 with Retry-After (producers.problems)
    return Registered(**accepted(receipt), user_id=user_id, username=body.username)


@router.post("/login", response_model=TokenPair, responses=documented(401, 422, 429, 503))
async def login(body: LoginRequest, ip: ClientIp, response: Response, services: ServicesDep) -> TokenPair:
    """Exchange a username and password for tokens (failed attempts are rate limited)."""
    wait_s = await services.limiter.blocked_for(body.username, ip)
    if wait_s:
        raise TooManyRequests("too many failed logins; try again later", wait_s)
    account = await services.accounts.by_username(body.username)
    verified = await services.passwords.verify(account.password_hash if account else None, body.password)
    if account is None or not verified:
        await services.limiter.record_failure(body.username, ip)
        raise Unauthorized("wrong username or password")
    await services.limiter.record_success(body.username, ip)
    refresh = new_refresh_token()
    _holds_secrets(response)
    await services.accounts.store_refresh(
        token_hash(refresh), uuid.uuid4().hex, account.user_id, _refresh_expiry(services)
    )
    return _token_pair(services, account, refresh)


@router.post("/refresh", response_model=TokenPair, responses=documented(401, 422, 503))
async def refresh(body: RefreshRequest, response: Response, services: ServicesDep) -> TokenPair:
    """Rotate a refresh token: it is spent, and a new pair is issued (reuse revokes the login)."""
    new = new_refresh_token()
    try:
        user_id = await services.accounts.rotate_refresh(
            token_hash(body.refresh_token), token_hash(new), _refresh_expiry(services)
        )
    except RefreshRejected as e:
        raise Unauthorized(str(e)) from None
    account = await services.accounts.by_id(user_id)
    if account is None:
        raise Unauthorized("the account no longer exists")
    _holds_secrets(response)
    return _token_pair(services, account, new)


@router.post(
    "/logout", status_code=status.HTTP_204_NO_CONTENT, response_class=Response, responses=documented(422, 503)
)
async def logout(body: RefreshRequest, services: ServicesDep) -> Response:
    """Revoke the login a refresh token belongs to (access tokens expire on their own)."""
    await services.accounts.revoke_family_of(token_hash(body.refresh_token))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _holds_secrets(response: Response) -> None:
    """Tokens are never cached by intermediaries nor kept by the idempotency layer."""
    response.headers["Cache-Control"] = "no-store"
    response.headers[DO_NOT_STORE_HEADER] = "secret"


def _refresh_expiry(services: Services) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=services.settings.auth.refresh_ttl_s)


def _token_pair(services: Services, account: Credential, refresh_token: str) -> TokenPair:
    return TokenPair(
        access_token=services.tokens.issue(account.user_id, account.role, name=account.display_name),
        expires_in=services.tokens.ttl_s,
        refresh_token=refresh_token,
        user_id=account.user_id,
        role=account.role,
    )
