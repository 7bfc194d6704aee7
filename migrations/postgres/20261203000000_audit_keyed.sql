-- Keyed audit entries (see src/store/audit.rs): each entry says how its hash was
-- made, 'sha256' (the plain form every entry before this migration has) or
-- 'hmac-sha256' (keyed with the audit key held outside the database). The head
-- remembers the kind and key id of the newest entry, so a process without the
-- key, or with another key, refuses to append to a keyed chain.
ALTER TABLE audit ADD COLUMN hash_kind TEXT NOT NULL DEFAULT 'sha256';
ALTER TABLE audit_head ADD COLUMN hash_kind TEXT NOT NULL DEFAULT 'sha256';
ALTER TABLE audit_head ADD COLUMN key_id TEXT;
