-- Creative controls, as SQLite's 0004: generations get the id their buttons name and the
-- turn that made them; turns keep their behavior and reference images (JSON text, the same
-- encoding as SQLite's); channels get web search (NULL: each::sense's default) and the
-- safety checker.

ALTER TABLE generations ADD COLUMN generation_id TEXT;
ALTER TABLE generations ADD COLUMN turn_id TEXT;
CREATE UNIQUE INDEX generations_generation_id ON generations (generation_id);

ALTER TABLE turns ADD COLUMN behavior TEXT;
ALTER TABLE turns ADD COLUMN image_urls TEXT NOT NULL DEFAULT '[]';

ALTER TABLE channels ADD COLUMN web_search BOOLEAN;
ALTER TABLE channels ADD COLUMN safety_checker BOOLEAN NOT NULL DEFAULT TRUE;
