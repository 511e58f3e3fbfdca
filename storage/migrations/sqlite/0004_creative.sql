-- Creative controls. Generations get the id their buttons name (chosen by the core, so a
-- button posted before a restart finds its generation after it) and the turn that made
-- them; turns keep their behavior (plan) and reference images, so Regenerate and Retry send
-- the same request again; channels get web search (NULL: each::sense's default) and the
-- safety checker.

ALTER TABLE generations ADD COLUMN generation_id TEXT;
ALTER TABLE generations ADD COLUMN turn_id TEXT;
-- NULLs (rows from before this migration) do not collide in a unique index
CREATE UNIQUE INDEX generations_generation_id ON generations (generation_id);

-- image_urls: a JSON list of the public URLs sent
ALTER TABLE turns ADD COLUMN behavior TEXT;
ALTER TABLE turns ADD COLUMN image_urls TEXT NOT NULL DEFAULT '[]';

ALTER TABLE channels ADD COLUMN web_search INTEGER;
ALTER TABLE channels ADD COLUMN safety_checker INTEGER NOT NULL DEFAULT 1;
