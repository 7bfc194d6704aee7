//! The `runs` table, declared once.
//!
//! [`runs_table!`] below lists every column of `runs` with its Rust type. From
//! that one list come the [`Run`] and [`NewRun`] structs, the INSERT (its
//! column list and its values, in one order), decoding a row on either backend,
//! and the UPDATE a change writes (only the columns whose values changed). To
//! add a column, see `docs/store.md`: the list here, the two migrations, and
//! the code that sets it.
//!
//! `fixed` columns are set when the run is recorded ([`NewRun`]) and never
//! change. `changing` columns start at their type's default (the first state
//! and its reason come from [`NewRun`]) and change only through the store's
//! write operations: a transition's edit, a claim, a lease, progress, a cancel.

use std::sync::LazyLock;

use serde::Serialize;

use super::StoreError;
use super::sql::{Column, Row, Value};
use crate::types::{Approvers, Args, PersonId, Place, Risk, RunId, RunState};

macro_rules! runs_table {
    (
        fixed { $( $(#[doc = $fdoc:literal])* $f:ident : $ft:ty, )* }
        changing { $( $(#[doc = $cdoc:literal])* $c:ident : $ct:ty, )* }
    ) => {
        /// One run as stored. Timestamps are unix milliseconds.
        #[derive(Debug, Clone, PartialEq, Serialize)]
        pub struct Run {
            pub id: RunId,
            $( $(#[doc = $fdoc])* pub $f: $ft, )*
            $( $(#[doc = $cdoc])* pub $c: $ct, )*
        }

        /// What the engine knows when it records a request: the fixed columns,
        /// and the state policy chose with its reason. The store assigns the id.
        #[derive(Debug, Clone)]
        pub struct NewRun {
            $( $(#[doc = $fdoc])* pub $f: $ft, )*
            /// Only `Refused`, `AwaitingApproval` or `Queued`: the outcome of policy.
            pub state: RunState,
            /// Why policy refused, for `Refused`.
            pub reason: Option<String>,
            /// Files sent with the request (`type = "file"`), kept in `run_inputs`.
            pub inputs: Vec<crate::types::FileInput>,
        }

        /// Every column but `id`, in the order of [`Run::values`].
        const COLUMNS: &[&str] = &[ $( stringify!($f), )* $( stringify!($c), )* ];
        /// How many of [`COLUMNS`] are fixed (they come first).
        const FIXED: usize = [ $( stringify!($f), )* ].len();

        impl Run {
            /// The row `new` becomes as run `id`: every changing column at its
            /// default but the first state, its reason and its timestamp.
            pub(super) fn recorded(new: NewRun, id: RunId) -> Run {
                let NewRun { $( $f, )* state, reason, inputs: _ } = new;
                let mut run = Run {
                    id,
                    $( $f, )*
                    $( $c: Default::default(), )*
                };
                run.state = state;
                run.reason = reason;
                let at = run.created_at;
                run.stamp(at);
                run
            }

            /// Every column but `id`, as bound values, in [`COLUMNS`] order.
            pub(super) fn values(&self) -> Vec<Value> {
                vec![ $( self.$f.to_value(), )* $( self.$c.to_value(), )* ]
            }

            pub(super) fn from_row(r: &Row) -> Result<Run, StoreError> {
                Ok(Run {
                    id: r.get("id")?,
                    $( $f: r.get(stringify!($f))?, )*
                    $( $c: r.get(stringify!($c))?, )*
                })
            }
        }
    };
}

runs_table! {
    fixed {
        script: String,
        args: Args,
        /// `Actor::audit_name()` of whoever asked.
        requester: String,
        /// The configured person behind the requester, if any ("my runs", visibility).
        requester_person: Option<PersonId>,
        /// Where the request came from, so replies go back there.
        place: Place,
        /// Digest of the manifest and script files as validated: an approval is
        /// bound to it, and nothing else is run.
        manifest_digest: String,
        max_concurrent: i64,
        timeout_ms: i64,
        risk: Risk,
        /// Distinct approvals needed before the run is queued (0: none).
        quorum: i64,
        /// Who may approve, as policy worked it out at the request.
        approvers: Approvers,
        /// When an unanswered approval request expires.
        expires_at: Option<i64>,
        /// Unique when set: a scheduler records each firing once.
        schedule_key: Option<String>,
        created_at: i64,
        /// Tags a runner must all have to take the run; empty: the service's
        /// own local runner takes it.
        runs_on: Vec<String>,
        /// The manifest's `[[rule]]` that set this run's risk and approval, if one held.
        rule: Option<String>,
        /// Break-glass: why the run started without waiting for the approval
        /// it needed (`run!`); it stays marked until an approver reviews it.
        break_glass: Option<String>,
        /// A preview (`[approval] preview`): the run awaiting approval it
        /// previews; it runs with the preview's extra arguments, never needs
        /// approval, and its outcome is shown on that run's approval request.
        preview_of: Option<RunId>,
    }
    changing {
        state: RunState,
        /// Why it was refused, rejected or interrupted.
        reason: Option<String>,
        queued_at: Option<i64>,
        started_at: Option<i64>,
        finished_at: Option<i64>,
        exit_code: Option<i64>,
        error: Option<String>,
        log_path: Option<String>,
        /// The log's size: as its runner reported it, and once retention
        /// removed the log, the size of what was removed.
        log_bytes: i64,
        log_dropped: i64,
        /// The last ~3,000 characters of masked output, for chat.
        output_tail: Option<String>,
        /// The script's `EXECGOV_RESULT` JSON.
        result: Option<serde_json::Value>,
        progress_pct: Option<i64>,
        progress_text: Option<String>,
        /// The worker holding the run while it is `running`.
        worker: Option<String>,
        /// The worker must renew before this or the run becomes `interrupted`.
        lease_until: Option<i64>,
        /// Someone asked to cancel a running run; its worker stops it.
        cancel_requested: bool,
        /// When its runner started the script's process (an interrupted run
        /// whose script had started may have run partly).
        script_started_at: Option<i64>,
        /// The approver who reviewed a break-glass run, and when.
        reviewed_by: Option<String>,
        reviewed_at: Option<i64>,
        /// When an unreviewed break-glass run was posted again as overdue.
        review_reminded_at: Option<i64>,
        /// Retention (`docs/retention.md`): when the log was removed, and the
        /// sha256 of the removed log (none when the run had no log).
        log_pruned_at: Option<i64>,
        log_sha256: Option<String>,
        /// When retention removed the bytes of the run's files (their names
        /// and digests stay in `artifacts`).
        files_pruned_at: Option<i64>,
        /// When retention removed the output tail, the result and the run folder.
        output_pruned_at: Option<i64>,
    }
}

/// `INSERT INTO runs (every column but id) VALUES ($1, …) RETURNING id`.
pub(super) static INSERT: LazyLock<String> = LazyLock::new(|| {
    let marks: Vec<String> = (1..=COLUMNS.len()).map(|n| format!("${n}")).collect();
    format!(
        "INSERT INTO runs ({}) VALUES ({}) RETURNING id",
        COLUMNS.join(", "),
        marks.join(", ")
    )
});

impl Run {
    /// Stamps the timestamp of the state the run is in now.
    pub(super) fn stamp(&mut self, now: i64) {
        match self.state {
            RunState::Queued => self.queued_at = Some(now),
            RunState::Running => self.started_at = Some(now),
            s if s.is_final() => self.finished_at = Some(now),
            _ => {}
        }
    }

    /// The UPDATE that turns `before` (as stored) into `self`: `$1` the id, `$2`
    /// the state it must still be in, then the changed columns. `None` when
    /// nothing changed. A change to a fixed column is refused.
    pub(super) fn update_from(
        &self,
        before: &Run,
    ) -> Result<Option<(String, Vec<Value>)>, StoreError> {
        let (old, new) = (before.values(), self.values());
        if let Some(i) = (0..FIXED).find(|&i| old[i] != new[i]) {
            return Err(StoreError::Corrupt(format!(
                "run {}: column `{}` is set when the run is recorded and never changes",
                self.id, COLUMNS[i]
            )));
        }
        let mut sets = Vec::new();
        let mut args = vec![Value::from(self.id.0), Value::from(before.state.as_str())];
        for (i, value) in new.into_iter().enumerate().skip(FIXED) {
            if value != old[i] {
                args.push(value);
                sets.push(format!("{} = ${}", COLUMNS[i], args.len()));
            }
        }
        if sets.is_empty() {
            return Ok(None);
        }
        let sql = format!(
            "UPDATE runs SET {} WHERE id = $1 AND state = $2",
            sets.join(", ")
        );
        Ok(Some((sql, args)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::new_run;

    #[test]
    fn the_insert_names_every_column_once_and_binds_each() {
        let run = Run::recorded(new_run("s", "p"), RunId(1));
        assert_eq!(run.values().len(), COLUMNS.len(), "one value per column");
        assert!(INSERT.contains(&format!("${}", COLUMNS.len())));
        let mut names = COLUMNS.to_vec();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), COLUMNS.len(), "no column twice");
    }

    #[test]
    fn an_update_writes_only_what_changed() {
        let before = Run::recorded(new_run("s", "p"), RunId(7));
        let mut after = before.clone();
        after.state = RunState::Running;
        after.worker = Some("w1".into());
        let (sql, args) = after.update_from(&before).unwrap().expect("a change");
        assert_eq!(
            sql,
            "UPDATE runs SET state = $3, worker = $4 WHERE id = $1 AND state = $2"
        );
        assert_eq!(args[1], Value::from("queued"), "guarded by the old state");
        assert!(before.update_from(&before).unwrap().is_none());
    }

    #[test]
    fn a_fixed_column_never_changes() {
        let before = Run::recorded(new_run("s", "p"), RunId(7));
        let mut after = before.clone();
        after.script = "other".into();
        let err = after.update_from(&before).unwrap_err().to_string();
        assert!(err.contains("`script`"), "{err}");
    }
}
