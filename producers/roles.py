"""Platform role changes, shared by the admin route and the `esports users role` bootstrap command."""

from __future__ import annotations

from events.users import UserRole, UserRoleChanged
from infra.kafka import KafkaError
from producers.commands import Receipt, nothing_recorded
from producers.services import Services
from producers.store.accounts import Credential


async def change_role(services: Services, account: Credential, role: str, *, changed_by: str) -> Receipt:
    """Store the new role on the command side, then publish it; undo the store if the broker refuses."""
    await services.accounts.set_role(account.user_id, role)
    event = UserRoleChanged(
        user_id=account.user_id,
        role=UserRole(role),
        previous_role=UserRole(account.role),
        changed_by=changed_by,
    )
    try:
        return await services.bus.publish(event)
    except KafkaError as e:
        if nothing_recorded(e):  # in doubt the new role stays: the change may be in the log
            await services.accounts.set_role(account.user_id, account.role)
        raise


async def grant(services: Services, username: str, role: str) -> Receipt | None:
    """The bootstrap path for the first admin (no admin exists to call the route): None if no such user."""
    account = await services.accounts.by_username(username)
    if account is None:
        return None
    return await change_role(services, account, role, changed_by="cli")
