-- The audit chain's head (seq and hash of the newest entry) in a row of its own:
-- every writer reads and moves it when it appends (see src/store/audit.rs), and
-- on PostgreSQL it is the one row all writers lock, only from their append to
-- their commit. Keep in step with migrations/sqlite.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT  NOT NULL,
    hash TEXT    NOT NULL
);

INSERT INTO audit_head (id, seq, hash)
SELECT 1,
       COALESCE((SELECT seq FROM audit ORDER BY seq DESC LIMIT 1), 0),
       COALESCE((SELECT hash FROM audit ORDER BY seq DESC LIMIT 1),
                '0000000000000000000000000000000000000000000000000000000000000000');
