-- The first schema. Rows stay small (ids, short text, timestamps; no blobs) because a busy
-- bot keeps one thread row per conversation for a long time. Tables whose key is text use
-- WITHOUT ROWID so the key is stored once, not in both the table and its index.

CREATE TABLE threads (
    platform     TEXT NOT NULL,
    workspace    TEXT NOT NULL,
    channel      TEXT NOT NULL,
    thread       TEXT NOT NULL,
    session_id   TEXT NOT NULL UNIQUE,
    owner_id     TEXT NOT NULL,
    mode         TEXT CHECK (mode IN ('max', 'eco')),
    created_at   REAL NOT NULL,
    last_used_at REAL NOT NULL,
    PRIMARY KEY (platform, workspace, channel, thread)
) WITHOUT ROWID;

CREATE TABLE channels (
    platform   TEXT NOT NULL,
    workspace  TEXT NOT NULL,
    channel    TEXT NOT NULL,
    eco        INTEGER NOT NULL DEFAULT 0,
    changed_by TEXT,
    changed_at REAL,
    PRIMARY KEY (platform, workspace, channel)
) WITHOUT ROWID;

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
    started_at  REAL NOT NULL,
    finished_at REAL
) WITHOUT ROWID;

CREATE INDEX turns_status ON turns (status);

CREATE TABLE generations (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    url        TEXT NOT NULL,
    media_type TEXT NOT NULL,
    session_id TEXT NOT NULL,
    platform   TEXT NOT NULL,
    workspace  TEXT NOT NULL,
    channel    TEXT NOT NULL,
    thread     TEXT NOT NULL,
    message_id TEXT,
    created_at REAL NOT NULL
);

CREATE TABLE events (
    platform   TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (platform, event_id)
) WITHOUT ROWID;

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
    created_at     REAL NOT NULL,
    finished_at    REAL,
    output         TEXT NOT NULL DEFAULT '[]',
    error          TEXT
);

CREATE INDEX jobs_status ON jobs (status);
