-- Runners: processes on the hosts where scripts live, which claim runs over HTTP
-- (src/runners, docs/runners.md). The server keeps only hashes of their tokens.
-- Keep in step with migrations/postgres.
CREATE TABLE runners (
    name             TEXT    PRIMARY KEY,
    tags             TEXT    NOT NULL,            -- JSON array of tags
    local            BOOLEAN NOT NULL DEFAULT FALSE, -- a service's own local runner
    enrol_hash       TEXT    UNIQUE,              -- the one-time enrolment token, until used
    enrol_expires_at INTEGER,
    credential_hash  TEXT    UNIQUE,              -- the runner's own credential, once enrolled
    created_at       INTEGER NOT NULL,
    enrolled_at      INTEGER,
    revoked_at       INTEGER,
    last_seen        INTEGER,
    slots            INTEGER NOT NULL DEFAULT 0,
    hostname         TEXT
);

-- A run's log as its runner sent it: chunks at byte offsets, each stored once.
CREATE TABLE log_chunks (
    run_id  INTEGER NOT NULL REFERENCES runs (id),
    at_byte INTEGER NOT NULL,
    data    BLOB    NOT NULL,
    PRIMARY KEY (run_id, at_byte)
);

-- The bytes of a run's files (their names and digests are in `artifacts`).
CREATE TABLE artifact_data (
    run_id INTEGER NOT NULL,
    name   TEXT    NOT NULL,
    data   BLOB    NOT NULL,
    PRIMARY KEY (run_id, name),
    FOREIGN KEY (run_id, name) REFERENCES artifacts (run_id, name)
);

-- The tags a run needs of its runner ([] : the local runner), and when its
-- script's process started (an interrupted run says whether it may have run).
ALTER TABLE runs ADD COLUMN runs_on TEXT NOT NULL DEFAULT '[]';
ALTER TABLE runs ADD COLUMN script_started_at INTEGER;
