-- Retention (docs/retention.md): what was removed from a finished run and when;
-- the removed log's sha256 (its size is in log_bytes). The run row stays.
ALTER TABLE runs ADD COLUMN log_pruned_at BIGINT;
ALTER TABLE runs ADD COLUMN log_sha256 TEXT;
ALTER TABLE runs ADD COLUMN files_pruned_at BIGINT;
ALTER TABLE runs ADD COLUMN output_pruned_at BIGINT;
