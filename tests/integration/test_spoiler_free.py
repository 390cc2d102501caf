"""Spoiler-free mode over the real stack: a four-team bracket played through the API (semifinals, a
final with its broadcast, ended), then every page and public API view rendered with results hidden,
for a logged-out viewer (``spoilers=hide``) and for a signed-in one whose setting is on (an event
on ``users``, projected). Nothing in the HTML or JSON may tell a score, a winner, an end time or who
advanced, nor a resolved prediction's winner on the final's broadcast ("Who wins the final?");
revealing one match shows that match's result and nothing else.

The spoilers are learnt from the same pages rendered with results shown, so the test fails if the
hidden render leaks any of them, however a template prints it."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events.notifications import NotificationIssued, NotificationKind
from events.points import PredictionOpened, PredictionUpdated
from events.streams import StreamEnded, StreamEndReason, StreamWentLive
from infra.settings import Settings
from tests.integration.test_api_support import ApiStack, eventually, open_api_stack
from tests.integration.test_bracket_page import _play
from tests.integration.test_search_api import read_model_ready

pytestmark = pytest.mark.integration

SEMI_1 = ["Vitality", "Spirit"]  # Vitality wins 2-1
SEMI_2 = ["Navi", "Faze"]  # Faze wins 0-2
FINAL = ["Faze", "Vitality"]  # Vitality wins 1-3


@pytest.fixture(scope="module")
async def stack(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ApiStack]:
    async with open_api_stack(settings, tmp_path_factory.mktemp("spoilers"), lifecycle=False) as opened:
        await read_model_ready(opened)
        yield opened


@pytest.fixture(scope="module")
async def played(stack: ApiStack) -> dict[str, Any]:
    return await play_tournament(stack)


async def play_tournament(stack: ApiStack) -> dict[str, Any]:
    """The tournament, its matches, the final's ended broadcast and its channel (ids by name)."""
    organizer = await stack.register()
    slug = f"sp-{uuid.uuid4().hex[:12]}"
    channel = await stack.command(
        "POST", "/api/v1/channels", organizer, {"slug": slug, "display_name": "Spoiler TV"}, expect=201
    )
    game = f"Spoilgame {uuid.uuid4().hex[:8]}"
    created = await stack.command(
        "POST",
        "/api/v1/tournaments",
        organizer,
        {"name": "Spoiler Cup", "game": game, "starts_at": "2030-06-14T10:00:00Z"},
        expect=201,
    )
    tid = created["tournament_id"]
    await stack.query(f"/api/v1/tournaments/{tid}", after=created["positions"])
    sf1 = await _play(stack, organizer, tid, "Semifinal", SEMI_1, 12, [2, 1])
    sf2 = await _play(stack, organizer, tid, "Semifinal", SEMI_2, 15, [0, 2])
    final = await _play(stack, organizer, tid, "Grand final", FINAL, 18, [1, 3])
    stream = await stack.command(
        "POST",
        "/api/v1/streams",
        organizer,
        {"channel_id": channel["channel_id"], "title": "Grand final broadcast", "match_id": final},
        expect=201,
    )
    sid = stream["stream_id"]
    await stack.query(f"/api/v1/streams/{sid}", after=stream["positions"])
    start = datetime.now(UTC) - timedelta(hours=3)
    await stack.publisher.publish(
        StreamWentLive(stream_id=sid, channel_id=channel["channel_id"], started_at=start, match_id=final)
    )
    await stack.publisher.publish(
        StreamEnded(
            stream_id=sid,
            channel_id=channel["channel_id"],
            ended_at=start + timedelta(minutes=47),  # a short final: 3-1, not 3-2
            reason=StreamEndReason.ENDED_BY_OWNER,
            duration_ms=47 * 60_000,
        )
    )

    async def ended() -> bool:
        return (await stack.client.get(f"/api/v1/streams/{sid}")).json()["state"] == "ended"

    await eventually(ended)
    # "Who wins the final?" on its broadcast, resolved: the prediction worker's events, published here.
    pid = str(uuid.uuid4())
    await stack.publisher.publish(
        PredictionOpened(
            prediction_id=pid,
            stream_id=sid,
            channel_id=channel["channel_id"],
            title="Who wins the final?",
            outcomes=tuple(FINAL),
            locks_at=start + timedelta(minutes=5),
            opened_by=organizer.user_id,
            occurred_at=start,
        )
    )
    await stack.publisher.publish(
        PredictionUpdated(
            prediction_id=pid,
            stream_id=sid,
            status="resolved",
            pools=(40, 60),
            stakers=(1, 2),
            winning_outcome=1,
        )
    )

    async def resolved() -> bool:
        seen = (await stack.client.get(f"/api/v1/predictions/{pid}?spoilers=show")).json()
        return seen.get("winning_outcome") == 1

    await eventually(resolved)
    return {
        "tid": tid,
        "sf1": sf1,
        "sf2": sf2,
        "final": final,
        "sid": sid,
        "slug": slug,
        "game": game,
        "pid": pid,
    }


def _pages(p: dict[str, Any]) -> list[str]:
    return [
        "/",
        f"/browse?game={p['game']}",
        f"/tournaments/{p['tid']}",
        f"/matches/{p['final']}",
        f"/matches/{p['sf1']}",
        f"/live/{p['sid']}",
        f"/channels/{p['slug']}",
        "/search?q=Vitality",
    ]


def _api_views(p: dict[str, Any]) -> list[str]:
    return [
        f"/api/v1/tournaments/{p['tid']}",
        f"/api/v1/tournaments/{p['tid']}/bracket",
        f"/api/v1/matches?state=ended&game={p['game']}",
        f"/api/v1/matches?game={p['game']}",
        f"/api/v1/matches/{p['final']}",
        f"/api/v1/matches/{p['sf2']}",
        f"/api/v1/streams/{p['sid']}",
        f"/api/v1/streams?match={p['final']}",
        f"/api/v1/streams?channel={p['slug']}",
        f"/api/v1/streams/{p['sid']}/predictions",
        f"/api/v1/predictions/{p['pid']}",
    ]


def _with(url: str, query: str) -> str:
    return url + ("&" if "?" in url else "?") + query


RESULT_MARKS = (
    re.compile(r"<strong>[^<]*won</strong>"),
    re.compile(r'class="slot winner"'),
    re.compile(r'<span class="score">\d+</span>'),
    re.compile("(Vitality|Faze|Navi|Spirit) \\d+ \u2013 (Vitality|Faze|Navi|Spirit) \\d+"),
    re.compile(r'"endDate": ?"\d'),
    re.compile(r">ENDED<"),
)


def _leaks_in_html(page: str) -> list[str]:
    return [m.group(0) for pattern in RESULT_MARKS for m in pattern.finditer(page)]


def _json_leaks(node: Any, path: str = "") -> list[str]:
    """Every place a JSON body tells a result: a score, a winner, a won slot, an end time, the
    finalists' real names."""
    leaks: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}"
            if key == "scores" and value:
                leaks.append(where)
            elif key == "winner" and value is not None:
                leaks.append(where)
            elif key == "won" and value:
                leaks.append(where)
            elif key == "score" and value is not None:
                leaks.append(where)
            elif key == "ended_at" and value is not None:
                leaks.append(where)
            elif key in ("winning_outcome", "payout") and value is not None:
                leaks.append(where)
            elif key == "teams" and value in (FINAL, [{"team": t} for t in FINAL]):
                leaks.append(where)
            else:
                leaks += _json_leaks(value, where)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            leaks += _json_leaks(item, f"{path}[{i}]")
    return leaks


async def test_results_are_shown_by_default(stack: ApiStack, played: dict[str, Any]) -> None:
    """The detector itself: without the switch the same pages and views do tell the results."""
    page = (await stack.client.get(f"/tournaments/{played['tid']}")).text
    assert "Vitality won</strong>" in page and 'class="slot winner"' in page
    assert "Faze vs Vitality" in page
    match = (await stack.client.get(f"/api/v1/matches/{played['final']}")).json()
    assert match["winner"] == "Vitality" and match["result_hidden"] is False
    assert _json_leaks(match)
    stream = (await stack.client.get(f"/api/v1/streams/{played['sid']}")).json()
    assert stream["ended_at"] is not None
    prediction = (await stack.client.get(f"/api/v1/predictions/{played['pid']}")).json()
    assert prediction["winning_outcome"] == 1 and prediction["result_hidden"] is False


async def test_no_page_tells_a_result_with_spoilers_hidden(stack: ApiStack, played: dict[str, Any]) -> None:
    for url in _pages(played):
        response = await stack.client.get(_with(url, "spoilers=hide"))
        assert response.status_code == 200, url
        assert _leaks_in_html(response.text) == [], url
        assert "Faze vs Vitality" not in response.text, url
    tournament = (await stack.client.get(f"/tournaments/{played['tid']}?spoilers=hide")).text
    assert "Winner of Vitality vs Spirit" in tournament and "Reveal result" in tournament


async def test_no_api_view_tells_a_result_with_spoilers_hidden(
    stack: ApiStack, played: dict[str, Any]
) -> None:
    for url in _api_views(played):
        response = await stack.client.get(_with(url, "spoilers=hide"))
        assert response.status_code == 200, url
        assert _json_leaks(response.json()) == [], url
    final = (await stack.client.get(f"/api/v1/matches/{played['final']}?spoilers=hide")).json()
    assert final["result_hidden"] is True and final["state"] == "ended"
    assert final["streams"][0]["result_hidden"] is True
    prediction = (await stack.client.get(f"/api/v1/predictions/{played['pid']}?spoilers=hide")).json()
    assert (prediction["status"], prediction["pools"], prediction["result_hidden"]) == (
        "resolved",
        [40, 60],
        True,
    )


async def test_the_signed_in_viewers_setting_hides_results(stack: ApiStack, played: dict[str, Any]) -> None:
    viewer = await stack.register()
    assert (await stack.query("/api/v1/me/preferences", viewer, after=viewer.positions)) == {
        "spoiler_free": False
    }
    changed = await stack.command("PATCH", "/api/v1/me/preferences", viewer, {"spoiler_free": True})
    assert (await stack.query("/api/v1/me/preferences", viewer, after=changed["positions"]))["spoiler_free"]
    for url in _api_views(played):
        body = await stack.query(url, viewer)
        assert _json_leaks(body) == [], url
    # An explicit switch wins over the setting, both ways.
    shown = await stack.query(f"/api/v1/matches/{played['final']}?spoilers=show", viewer)
    assert shown["winner"] == "Vitality"
    # A notification announcing a result says nothing of it while the setting is on.
    nid = str(uuid.uuid4())
    await stack.publisher.publish(
        NotificationIssued(
            notification_id=nid,
            user_id=viewer.user_id,
            kind=NotificationKind.MATCH_ENDED,
            causation_id=f"cause-{nid}",
            title="Vitality won the Spoiler Cup",
            body="Faze 1 \u2013 Vitality 3",
            url=f"/matches/{played['final']}",
        )
    )

    async def inbox() -> dict[str, Any] | None:
        body = (await stack.client.get("/api/v1/me/notifications", headers=viewer.auth)).json()
        return body if body["items"] else None

    page = await eventually(inbox)
    assert "Vitality" not in str(page["items"]) and page["items"][0]["url"] == f"/matches/{played['final']}"
    # An invalid token is a logged-out viewer on a public view, not an error.
    anonymous = await stack.client.get(
        f"/api/v1/matches/{played['final']}", headers={"Authorization": "Bearer not-a-token"}
    )
    assert anonymous.status_code == 200 and anonymous.json()["winner"] == "Vitality"


async def test_revealing_one_match_shows_that_result_only(stack: ApiStack, played: dict[str, Any]) -> None:
    sf1 = played["sf1"]
    page = (await stack.client.get(f"/tournaments/{played['tid']}?spoilers=hide&reveal={sf1}")).text
    assert "Vitality won</strong>" in page  # the revealed semifinal
    assert page.count("won</strong>") == 1 and "Faze won" not in page
    body = (await stack.client.get(f"/api/v1/tournaments/{played['tid']}?spoilers=hide&reveal={sf1}")).json()
    by_id = {m["match_id"]: m for m in body["matches"]}
    assert by_id[sf1]["winner"] == "Vitality" and by_id[sf1]["result_hidden"] is False
    assert _json_leaks([by_id[played["sf2"]], by_id[played["final"]]]) == []
    # The final, still hidden, names its upper team after the semifinal that is still hidden.
    assert "Winner of Navi vs Faze" in by_id[played["final"]]["teams"]
    # A prediction on the final's broadcast tells its winner once the final is revealed, not before.
    url = f"/api/v1/predictions/{played['pid']}?spoilers=hide&reveal="
    assert (await stack.client.get(url + sf1)).json()["winning_outcome"] is None
    assert (await stack.client.get(url + played["final"])).json()["winning_outcome"] == 1


def test_the_detectors_catch_what_they_look_for() -> None:
    assert _leaks_in_html("<td>Faze 1 \u2013 Vitality 3 · <strong>Vitality won</strong></td>")
    assert _leaks_in_html(
        '<span class="slot winner"><span class="team">X</span> <span class="score">3</span>'
    )
    assert _json_leaks({"matches": [{"winner": "X", "scores": [{"team": "X", "score": 1}]}]})
    assert _json_leaks({"items": [{"winning_outcome": 0}]}) and _json_leaks({"my_stake": {"payout": 0}})
    assert not _json_leaks({"items": [{"winning_outcome": None, "my_stake": {"payout": None}}]})
    assert not _json_leaks({"winner": None, "scores": [], "ended_at": None, "teams": ["Winner of A vs B"]})
