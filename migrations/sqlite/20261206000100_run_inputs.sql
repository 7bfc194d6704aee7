-- Files sent with a request (`type = "file"` parameters): kept with the run,
-- handed to the runner with its job, checked there against `sha256` (which
-- the run's arguments, and so its approval, carry).
CREATE TABLE run_inputs (
    run_id BIGINT NOT NULL,
    param TEXT NOT NULL,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (run_id, param)
);
