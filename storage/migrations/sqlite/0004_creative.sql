-- Creative controls. Generations get the id their buttons name (chosen by the core, so a
-- button posted before a restart finds its generation after it) and the turn that made
-- them; channels get web search (NULL: each::sense's default) and the safety checker.

ALTER TABLE generations ADD COLUMN generation_id TEXT;
ALTER TABLE generations ADD COLUMN turn_id TEXT;
-- NULLs (rows from before this migration) do not collide in a unique index
CREATE UNIQUE INDEX generations_generation_id ON generations (generation_id);

ALTER TABLE channels ADD COLUMN web_search INTEGER;
ALTER TABLE channels ADD COLUMN safety_checker INTEGER NOT NULL DEFAULT 1;
