-- Viewing preferences (projector "pg.catalog", from UserPreferencesUpdated on `users`).
--
-- A column of `users`, not a table of its own: the API reads a user's row anyway, every user has
-- exactly one setting, and the latest event replaces it (a redelivered event changes nothing).
-- Spoiler-free mode hides scores, winners and "ended" badges until the viewer reveals a match.

ALTER TABLE users ADD COLUMN spoiler_free boolean NOT NULL DEFAULT false;
