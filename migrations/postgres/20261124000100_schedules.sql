-- The scheduler's state beside the runs, and the manifest reload request.
-- Each fire is recorded once by runs.schedule_key (UNIQUE); this table says which
-- fires a schedule has handled, so a restart knows what it missed.
-- Keep in step with migrations/sqlite.

-- One row per schedule, `<script>/<schedule name>`.
CREATE TABLE schedule_state (
    id           TEXT    PRIMARY KEY,
    spec         TEXT    NOT NULL, -- the cron expression and timezone last_fire_at belongs to
    last_fire_at BIGINT  NOT NULL, -- the latest fire time handled: fired, skipped or given up
    updated_at   BIGINT  NOT NULL
);

-- `execgov reload`: one row whose generation every server polls; a change means reload.
CREATE TABLE reload_requests (
    id           BIGINT  PRIMARY KEY CHECK (id = 1),
    generation   BIGINT  NOT NULL,
    requested_at BIGINT  NOT NULL,
    requested_by TEXT    NOT NULL
);
