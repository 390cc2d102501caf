"""Users: the current user, public profiles, and role changes by admins."""

from __future__ import annotations

from fastapi import APIRouter, Path, status

from events.users import UserPreferencesUpdated
from producers import roles
from producers.deps import CurrentAdmin, CurrentUser, ReadYourWrites, ServicesDep
from producers.models.accounts import PreferencesIn, PreferencesOut, RoleChangeRequest, UserOut
from producers.models.common import ID_PATTERN, Accepted
from producers.problems import NotFound, documented
from producers.routes import API_PREFIX, accepted

router = APIRouter(prefix=API_PREFIX, tags=["accounts"], dependencies=[ReadYourWrites])


@router.get("/me", response_model=UserOut, responses=documented(401))
async def me(user: CurrentUser, services: ServicesDep) -> UserOut:
    """The authenticated user."""
    account = await services.accounts.by_id(user.user_id)
    if account is None:
        raise NotFound("no such user")
    return UserOut(
        user_id=account.user_id,
        username=account.username,
        display_name=account.display_name,
        role=account.role,
        created_at=account.created_at,
    )


@router.get("/me/preferences", response_model=PreferencesOut, responses=documented(401, 404))
async def my_preferences(user: CurrentUser, services: ServicesDep) -> PreferencesOut:
    """Your viewing preferences (spoiler-free mode); send `X-Min-Position` to read your own change."""
    row = await services.catalog.user(user.user_id)
    if row is None:
        raise NotFound("no such user")
    return PreferencesOut(spoiler_free=bool(row.get("spoiler_free")))


@router.patch(
    "/me/preferences",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=documented(401, 422, 503),
)
async def set_my_preferences(body: PreferencesIn, user: CurrentUser, services: ServicesDep) -> Accepted:
    """Set your viewing preferences (an event on `users`; pages and the API then hide results)."""
    event = UserPreferencesUpdated(user_id=user.user_id, spoiler_free=body.spoiler_free)
    return Accepted(**accepted(await services.bus.publish(event)))


@router.get("/users/{user_id}", response_model=UserOut, responses=documented(404))
async def get_user(services: ServicesDep, user_id: str = Path(pattern=ID_PATTERN)) -> UserOut:
    """A user's public profile."""
    row = await services.catalog.user(user_id)
    if row is None:
        raise NotFound(f"no user {user_id}")
    return UserOut.model_validate(row)


@router.patch(
    "/users/{user_id}/role",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=documented(401, 403, 404, 422, 503),
)
async def change_role(
    body: RoleChangeRequest,
    admin: CurrentAdmin,
    services: ServicesDep,
    user_id: str = Path(pattern=ID_PATTERN),
) -> Accepted:
    """Set a user's platform role (admins only)."""
    account = await services.accounts.by_id(user_id)
    if account is None:
        raise NotFound(f"no user {user_id}")
    receipt = await roles.change_role(services, account, body.role, changed_by=admin.user_id)
    return Accepted(**accepted(receipt))
