-- Platform rate budgets shared by every replica of one app (Slack per workspace and method,
-- Discord per bot token): one token bucket per row, refilled and drawn in one statement.

CREATE TABLE budgets (
    name   TEXT PRIMARY KEY,
    tokens DOUBLE PRECISION NOT NULL,
    at     DOUBLE PRECISION NOT NULL
);
