"""Appointing a moderator by username (what the dashboard's form takes) as well as by user id."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.test_api_support import ApiStack, api_stack

pytestmark = pytest.mark.integration
__all__ = ["api_stack"]


async def test_appoint_by_username_or_id_and_unknown_names_are_404(api_stack: ApiStack) -> None:
    owner, by_name, by_id = [await api_stack.register() for _ in range(3)]
    channel = await api_stack.command(
        "POST", "/api/v1/channels", owner, {"slug": f"u-{uuid.uuid4().hex[:12]}", "display_name": "U"}
    )
    moderators = f"/api/v1/channels/{channel['channel_id']}/moderators"
    named = await api_stack.command("PUT", f"{moderators}/{by_name.username.upper()}", owner, expect=202)
    await api_stack.command("PUT", f"{moderators}/{by_id.user_id}", by_name, expect=403)
    numbered = await api_stack.command("PUT", f"{moderators}/{by_id.user_id}", owner, expect=202)
    detail = await api_stack.query(
        f"/api/v1/channels/{channel['channel_id']}", after=[*named["positions"], *numbered["positions"]]
    )
    assert {m["user_id"] for m in detail["moderators"]} == {by_name.user_id, by_id.user_id}
    missing = await api_stack.client.put(f"{moderators}/nobody_{uuid.uuid4().hex[:8]}", headers=owner.auth)
    assert missing.status_code == 404 and missing.json()["detail"].startswith("no user")
