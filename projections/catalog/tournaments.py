"""Tournaments and matches (topic ``tournaments``, keyed by ``tournament_id``).

A tournament's events share one partition, so a match's events arrive in order. They are still
upserts (a match can be started or scored before it was scheduled, if the organiser skips a step),
and scores are replaced, never added, so a redelivered score changes nothing. ``main_stream_id`` is
the stream ``MatchScheduled`` names, else the first ``main`` stream created for the match (see
``projections.catalog.streams``), whichever of the two topics is applied first. Each
``MatchScheduled`` also rewrites the match's rows of ``match_teams``, the teams search finds.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg.types.json import Jsonb

from events.tournaments import (
    MatchEnded,
    MatchScheduled,
    MatchScoreUpdated,
    MatchStarted,
    TeamScore,
    TournamentCreated,
)
from projections.projector import Cursor, handles

MAIN_STREAM_OF = "SELECT min(stream_id) FROM streams WHERE match_id = %(match_id)s AND role = 'main'"


def scores_json(scores: Sequence[TeamScore]) -> Jsonb:
    return Jsonb([{"team": s.team, "score": s.score} for s in scores])


async def tournament_created(cur: Cursor, e: TournamentCreated) -> None:
    await cur.execute(
        "INSERT INTO tournaments (tournament_id, name, game, organizer_id, starts_at, ends_at, created_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (tournament_id) DO NOTHING",
        (e.tournament_id, e.name, e.game, e.organizer_id, e.starts_at, e.ends_at, e.occurred_at),
    )


async def match_scheduled(cur: Cursor, e: MatchScheduled) -> None:
    """Schedule or reschedule; a stream named here wins over one found in ``streams``."""
    await cur.execute(
        "INSERT INTO matches AS m (match_id, tournament_id, teams, scheduled_start, best_of, round_name,"
        " main_stream_id) VALUES (%(match_id)s, %(tournament_id)s, %(teams)s::text[], %(start)s,"
        f" %(best_of)s, %(round)s, COALESCE(%(stream_id)s, ({MAIN_STREAM_OF})))"
        " ON CONFLICT (match_id) DO UPDATE SET tournament_id = EXCLUDED.tournament_id,"
        " teams = EXCLUDED.teams, scheduled_start = EXCLUDED.scheduled_start,"
        " best_of = EXCLUDED.best_of, round_name = EXCLUDED.round_name,"
        " main_stream_id = COALESCE(%(stream_id)s, m.main_stream_id, EXCLUDED.main_stream_id)",
        {
            "match_id": e.match_id,
            "tournament_id": e.tournament_id,
            "teams": list(e.teams),
            "start": e.scheduled_start,
            "best_of": e.best_of,
            "round": e.round_name,
            "stream_id": e.stream_id,
        },
    )
    await _match_teams(cur, e)


async def _match_teams(cur: Cursor, e: MatchScheduled) -> None:
    """The match's teams as searchable rows: replaced, so a rescheduled match keeps no old team."""
    await cur.execute("DELETE FROM match_teams WHERE match_id = %s", (e.match_id,))
    await cur.execute(
        "INSERT INTO match_teams (match_id, team, tournament_id)"
        " SELECT %s, team, %s FROM unnest(%s::text[]) AS t(team) ON CONFLICT DO NOTHING",
        (e.match_id, e.tournament_id, list(e.teams)),
    )


async def match_started(cur: Cursor, e: MatchStarted) -> None:
    await cur.execute(
        "INSERT INTO matches AS m (match_id, tournament_id, started_at, main_stream_id)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (match_id) DO UPDATE SET started_at = EXCLUDED.started_at,"
        " main_stream_id = COALESCE(m.main_stream_id, EXCLUDED.main_stream_id)",
        (e.match_id, e.tournament_id, e.started_at, e.stream_id),
    )


async def match_score_updated(cur: Cursor, e: MatchScoreUpdated) -> None:
    await cur.execute(
        "INSERT INTO matches (match_id, tournament_id, scores) VALUES (%s, %s, %s)"
        " ON CONFLICT (match_id) DO UPDATE SET scores = EXCLUDED.scores",
        (e.match_id, e.tournament_id, scores_json(e.scores)),
    )


async def match_ended(cur: Cursor, e: MatchEnded) -> None:
    """Final scores replace the running ones (an empty list keeps them); ``winner`` None = draw."""
    await cur.execute(
        "INSERT INTO matches AS m (match_id, tournament_id, ended_at, scores, winner)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (match_id) DO UPDATE SET ended_at = EXCLUDED.ended_at,"
        " scores = CASE WHEN %s THEN EXCLUDED.scores ELSE m.scores END, winner = EXCLUDED.winner",
        (e.match_id, e.tournament_id, e.ended_at, scores_json(e.scores), e.winner, bool(e.scores)),
    )


HANDLERS = dict(
    [
        handles(TournamentCreated, tournament_created),
        handles(MatchScheduled, match_scheduled),
        handles(MatchStarted, match_started),
        handles(MatchScoreUpdated, match_score_updated),
        handles(MatchEnded, match_ended),
    ]
)
