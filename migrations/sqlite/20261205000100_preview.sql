-- A preview run (`[approval] preview`, docs/preview.md): the run awaiting
-- approval whose request shows its outcome.
ALTER TABLE runs ADD COLUMN preview_of INTEGER;
CREATE INDEX runs_preview_of ON runs (preview_of) WHERE preview_of IS NOT NULL;
