-- ExecGov schema for SQLite. Timestamps are unix milliseconds; JSON is TEXT.
-- Keep in step with migrations/postgres: the same queries run against both.

CREATE TABLE runs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused, so audit run_ids stay unambiguous
    script           TEXT    NOT NULL,
    args             TEXT    NOT NULL,
    requester        TEXT    NOT NULL,
    requester_person TEXT,
    place            TEXT    NOT NULL,
    state            TEXT    NOT NULL CHECK (state IN (
                         'requested', 'refused', 'awaiting_approval', 'rejected', 'expired', 'queued',
                         'running', 'succeeded', 'failed', 'timed_out', 'cancelled', 'interrupted')),
    reason           TEXT,
    manifest_digest  TEXT    NOT NULL,
    max_concurrent   INTEGER NOT NULL,
    timeout_ms       INTEGER NOT NULL,
    risk             TEXT    NOT NULL,
    quorum           INTEGER NOT NULL,
    approvers        TEXT    NOT NULL,
    expires_at       INTEGER,
    schedule_key     TEXT UNIQUE,
    created_at       INTEGER NOT NULL,
    queued_at        INTEGER,
    started_at       INTEGER,
    finished_at      INTEGER,
    exit_code        INTEGER,
    error            TEXT,
    log_path         TEXT,
    log_bytes        INTEGER NOT NULL DEFAULT 0,
    log_dropped      INTEGER NOT NULL DEFAULT 0,
    output_tail      TEXT,
    result           TEXT,
    progress_pct     INTEGER,
    progress_text    TEXT,
    worker           TEXT,
    lease_until      INTEGER,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE INDEX runs_queue ON runs (state, queued_at, id);
CREATE INDEX runs_script_state ON runs (script, state);
CREATE INDEX runs_person ON runs (requester_person, id);

CREATE TABLE approvals (
    run_id   INTEGER NOT NULL REFERENCES runs (id),
    approver TEXT    NOT NULL,
    approve  BOOLEAN NOT NULL,
    reason   TEXT,
    at       INTEGER NOT NULL,
    digest   TEXT    NOT NULL,
    PRIMARY KEY (run_id, approver) -- one decision per approver and run
);

CREATE TABLE artifacts (
    run_id INTEGER NOT NULL REFERENCES runs (id),
    name   TEXT    NOT NULL,
    path   TEXT    NOT NULL,
    size   INTEGER NOT NULL,
    sha256 TEXT    NOT NULL,
    PRIMARY KEY (run_id, name)
);

-- The hash chain: see src/store/audit.rs for how `hash` is computed.
CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY, -- assigned by the writer under the write lock, never by the database
    at        INTEGER NOT NULL,
    actor     TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    run_id    INTEGER REFERENCES runs (id),
    details   TEXT    NOT NULL,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL
);

CREATE INDEX audit_run ON audit (run_id, seq);

-- Append-only: the application never updates or deletes audit rows. Anyone who drops
-- these triggers to edit history is still caught by the hash chain.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit is append-only');
END;

CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit is append-only');
END;

CREATE TABLE workers (
    worker    TEXT    PRIMARY KEY,
    last_seen INTEGER NOT NULL
);

-- Chat platforms redeliver events; an adapter handles an event id once.
CREATE TABLE inbound_events (
    event_id TEXT    PRIMARY KEY,
    at       INTEGER NOT NULL
);

CREATE INDEX inbound_events_at ON inbound_events (at);
