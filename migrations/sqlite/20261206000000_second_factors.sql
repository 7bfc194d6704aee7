-- Step-up approval (docs/step-up.md): one TOTP second factor per person.
-- `secret` is sealed under a key derived from the server secret (src/totp.rs),
-- so the database alone cannot produce codes. `last_step` is the newest time
-- step whose code was accepted: a code is accepted once. Five wrong codes in a
-- row lock the person's approvals until `locked_until`.
CREATE TABLE second_factors (
    person TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    confirmed_at BIGINT,
    last_step BIGINT NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    locked_until BIGINT
);
