"""Tournaments and matches: who may organise, validation of matches, start/score/end transitions
(409 when illegal), streams attached to a match as main, POV and co-stream; and follows."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.integration.test_api_support import ApiStack, User, api_stack

pytestmark = pytest.mark.integration
__all__ = ["api_stack"]

TEAMS = ["G2 Esports", "Fnatic"]


async def _organizer(stack: ApiStack) -> tuple[User, dict[str, Any]]:
    user = await stack.register()
    channel = await stack.command(
        "POST", "/api/v1/channels", user, {"slug": f"t-{uuid.uuid4().hex[:12]}", "display_name": "Org"}
    )
    return user, channel


async def _tournament(stack: ApiStack, organizer: User) -> dict[str, Any]:
    return await stack.command(
        "POST",
        "/api/v1/tournaments",
        organizer,
        {"name": "LEC Summer", "game": "League of Legends", "starts_at": "2030-06-14T15:00:00Z"},
        expect=201,
    )


async def test_only_streamers_and_admins_organise(api_stack: ApiStack) -> None:
    viewer = await api_stack.register()
    body = {"name": "Cup", "game": "CS2", "starts_at": "2030-06-14T15:00:00Z"}
    await api_stack.command("POST", "/api/v1/tournaments", viewer, body, expect=403)
    await api_stack.command("POST", "/api/v1/tournaments", None, body, expect=401)
    admin = await api_stack.make_admin(await api_stack.register())
    created = await api_stack.command("POST", "/api/v1/tournaments", admin, body, expect=201)
    tournament = await api_stack.query(
        f"/api/v1/tournaments/{created['tournament_id']}", after=created["positions"]
    )
    assert tournament["organizer_id"] == admin.user_id and tournament["matches"] == []
    listed = await api_stack.query("/api/v1/tournaments?game=CS2&limit=100")
    assert created["tournament_id"] in [t["tournament_id"] for t in listed["items"]]


async def test_match_validation(api_stack: ApiStack) -> None:
    organizer, _ = await _organizer(api_stack)
    created = await _tournament(api_stack, organizer)
    await api_stack.query(f"/api/v1/tournaments/{created['tournament_id']}", after=created["positions"])
    url = f"/api/v1/tournaments/{created['tournament_id']}/matches"
    base = {"teams": TEAMS, "scheduled_start": "2030-06-14T17:00:00Z", "best_of": 5, "round_name": "Final"}
    for bad in (
        {"best_of": 2},
        {"best_of": 9},
        {"teams": ["G2 Esports"]},
        {"teams": ["A", "A"]},
        {"scheduled_start": "2030-06-14T17:00:00"},
    ):
        await api_stack.command("POST", url, organizer, {**base, **bad}, expect=422)
    other, _ = await _organizer(api_stack)
    await api_stack.command("POST", url, other, base, expect=403)
    await api_stack.command("POST", "/api/v1/tournaments/nope/matches", organizer, base, expect=404)


async def test_match_lifecycle_with_streams(api_stack: ApiStack) -> None:
    organizer, channel = await _organizer(api_stack)
    costreamer, costream_channel = await _organizer(api_stack)
    created = await _tournament(api_stack, organizer)
    await api_stack.query(f"/api/v1/tournaments/{created['tournament_id']}", after=created["positions"])
    scheduled = await api_stack.command(
        "POST",
        f"/api/v1/tournaments/{created['tournament_id']}/matches",
        organizer,
        {"teams": TEAMS, "scheduled_start": "2030-06-14T17:00:00Z", "best_of": 3, "round_name": "Final"},
        expect=201,
    )
    match_id = scheduled["match_id"]
    url = f"/api/v1/matches/{match_id}"
    await api_stack.query(url, after=scheduled["positions"])
    # streams attached to the match: main and POV by the organiser's channel, a co-stream by another
    main = await api_stack.command(
        "POST",
        "/api/v1/streams",
        organizer,
        {"channel_id": channel["channel_id"], "title": "Final", "match_id": match_id, "role": "main"},
    )
    pov = await api_stack.command(
        "POST", "/api/v1/streams", organizer, {"channel_id": channel["channel_id"], "title": "Caps POV"}
    )
    await api_stack.query(f"/api/v1/streams/{pov['stream_id']}", after=pov["positions"])
    attached = await api_stack.command(
        "PATCH", f"/api/v1/streams/{pov['stream_id']}", organizer, {"match_id": match_id, "role": "pov"}
    )
    costream = await api_stack.command(
        "POST",
        "/api/v1/streams",
        costreamer,
        {
            "channel_id": costream_channel["channel_id"],
            "title": "Watch party",
            "match_id": match_id,
            "role": "costream",
        },
    )
    await api_stack.command(
        "POST",
        "/api/v1/streams",
        organizer,
        {"channel_id": channel["channel_id"], "title": "x", "match_id": "nope"},
        expect=404,
    )
    # illegal before start
    await api_stack.command("POST", f"{url}/score", organizer, {"scores": _scores(1, 0)}, expect=409)
    await api_stack.command("POST", f"{url}/end", organizer, expect=409)
    await api_stack.command("POST", f"{url}/start", costreamer, expect=403)
    started = await api_stack.command("POST", f"{url}/start", organizer, {"stream_id": main["stream_id"]})
    await api_stack.query(url, after=started["positions"])
    await api_stack.command("POST", f"{url}/start", organizer, expect=409)
    await api_stack.command(
        "POST",
        f"{url}/score",
        organizer,
        {"scores": [{"team": "G2 Esports", "score": 1}, {"team": "T1", "score": 0}]},
        expect=422,
    )
    scored = await api_stack.command(
        "POST", f"{url}/score", organizer, {"scores": _scores(1, 0), "game_number": 2}
    )
    match = await api_stack.query(url, after=scored["positions"])
    assert match["state"] == "live" and {s["team"]: s["score"] for s in match["scores"]} == {
        "G2 Esports": 1,
        "Fnatic": 0,
    }
    ended = await api_stack.command("POST", f"{url}/end", organizer, {"scores": _scores(2, 1)})
    positions = [*ended["positions"], *main["positions"], *attached["positions"], *costream["positions"]]
    match = await api_stack.query(url, after=positions)
    assert (match["state"], match["winner"]) == ("ended", "G2 Esports")
    roles = {s["stream_id"]: s["role"] for s in match["streams"]}
    assert roles == {main["stream_id"]: "main", pov["stream_id"]: "pov", costream["stream_id"]: "costream"}
    await api_stack.command("POST", f"{url}/end", organizer, expect=409)
    tournament = await api_stack.query(f"/api/v1/tournaments/{created['tournament_id']}")
    assert [m["match_id"] for m in tournament["matches"]] == [match_id]


def _scores(g2: int, fnatic: int) -> list[dict[str, Any]]:
    return [{"team": "G2 Esports", "score": g2}, {"team": "Fnatic", "score": fnatic}]


async def test_follows(api_stack: ApiStack) -> None:
    organizer, channel = await _organizer(api_stack)
    tournament = await _tournament(api_stack, organizer)
    fan = await api_stack.register()
    await api_stack.query(f"/api/v1/tournaments/{tournament['tournament_id']}", after=tournament["positions"])
    await api_stack.command("PUT", "/api/v1/me/follows/channels/nope", fan, expect=404)
    await api_stack.command("PUT", "/api/v1/me/follows/tournaments/nope", fan, expect=404)
    await api_stack.command("PUT", f"/api/v1/me/follows/channels/{channel['channel_id']}", None, expect=401)
    a = await api_stack.command(
        "PUT", f"/api/v1/me/follows/channels/{channel['channel_id']}", fan, expect=202
    )
    b = await api_stack.command(
        "PUT", f"/api/v1/me/follows/tournaments/{tournament['tournament_id']}", fan, expect=202
    )
    follows = await api_stack.query("/api/v1/me/follows", fan, after=[*a["positions"], *b["positions"]])
    assert [c["channel_id"] for c in follows["channels"]] == [channel["channel_id"]]
    assert follows["channels"][0]["slug"] == channel["slug"]
    assert [t["tournament_id"] for t in follows["tournaments"]] == [tournament["tournament_id"]]
    c = await api_stack.command(
        "DELETE", f"/api/v1/me/follows/channels/{channel['channel_id']}", fan, expect=202
    )
    d = await api_stack.command(
        "DELETE", f"/api/v1/me/follows/tournaments/{tournament['tournament_id']}", fan, expect=202
    )
    follows = await api_stack.query("/api/v1/me/follows", fan, after=[*c["positions"], *d["positions"]])
    assert follows == {"channels": [], "tournaments": []}
