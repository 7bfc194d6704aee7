-- What the notifier has shown in chat for each run: one row per (run, role, place).
-- role: 'status' (the run's status message where it was asked or posted to),
-- 'approval' (the request in an approver channel), 'note:<key>' (a one-off thread note).
CREATE TABLE chat_posts (
    run_id        BIGINT NOT NULL REFERENCES runs (id),
    role          TEXT NOT NULL,
    place_key     TEXT NOT NULL,
    place         TEXT NOT NULL,
    message_id    TEXT,
    shown         TEXT,
    result_posted BOOLEAN NOT NULL DEFAULT FALSE,
    done          BOOLEAN NOT NULL DEFAULT FALSE,
    attempts      BIGINT NOT NULL DEFAULT 0,
    next_at       BIGINT NOT NULL DEFAULT 0,
    last_error    TEXT,
    PRIMARY KEY (run_id, role, place_key)
);
CREATE INDEX chat_posts_pending ON chat_posts (done, next_at);
CREATE INDEX runs_finished ON runs (finished_at);
