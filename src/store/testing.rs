//! Fresh databases for tests: a SQLite file in its own temporary folder, or a
//! PostgreSQL schema of its own, so tests run in parallel without seeing each other.
//!
//! PostgreSQL is reached through `EXECGOV_TEST_POSTGRES_URL`; when it is unset the
//! PostgreSQL variants fail (they never pass silently).
//! Public rather than `cfg(test)` so that the black-box tests in `tests/` can use it.

use std::path::PathBuf;

use sqlx::{AssertSqlSafe, Connection, PgConnection};

use super::{NewRun, Store};
use crate::types::{Approvers, ArgValue, PersonId, Place, Platform, Risk, RunState};

/// The variable naming the PostgreSQL server tests use.
pub const POSTGRES_URL_VAR: &str = "EXECGOV_TEST_POSTGRES_URL";

/// Keeps a test database alive; dropping it removes the SQLite folder or drops the
/// PostgreSQL schema.
#[derive(Debug)]
pub struct Guard {
    url: String,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    Folder(PathBuf),
    Schema { base_url: String, schema: String },
}

impl Guard {
    /// The URL of the test database, for a second [`Store::connect`] (another
    /// "process") or an application config.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Folder(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Schema { base_url, schema } => {
                // Drop runs inside the test's runtime, which cannot be blocked on:
                // do the async work on a thread with its own small runtime.
                let (base_url, schema) = (base_url.clone(), schema.clone());
                let dropped = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .ok()?;
                    rt.block_on(async {
                        let mut conn = PgConnection::connect(&base_url).await.ok()?;
                        let sql = format!(
                            "SET lock_timeout = '5s'; DROP SCHEMA IF EXISTS {schema} CASCADE"
                        );
                        sqlx::raw_sql(AssertSqlSafe(sql))
                            .execute(&mut conn)
                            .await
                            .ok()
                    })
                });
                let _ = dropped.join();
            }
        }
    }
}

/// A migrated store on a database nobody else uses. `backend` is `"sqlite"` or
/// `"postgres"`; the latter panics with instructions when
/// `EXECGOV_TEST_POSTGRES_URL` is unset.
pub async fn fresh_store(backend: &str) -> (Store, Guard) {
    let guard = fresh_database(backend).await;
    let store = Store::connect(guard.url())
        .await
        .unwrap_or_else(|e| panic!("connecting to the fresh {backend} test database: {e}"));
    (store, guard)
}

/// A URL for a database nobody else uses (not yet migrated), and the guard that
/// removes it. `backend` is `"sqlite"` or `"postgres"`.
pub async fn fresh_database(backend: &str) -> Guard {
    match backend {
        "sqlite" => {
            let dir = std::env::temp_dir().join(format!(
                "execgov-test-{}-{:016x}",
                std::process::id(),
                rand::random::<u64>()
            ));
            let url = format!("sqlite://{}/execgov.db", dir.display());
            Guard {
                url,
                cleanup: Cleanup::Folder(dir),
            }
        }
        "postgres" => {
            let (url, base_url, schema) = new_schema().await;
            Guard {
                url,
                cleanup: Cleanup::Schema { base_url, schema },
            }
        }
        other => panic!("unknown test backend `{other}` (expected sqlite or postgres)"),
    }
}

/// Creates a unique schema on the server of `EXECGOV_TEST_POSTGRES_URL` and returns
/// a URL whose connections use it (`options=-c search_path=…`). The schema outlives
/// the test; prefer [`fresh_database`], whose guard drops it.
pub async fn fresh_postgres_url() -> String {
    new_schema().await.0
}

/// `(url with search_path, base url, schema name)`.
async fn new_schema() -> (String, String, String) {
    let base = std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| {
        panic!(
            "{POSTGRES_URL_VAR} is not set: set it to run the PostgreSQL variants of the \
             tests, e.g. {POSTGRES_URL_VAR}=postgres://postgres@127.0.0.1:5432/postgres"
        )
    });
    let schema = format!("execgov_test_{:016x}", rand::random::<u64>());
    let mut conn = PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("connecting to {POSTGRES_URL_VAR}={base}: {e}"));
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("creating test schema {schema}: {e}"));
    let _ = conn.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    (url, base, schema)
}

/// Lifts the triggers that make the audit table append-only, so a test can play the
/// attacker who edits history with raw SQL (via [`Store::exec_raw`]); the hash chain
/// must still catch it.
pub async fn allow_audit_tampering(store: &Store) {
    let sql = match store.backend_name() {
        "sqlite" => "DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;",
        _ => "ALTER TABLE audit DISABLE TRIGGER USER;",
    };
    store
        .exec_raw(sql)
        .await
        .expect("lifting the audit table's append-only triggers");
}

/// A queued run of `script` asked by person `who` in a Slack channel, with one
/// argument; tests change what they need with `..new_run(…)`.
pub fn new_run(script: &str, who: &str) -> NewRun {
    NewRun {
        script: script.into(),
        args: [("n".to_string(), ArgValue::Int(1))].into(),
        requester: format!("person:{who}"),
        requester_person: Some(PersonId(who.into())),
        place: Place::new(Platform::Slack, "C1"),
        manifest_digest: "d".into(),
        max_concurrent: 1,
        timeout_ms: 1000,
        risk: Risk::Low,
        quorum: 0,
        approvers: Approvers::default(),
        expires_at: None,
        schedule_key: None,
        created_at: 1_000,
        runs_on: Vec::new(),
        rule: None,
        break_glass: None,
        preview_of: None,
        state: RunState::Queued,
        reason: None,
        inputs: Vec::new(),
    }
}

/// `new` as the store records it as run `id`, without a database (for code
/// that renders runs).
pub fn recorded(new: NewRun, id: crate::types::RunId) -> super::Run {
    super::Run::recorded(new, id)
}

/// A service's local runner named `name` (it takes runs with no `runs_on`).
pub fn local_runner(name: &str) -> super::RunnerIdentity {
    super::RunnerIdentity {
        name: name.to_string(),
        tags: Vec::new(),
        local: true,
    }
}
