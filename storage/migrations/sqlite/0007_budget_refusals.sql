-- What a replica learned from a platform's 429 about one shared budget (its rate now, its
-- ceiling and until when), so every replica of the app adopts it instead of earning its own.

CREATE TABLE budget_refusals (
    name     TEXT PRIMARY KEY,
    source   TEXT NOT NULL,
    rate     REAL NOT NULL,
    ceiling  REAL NOT NULL,
    until_at REAL NOT NULL,
    at       REAL NOT NULL
);

CREATE INDEX budget_refusals_at ON budget_refusals (at);
