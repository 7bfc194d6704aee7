-- The web UI and JSON API: indexes for the /runs filters (newest first, keyset on
-- id, so a page stays fast at millions of runs), and the sign-in tables.
-- Every token (login link, session cookie, API token) is stored as the lowercase hex
-- SHA-256 of the token; the token itself never reaches the database.
-- Keep in step with migrations/postgres.

CREATE INDEX runs_script_id ON runs (script, id);
CREATE INDEX runs_state_id ON runs (state, id);
CREATE INDEX runs_created ON runs (created_at, id);

-- One-time sign-in links sent in chat by `login`; used once, expire in minutes.
CREATE TABLE web_login_tokens (
    token_hash TEXT    PRIMARY KEY,
    person     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);

CREATE INDEX web_login_tokens_expiry ON web_login_tokens (expires_at);

-- Browser sessions (the session cookie's hash).
CREATE TABLE web_sessions (
    token_hash TEXT    PRIMARY KEY,
    person     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);

-- Per-person API tokens for /api/v1 (Authorization: Bearer …).
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash   TEXT    NOT NULL UNIQUE,
    person       TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);

CREATE INDEX api_tokens_person ON api_tokens (person, id);
