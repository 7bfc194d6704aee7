//! Reading the audit log a page at a time for `execgov audit export`.

use super::audit::AuditEntry;
use super::sql::args;
use super::{Store, StoreError};

impl Store {
    /// Up to `limit` entries after `after_seq` (in chain order) whose time is
    /// in `[since, until)`. An export pages on with the last `seq` it got, so
    /// memory stays bounded however long the log is.
    pub async fn audit_between(
        &self,
        after_seq: i64,
        since: i64,
        until: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = self
            .fetch_all(
                "SELECT * FROM audit WHERE seq > $1 AND at >= $2 AND at < $3 ORDER BY seq LIMIT $4",
                args![after_seq, since, until, limit.clamp(1, 10_000)],
            )
            .await?;
        rows.iter().map(AuditEntry::from_row).collect()
    }
}
