-- The manifest [[rule]] that set a run's risk and approval (src/manifest/rules.rs).
ALTER TABLE runs ADD COLUMN rule TEXT;
-- Break-glass (docs/break-glass.md): the reason a run started without waiting
-- for its approval, who reviewed it afterwards and when, and when it was posted
-- again for being overdue.
ALTER TABLE runs ADD COLUMN break_glass TEXT;
ALTER TABLE runs ADD COLUMN reviewed_by TEXT;
ALTER TABLE runs ADD COLUMN reviewed_at BIGINT;
ALTER TABLE runs ADD COLUMN review_reminded_at BIGINT;
CREATE INDEX runs_unreviewed ON runs (created_at)
    WHERE break_glass IS NOT NULL AND reviewed_at IS NULL;
