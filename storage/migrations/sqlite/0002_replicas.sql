-- Several processes on one database: turns and jobs name the replica running them, replicas
-- beat, leases keep per-thread order and per-person caps, and a Stop click on one replica
-- reaches the owner of the turn through stop_requests.

ALTER TABLE turns ADD COLUMN owner TEXT;
ALTER TABLE jobs ADD COLUMN owner TEXT;

CREATE TABLE replicas (
    id      TEXT PRIMARY KEY,
    seen_at REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE stop_requests (
    turn_id      TEXT PRIMARY KEY,
    requested_at REAL NOT NULL
) WITHOUT ROWID;
