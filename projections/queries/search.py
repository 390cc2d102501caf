"""Full-text search over channels, tournaments and teams (the ``search`` columns of migration 0014).

The query text is parsed by ``websearch_to_tsquery`` (what a search box gets: words, "quoted
phrases", ``or``, ``-excluded``), never interpolated; one statement ranks the three kinds together
(``ts_rank`` on the weighted vectors) with a deterministic tie-break, so offset pages do not overlap.
"""

from __future__ import annotations

from typing import Any, Literal

from projections.queries import Reader

__all__ = ["SEARCH_KINDS", "SearchKind", "SearchQueries"]

SearchKind = Literal["channel", "tournament", "team"]
SEARCH_KINDS: tuple[SearchKind, ...] = ("channel", "tournament", "team")

# Each branch yields the same named columns; a team's id is its name.
_BRANCHES: dict[SearchKind, str] = {
    "channel": """
SELECT 'channel' AS kind, c.channel_id AS id, c.display_name AS name, c.description AS detail,
       c.slug AS slug, NULL::text AS tournament_id, ts_rank(c.search, q.query) AS rank
FROM channels c, q WHERE c.search @@ q.query""",
    "tournament": """
SELECT 'tournament' AS kind, t.tournament_id AS id, t.name AS name, t.game AS detail,
       NULL::text AS slug, t.tournament_id AS tournament_id, ts_rank(t.search, q.query) AS rank
FROM tournaments t, q WHERE t.search @@ q.query""",
    # A team links to the tournament of its latest match; its detail counts its matches.
    "team": """
SELECT 'team' AS kind, mt.team AS id, mt.team AS name,
       count(*)::text || CASE count(*) WHEN 1 THEN ' match' ELSE ' matches' END AS detail, NULL::text AS slug,
       (array_agg(mt.tournament_id ORDER BY m.scheduled_start DESC NULLS LAST, mt.match_id DESC))[1]
           AS tournament_id,
       max(ts_rank(mt.search, q.query)) AS rank
FROM match_teams mt LEFT JOIN matches m USING (match_id), q WHERE mt.search @@ q.query
GROUP BY mt.team""",
}


class SearchQueries(Reader):
    """Channels, tournaments and teams whose names (and descriptions, games) match a query."""

    async def search(
        self, text: str, *, kinds: tuple[SearchKind, ...] = SEARCH_KINDS, limit: int, offset: int
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` hits from ``offset``, best first; none for a query without words."""
        branches = " UNION ALL ".join(_BRANCHES[kind] for kind in SEARCH_KINDS if kind in kinds)
        if not branches:
            return []
        return await self._all(
            "WITH q AS (SELECT websearch_to_tsquery('simple', %s) AS query)"
            f" SELECT * FROM ({branches}) AS hits"
            " ORDER BY rank DESC, kind, id LIMIT %s OFFSET %s",
            (text, limit, offset),
        )
