-- What operators and admins need, the same tables as SQLite's 0003: usage per person and
-- channel (one row per finished turn, delivered generation and finished run, written once
-- whatever writes it), daily quota limits and the counts taken against them, and per-workspace
-- allow and deny lists.

CREATE TABLE usage_events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind       TEXT NOT NULL,
    ref        TEXT NOT NULL,
    platform   TEXT NOT NULL,
    workspace  TEXT NOT NULL,
    channel    TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    detail     TEXT NOT NULL DEFAULT '',
    cost       DOUBLE PRECISION,
    created_at DOUBLE PRECISION NOT NULL,
    UNIQUE (kind, ref)
);

CREATE INDEX usage_events_workspace_at ON usage_events (platform, workspace, created_at);
CREATE INDEX usage_events_user_at ON usage_events (platform, workspace, user_id, created_at);

CREATE TABLE quota_limits (
    platform   TEXT NOT NULL,
    workspace  TEXT NOT NULL,
    channel    TEXT NOT NULL,  -- '' for the whole workspace
    name       TEXT NOT NULL,
    value      INTEGER NOT NULL CHECK (value >= 0),
    changed_by TEXT,
    changed_at DOUBLE PRECISION,
    PRIMARY KEY (platform, workspace, channel, name)
);

CREATE TABLE quota_use (
    scope TEXT NOT NULL,
    day   INTEGER NOT NULL,  -- days since 1970-01-01, UTC
    used  INTEGER NOT NULL,
    PRIMARY KEY (scope, day)
);

CREATE INDEX quota_use_day ON quota_use (day);

CREATE TABLE access_rules (
    platform   TEXT NOT NULL,
    workspace  TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('user', 'role', 'channel')),
    value      TEXT NOT NULL,
    effect     TEXT NOT NULL CHECK (effect IN ('allow', 'deny')),
    changed_by TEXT,
    changed_at DOUBLE PRECISION,
    PRIMARY KEY (platform, workspace, kind, value)
);
