-- The first schema, the same tables and columns as SQLite's 0001 (times are seconds since the
-- epoch, as the core passes them). Job output is a text array instead of JSON text.

CREATE TABLE threads (
    platform     TEXT NOT NULL,
    workspace    TEXT NOT NULL,
    channel      TEXT NOT NULL,
    thread       TEXT NOT NULL,
    session_id   TEXT NOT NULL UNIQUE,
    owner_id     TEXT NOT NULL,
    mode         TEXT CHECK (mode IN ('max', 'eco')),
    created_at   DOUBLE PRECISION NOT NULL,
    last_used_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (platform, workspace, channel, thread)
);

CREATE TABLE channels (
    platform   TEXT NOT NULL,
    workspace  TEXT NOT NULL,
    channel    TEXT NOT NULL,
    eco        BOOLEAN NOT NULL DEFAULT FALSE,
    changed_by TEXT,
    changed_at DOUBLE PRECISION,
    PRIMARY KEY (platform, workspace, channel)
);

CREATE TABLE turns (
    id          TEXT PRIMARY KEY,
    platform    TEXT NOT NULL,
    workspace   TEXT NOT NULL,
    channel     TEXT NOT NULL,
    thread      TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    prompt      TEXT NOT NULL,
    status      TEXT NOT NULL,
    mode        TEXT NOT NULL DEFAULT 'max',
    started_at  DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION
);

CREATE INDEX turns_status ON turns (status);

CREATE TABLE generations (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url        TEXT NOT NULL,
    media_type TEXT NOT NULL,
    session_id TEXT NOT NULL,
    platform   TEXT NOT NULL,
    workspace  TEXT NOT NULL,
    channel    TEXT NOT NULL,
    thread     TEXT NOT NULL,
    message_id TEXT,
    created_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE events (
    platform   TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (platform, event_id)
);

CREATE INDEX events_expires_at ON events (expires_at);

CREATE TABLE jobs (
    id             TEXT PRIMARY KEY,
    kind           TEXT NOT NULL,
    remote_id      TEXT NOT NULL,
    platform       TEXT NOT NULL,
    workspace      TEXT NOT NULL,
    channel        TEXT NOT NULL,
    thread         TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    webhook_secret TEXT NOT NULL,
    status         TEXT NOT NULL,
    title          TEXT NOT NULL DEFAULT '',
    message_id     TEXT,
    created_at     DOUBLE PRECISION NOT NULL,
    finished_at    DOUBLE PRECISION,
    output         TEXT[] NOT NULL DEFAULT '{}',
    error          TEXT
);

CREATE INDEX jobs_status ON jobs (status);
