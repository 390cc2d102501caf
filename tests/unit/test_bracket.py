"""The bracket drawn from a tournament's matches (projections.bracket): rounds in order of play,
winners advancing to the match they play next, feeders side by side in the upper/lower slot order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from projections.bracket import bracket

START = datetime(2030, 6, 14, 15, tzinfo=UTC)


def _match(
    match_id: str,
    round_name: str,
    teams: list[str],
    hours: int,
    winner: str | None = None,
    scores: list[int] | None = None,
) -> dict[str, Any]:
    return {
        "match_id": match_id,
        "round_name": round_name,
        "teams": teams,
        "scheduled_start": START + timedelta(hours=hours),
        "state": "ended" if winner else "scheduled",
        "winner": winner,
        "scores": [{"team": t, "score": s} for t, s in zip(teams, scores or [], strict=False)],
    }


def _eight_team_bracket() -> list[dict[str, Any]]:
    # Quarterfinals scheduled in an order that does not match the bracket's drawing order.
    return [
        _match("qf1", "Quarterfinal", ["A", "B"], 0, "A", [2, 0]),
        _match("qf2", "Quarterfinal", ["C", "D"], 1, "D", [1, 2]),
        _match("qf3", "Quarterfinal", ["E", "F"], 2, "E", [2, 1]),
        _match("qf4", "Quarterfinal", ["G", "H"], 3, "H", [0, 2]),
        _match("sf1", "Semifinal", ["A", "E"], 10, "E", [1, 3]),  # fed by qf1 (upper) and qf3 (lower)
        _match("sf2", "Semifinal", ["H", "D"], 11, "D", [2, 3]),  # fed by qf4 (upper) and qf2 (lower)
        _match("f", "Final", ["D", "E"], 20),  # sf2's winner in the upper slot
    ]


def test_rounds_follow_the_order_of_play_whatever_the_input_order() -> None:
    rounds = bracket(list(reversed(_eight_team_bracket())))
    assert [r.name for r in rounds] == ["Quarterfinal", "Semifinal", "Final"]


def test_winners_advance_to_the_match_they_play_next() -> None:
    rounds = bracket(_eight_team_bracket())
    advances = {m.match_id: m.advances_to for r in rounds for m in r.matches}
    assert advances == {
        "qf1": "sf1",
        "qf2": "sf2",
        "qf3": "sf1",
        "qf4": "sf2",
        "sf1": "f",
        "sf2": "f",
        "f": None,
    }


def test_feeders_sit_side_by_side_in_the_order_of_the_slots_they_fill() -> None:
    rounds = bracket(_eight_team_bracket())
    order = [[m.match_id for m in r.matches] for r in rounds]
    # Final: D (from sf2) is the upper slot, so sf2 is drawn above sf1; and so on down.
    assert order == [["qf4", "qf2", "qf1", "qf3"], ["sf2", "sf1"], ["f"]]


def test_slots_carry_scores_and_the_winner() -> None:
    rounds = bracket(_eight_team_bracket())
    semi = next(m for m in rounds[1].matches if m.match_id == "sf1")
    assert [(s.team, s.score, s.won) for s in semi.slots] == [("A", 1, False), ("E", 3, True)]
    final = rounds[2].matches[0]
    assert [(s.team, s.score, s.won) for s in final.slots] == [("D", None, False), ("E", None, False)]
    assert final.winner is None and final.state == "scheduled"


def test_matches_nobody_advanced_from_keep_their_scheduled_order_after_the_others() -> None:
    matches = [
        _match("a", "Round 1", ["A", "B"], 2),
        _match("b", "Round 1", ["C", "D"], 0, "C"),
        _match("c", "Round 1", ["E", "F"], 1),
        _match("d", "Round 2", ["X", "C"], 5),
    ]
    order = [[m.match_id for m in r.matches] for r in bracket(matches)]
    assert order == [["b", "c", "a"], ["d"]]


def test_a_draw_advances_nobody_and_unnamed_rounds_share_one_column() -> None:
    matches = [
        _match("a", "", ["A", "B"], 0),
        _match("b", "", ["C", "D"], 1),
    ]
    matches[0]["state"] = "ended"  # a draw: ended without winner
    rounds = bracket(matches)
    assert [r.name for r in rounds] == ["Match"]
    assert [m.advances_to for m in rounds[0].matches] == [None, None]


def test_no_matches_no_rounds() -> None:
    assert bracket([]) == ()
