"""Spoiler-free mode: which match results a viewer sees, and the read-model rows with the rest hidden.

Pure, so the API (``producers/routes``) and the pages (``web/``) hide exactly the same things: one
rule, one home. A *view* says whether results are hidden and which matches the viewer revealed; a
hidden match loses its scores, its winner and its end time (an end time against the start gives the
series length away), and is marked ``result_hidden``. A stream of a hidden match loses its end time
too (the VOD's duration), and a prediction on such a stream its winning outcome. In a bracket, a
later match's teams tell who won the matches feeding it, so while the later match is hidden, a team
that advanced from a hidden match is named "Winner of A vs B" instead.

The switch travels in the URL (``spoilers=hide``, ``reveal=<match_id>``, repeatable): pages use no
cookies, so the query is what a server render and a shared link can see.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from projections.bracket import bracket

__all__ = [
    "HIDE",
    "MAX_REVEALED",
    "PARAM",
    "REVEAL_PARAM",
    "SHOW",
    "SpoilerView",
    "hide_matches",
    "hide_rows",
    "hide_streams",
    "notifications_seen",
    "predictions_seen",
    "streams_seen",
    "view_of",
]

PARAM = "spoilers"
REVEAL_PARAM = "reveal"
HIDE = "hide"
SHOW = "show"
MAX_REVEALED = 50
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True, slots=True)
class SpoilerView:
    """Whether results are hidden, and the matches whose result the viewer chose to see anyway."""

    hide: bool = False
    revealed: frozenset[str] = field(default_factory=frozenset)

    def hides(self, match_id: str | None) -> bool:
        return self.hide and match_id is not None and match_id not in self.revealed

    @property
    def query(self) -> str:
        """The query string that keeps this view on the next page ("" when results are shown)."""
        if not self.hide:
            return ""
        reveals = "".join(f"&{REVEAL_PARAM}={m}" for m in sorted(self.revealed))
        return f"{PARAM}={HIDE}{reveals}"


def view_of(spoilers: str | None, reveal: Iterable[str], *, user_setting: bool = False) -> SpoilerView:
    """The view a request asks for: ``spoilers=hide``/``show`` wins over the user's own setting;
    malformed reveal ids are ignored and at most :data:`MAX_REVEALED` are kept."""
    hide = spoilers == HIDE or (spoilers != SHOW and user_setting)
    revealed = [m for m in reveal if _ID.match(m)][:MAX_REVEALED]
    return SpoilerView(hide=hide, revealed=frozenset(revealed))


def hide_matches(matches: Sequence[Mapping[str, Any]], view: SpoilerView) -> list[dict[str, Any]]:
    """The rows of one tournament's matches (or a subset) as ``view`` lets them be seen.

    Give every match of the tournament that is at hand: the bracket masking of advanced teams needs
    the matches feeding each one. Rows keep their order."""
    rows = [dict(m) for m in matches]
    if not view.hide:
        return [{**m, "result_hidden": False} for m in rows]
    _mask_advanced_teams(rows, view)
    return [_hidden(m) if view.hides(m["match_id"]) else {**m, "result_hidden": False} for m in rows]


def hide_rows(
    rows: Sequence[Mapping[str, Any]], tournament_matches: Sequence[Mapping[str, Any]], view: SpoilerView
) -> list[dict[str, Any]]:
    """``rows`` (any shape carrying a match's fields, e.g. a listing with audiences) as ``view`` lets
    them be seen, the masking decided over ``tournament_matches`` (every match of their tournaments)."""
    by_tournament: dict[str, list[Mapping[str, Any]]] = {}
    for m in tournament_matches:
        by_tournament.setdefault(m["tournament_id"], []).append(m)
    seen = {m["match_id"]: m for group in by_tournament.values() for m in hide_matches(group, view)}
    fallback = {m["match_id"]: m for m in hide_matches(rows, view)}  # a row not among them (a race)
    return [
        {**row, **{k: (seen.get(row["match_id"]) or fallback[row["match_id"]])[k] for k in _MATCH_FIELDS}}
        for row in rows
    ]


def streams_seen(streams: Sequence[Mapping[str, Any]], view: SpoilerView) -> list[dict[str, Any]]:
    """Streams as ``view`` lets them be seen (a stream of a hidden match has no end time)."""
    return hide_streams(streams, [s["match_id"] for s in streams if view.hides(s.get("match_id"))])


def predictions_seen(predictions: Sequence[Mapping[str, Any]], view: SpoilerView) -> list[dict[str, Any]]:
    """Predictions (each with its stream's ``match_id``) as ``view`` lets them be seen: on a stream of
    a hidden match, "Who wins map 3?" answered is a result, so the winning outcome and the caller's
    payout (0 says "lost") are hidden. Pools and stakers stay: odds are not results."""
    return [
        _prediction_hidden(p) if view.hides(p.get("match_id")) else {**p, "result_hidden": False}
        for p in predictions
    ]


def _prediction_hidden(prediction: Mapping[str, Any]) -> dict[str, Any]:
    stake = prediction.get("my_stake")
    return {
        **prediction,
        "winning_outcome": None,
        "my_stake": {**stake, "payout": None} if stake else stake,
        "result_hidden": True,
    }


RESULT_KINDS = frozenset({"match_ended"})
HIDDEN_NOTICE = "A match has a result (hidden: spoiler-free mode)"


def notifications_seen(rows: Sequence[Mapping[str, Any]], view: SpoilerView) -> list[dict[str, Any]]:
    """Inbox rows as ``view`` lets them be seen: a notification announcing a result keeps its link
    (the match page, where the viewer can reveal it) but says nothing of the result."""
    if not view.hide:
        return [dict(n) for n in rows]
    return [
        {**n, "title": HIDDEN_NOTICE, "body": ""} if n.get("kind") in RESULT_KINDS else dict(n) for n in rows
    ]


def hide_streams(
    streams: Sequence[Mapping[str, Any]], hidden_match_ids: Iterable[str]
) -> list[dict[str, Any]]:
    """Streams of a hidden match without their end time (the VOD length gives the series away)."""
    hidden = set(hidden_match_ids)
    return [
        {**s, "ended_at": None, "result_hidden": True}
        if s.get("match_id") in hidden
        else {**s, "result_hidden": False}
        for s in streams
    ]


_MATCH_FIELDS = ("teams", "scores", "winner", "ended_at", "result_hidden")


def _hidden(match: dict[str, Any]) -> dict[str, Any]:
    return {**match, "scores": [], "winner": None, "ended_at": None, "result_hidden": True}


def _mask_advanced_teams(rows: list[dict[str, Any]], view: SpoilerView) -> None:
    """Rename, in each hidden match, the teams that advanced to it from a hidden match (in place).

    Rounds are visited in order, so a name masked in a semifinal is the one its final shows."""
    by_id = {m["match_id"]: m for m in rows}
    for column in bracket(rows):
        for feeder in column.matches:
            target = by_id.get(feeder.advances_to or "")
            if target is None or feeder.winner is None or not view.hides(feeder.match_id):
                continue
            if view.hides(target["match_id"]):
                label = "Winner of " + " vs ".join(by_id[feeder.match_id]["teams"])
                target["teams"] = [label if t == feeder.winner else t for t in target["teams"]]
