"""Smoke: register, log in, create a channel and read it back."""

from __future__ import annotations

import pytest

from tests.integration.test_api_support import ApiStack, api_stack

pytestmark = pytest.mark.integration
__all__ = ["api_stack"]


async def test_register_login_channel(api_stack: ApiStack) -> None:
    user = await api_stack.register()
    created = await api_stack.command(
        "POST", "/api/v1/channels", user, {"slug": f"c-{user.username}", "display_name": "C"}
    )
    channel = await api_stack.query(f"/api/v1/channels/{created['slug']}", after=created["positions"])
    assert channel["owner_id"] == user.user_id
