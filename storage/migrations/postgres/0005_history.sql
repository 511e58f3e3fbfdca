-- A person's history for their App Home page: their recent threads and turn counts are read
-- by person (turns_user, jobs_user) and each thread's first prompt by thread (turns_thread).

CREATE INDEX turns_user ON turns (platform, workspace, user_id, started_at);
CREATE INDEX turns_thread ON turns (platform, workspace, channel, thread, started_at);
CREATE INDEX jobs_user ON jobs (platform, workspace, user_id, created_at);
