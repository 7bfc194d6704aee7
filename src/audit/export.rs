//! `execgov audit export`: the audit log as JSON lines in a documented,
//! versioned shape (docs/audit.md#export), streamed a page at a time so memory
//! stays flat however many entries there are.

use std::io::Write;

use serde_json::json;

use crate::store::{AuditEntry, Store};

/// The `schema` every exported line carries; a change of shape gets a new one.
pub const SCHEMA: &str = "execgov.audit/1";

/// Entries read per query.
const PAGE: i64 = 2_000;

/// Which end of the range a bound is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Since,
    Until,
}

/// A bound as typed: `2026-11-01` (a whole UTC day: `--since` from its start,
/// `--until` through its end) or an RFC 3339 time (`2026-11-01T12:00:00Z`).
/// Answers epoch milliseconds; `Err` says what is accepted.
pub fn parse_bound(text: &str, end: End) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let day = match end {
            End::Since => day,
            End::Until => day.succ_opt().ok_or("that date is out of range")?,
        };
        let start = day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
        return Ok(start.timestamp_millis());
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            format!(
                "`{text}` is not a date: write YYYY-MM-DD (a UTC day) or an RFC 3339 time such as 2026-11-01T12:00:00Z"
            )
        })
}

/// One entry as one exported line (no newline).
pub fn line(e: &AuditEntry) -> String {
    let at = chrono::DateTime::from_timestamp_millis(e.at)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default();
    json!({
        "schema": SCHEMA,
        "seq": e.seq,
        "at": at,
        "at_ms": e.at,
        "actor": e.actor,
        "action": e.action,
        "run_id": e.run_id,
        "details": e.details,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
        "hash_kind": e.hash_kind,
    })
    .to_string()
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exported {
    pub entries: u64,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
}

/// Writes every entry with `since <= at < until` to `out`, in chain order, a
/// page at a time; `progress` is told the count after each page.
pub async fn export(
    store: &Store,
    since: i64,
    until: i64,
    out: &mut dyn Write,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<Exported> {
    let mut done = Exported::default();
    let mut after = 0;
    loop {
        let page = store.audit_between(after, since, until, PAGE).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.seq;
        for e in &page {
            out.write_all(line(e).as_bytes())?;
            out.write_all(b"\n")?;
        }
        done.first_seq.get_or_insert(page[0].seq);
        done.last_seq = Some(after);
        done.entries += page.len() as u64;
        progress(done.entries);
    }
    out.flush()?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_covers_the_whole_utc_day_and_rfc3339_is_exact() {
        let since = parse_bound("2026-11-01", End::Since).unwrap();
        let until = parse_bound("2026-11-01", End::Until).unwrap();
        assert_eq!(until - since, 24 * 3600 * 1000);
        assert_eq!(
            parse_bound("2026-11-01T00:00:00Z", End::Until).unwrap(),
            since
        );
        assert_eq!(
            parse_bound("2026-11-01T01:00:00+01:00", End::Since).unwrap(),
            since
        );
        let e = parse_bound("last tuesday", End::Since).unwrap_err();
        assert!(e.contains("YYYY-MM-DD"), "{e}");
    }
}
