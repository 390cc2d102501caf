"""Spoiler-free mode's pure rules (producers/spoilers.py): what a view hides, how the bracket's
advanced teams are masked, and what the URL switch keeps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from producers.spoilers import (
    HIDDEN_NOTICE,
    MAX_REVEALED,
    SpoilerView,
    hide_matches,
    hide_rows,
    notifications_seen,
    predictions_seen,
    streams_seen,
    view_of,
)

T0 = datetime(2030, 6, 14, 12, tzinfo=UTC)


def match(mid: str, round_name: str, teams: list[str], hour: int, scores: list[int] | None) -> dict[str, Any]:
    ended = scores is not None
    winner = None
    if scores:
        winner = teams[scores.index(max(scores))]
    return {
        "match_id": mid,
        "tournament_id": "t1",
        "round_name": round_name,
        "teams": teams,
        "scheduled_start": T0.replace(hour=hour),
        "state": "ended" if ended else "scheduled",
        "scores": [{"team": t, "score": s} for t, s in zip(teams, scores or [], strict=False)],
        "winner": winner,
        "ended_at": T0.replace(hour=hour + 1) if ended else None,
    }


BRACKET = [
    match("sf1", "Semifinal", ["A", "B"], 12, [2, 1]),
    match("sf2", "Semifinal", ["C", "D"], 14, [0, 2]),
    match("final", "Final", ["D", "A"], 18, [1, 3]),
]


def test_the_view_of_a_request() -> None:
    assert view_of(None, []) == SpoilerView()
    assert view_of("hide", ["m1", "bad id!", "m2"]) == SpoilerView(True, frozenset({"m1", "m2"}))
    assert view_of(None, [], user_setting=True).hide
    assert not view_of("show", [], user_setting=True).hide  # the switch wins over the setting
    assert view_of("nonsense", [], user_setting=False) == SpoilerView()
    assert len(view_of("hide", [f"m{i}" for i in range(200)]).revealed) == MAX_REVEALED


def test_the_switch_kept_in_links() -> None:
    assert SpoilerView().query == ""
    assert SpoilerView(True, frozenset({"b", "a"})).query == "spoilers=hide&reveal=a&reveal=b"


def test_results_shown_when_not_hidden() -> None:
    rows = hide_matches(BRACKET, SpoilerView())
    assert [m["winner"] for m in rows] == ["A", "D", "A"]
    assert not any(m["result_hidden"] for m in rows)


def test_hidden_matches_lose_scores_winner_end_and_advanced_team_names() -> None:
    rows = {m["match_id"]: m for m in hide_matches(BRACKET, SpoilerView(hide=True))}
    for m in rows.values():
        assert (m["scores"], m["winner"], m["ended_at"], m["result_hidden"]) == ([], None, None, True)
    assert rows["sf1"]["teams"] == ["A", "B"]
    assert rows["final"]["teams"] == ["Winner of C vs D", "Winner of A vs B"]
    assert BRACKET[2]["teams"] == ["D", "A"]  # the input is left alone


def test_revealing_one_match_shows_that_result_only() -> None:
    rows = {m["match_id"]: m for m in hide_matches(BRACKET, SpoilerView(True, frozenset({"sf1"})))}
    assert rows["sf1"]["winner"] == "A" and not rows["sf1"]["result_hidden"]
    assert rows["sf2"]["winner"] is None
    # sf1 is revealed: its winner may be named in the final; sf2's may not.
    assert rows["final"]["teams"] == ["Winner of C vs D", "A"]
    final = {m["match_id"]: m for m in hide_matches(BRACKET, SpoilerView(True, frozenset({"final"})))}
    assert final["final"]["teams"] == ["D", "A"] and final["final"]["winner"] == "A"


def test_masks_chain_through_rounds() -> None:
    quarters = [
        match("q1", "Quarterfinal", ["A", "B"], 8, [1, 0]),
        match("q2", "Quarterfinal", ["C", "D"], 9, [1, 0]),
        match("s1", "Semifinal", ["A", "C"], 12, [1, 0]),
        match("f", "Final", ["A", "E"], 18, None),
    ]
    rows = {m["match_id"]: m for m in hide_matches(quarters, SpoilerView(hide=True))}
    assert rows["s1"]["teams"] == ["Winner of A vs B", "Winner of C vs D"]
    assert rows["f"]["teams"] == ["Winner of Winner of A vs B vs Winner of C vs D", "E"]


def test_listing_rows_keep_their_own_fields() -> None:
    listed = [{**BRACKET[2], "tournament_name": "Cup", "viewers": 7}]
    (row,) = hide_rows(listed, BRACKET, SpoilerView(hide=True))
    assert row["tournament_name"] == "Cup" and row["viewers"] == 7
    assert row["teams"] == ["Winner of C vs D", "Winner of A vs B"] and row["winner"] is None
    # a row whose tournament was not read (a race) is still hidden
    (alone,) = hide_rows(listed, [], SpoilerView(hide=True))
    assert alone["winner"] is None and alone["result_hidden"]


def test_streams_of_hidden_matches_lose_their_end_time() -> None:
    streams = [
        {"stream_id": "s1", "match_id": "final", "ended_at": T0},
        {"stream_id": "s2", "match_id": None, "ended_at": T0},
    ]
    hidden = streams_seen(streams, SpoilerView(hide=True))
    assert [(s["ended_at"], s["result_hidden"]) for s in hidden] == [(None, True), (T0, False)]
    revealed = streams_seen(streams, SpoilerView(True, frozenset({"final"})))
    assert revealed[0]["ended_at"] == T0


def test_result_notifications_say_nothing_of_the_result() -> None:
    rows = [
        {"kind": "match_ended", "title": "A won", "body": "3-1", "url": "/matches/final"},
        {"kind": "stream_live", "title": "X is live", "body": "", "url": "/live/s"},
    ]
    seen = notifications_seen(rows, SpoilerView(hide=True))
    assert seen[0] == {"kind": "match_ended", "title": HIDDEN_NOTICE, "body": "", "url": "/matches/final"}
    assert seen[1] == rows[1]
    assert notifications_seen(rows, SpoilerView()) == rows


def test_a_prediction_on_a_stream_of_a_hidden_match_hides_its_winner_and_payout() -> None:
    stake = {"outcome": 1, "amount": 100, "payout": 400, "refunded": False}
    rows = [
        {
            "prediction_id": "p1",
            "match_id": "final",
            "winning_outcome": 1,
            "pools": [40, 60],
            "my_stake": stake,
        },
        {"prediction_id": "p2", "match_id": None, "winning_outcome": 0, "pools": [5, 0], "my_stake": None},
    ]
    hidden = predictions_seen(rows, SpoilerView(hide=True))
    assert [(p["winning_outcome"], p["result_hidden"], p["pools"]) for p in hidden] == [
        (None, True, [40, 60]),  # odds are not results
        (0, False, [5, 0]),  # a stream of no match has no result to hide
    ]
    assert hidden[0]["my_stake"] == {**stake, "payout": None}
    assert rows[0]["my_stake"]["payout"] == 400  # the rows given are left alone
    revealed = predictions_seen(rows, SpoilerView(True, frozenset({"final"})))
    assert (revealed[0]["winning_outcome"], revealed[0]["my_stake"]["payout"]) == (1, 400)
    assert predictions_seen(rows, SpoilerView()) == [{**p, "result_hidden": False} for p in rows]
