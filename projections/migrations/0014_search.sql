-- Finding things: full-text search over channels, tournaments and teams, and the indexes browsing uses.
--
-- The search vectors are generated columns: PostgreSQL computes them from the columns the catalog
-- projector already writes, in the same statement, so a row is searchable the moment its event is
-- applied and a rebuild needs nothing more than the replay. The 'simple' configuration lowercases and
-- splits words without stemming or stop words: names of channels, teams and tournaments are proper
-- nouns in any language, and "Team Liquid" must be found by "liquid" whatever the site's language.
-- Weights: the name counts most (A), then the slug or game (B), then the description (C).

ALTER TABLE channels ADD COLUMN search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('simple', display_name), 'A')
    || setweight(to_tsvector('simple', translate(slug, '-_', '  ')), 'B')
    || setweight(to_tsvector('simple', description), 'C')
) STORED;
CREATE INDEX channels_search_idx ON channels USING GIN (search);

ALTER TABLE tournaments ADD COLUMN search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('simple', name), 'A') || setweight(to_tsvector('simple', game), 'B')
) STORED;
CREATE INDEX tournaments_search_idx ON tournaments USING GIN (search);

-- Teams have no events of their own: a team is a name in a match's `teams`. One row per (match, team),
-- rewritten with the match's MatchScheduled (projections.catalog.tournaments), so a rescheduled match
-- with other teams leaves no stale row; a team's search hit groups its rows.
CREATE TABLE match_teams (
    match_id      text NOT NULL,
    team          text NOT NULL,
    tournament_id text NOT NULL,
    search        tsvector GENERATED ALWAYS AS (setweight(to_tsvector('simple', team), 'A')) STORED,
    PRIMARY KEY (match_id, team)
);
CREATE INDEX match_teams_search_idx ON match_teams USING GIN (search);
CREATE INDEX match_teams_team_idx ON match_teams (team);

INSERT INTO match_teams (match_id, team, tournament_id)
SELECT DISTINCT m.match_id, t.team, m.tournament_id FROM matches m, unnest(m.teams) AS t(team)
ON CONFLICT DO NOTHING;

-- Browsing live and scheduled streams by tag (`tags @> ARRAY[...]`) and game.
CREATE INDEX streams_tags_idx ON streams USING GIN (tags);
CREATE INDEX streams_state_game_idx ON streams (state, game);

-- Upcoming matches of every tournament, soonest first (GET /api/v1/matches, the browse page).
CREATE INDEX matches_schedule_idx ON matches (scheduled_start, match_id) WHERE scheduled_start IS NOT NULL;
