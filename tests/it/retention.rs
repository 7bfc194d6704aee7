//! Retention end to end on both backends (injected clock): past `[retention]`
//! a finished run loses its log (rows and files), the bytes of its files and
//! then its output and run folder, while its row, its files' names and digests
//! and every audit entry stay; the run page, the log download (410) and
//! `execgov show` say what went, when, and the removed log's sha256; one
//! `retention.pruned` entry per batch says so; `audit verify` still holds.
//! Runs newer than the cut are untouched, an unset retention keeps everything,
//! and a backlog larger than one batch goes in several writes.

use crate::both_backends;
use crate::helpers::*;
use crate::web_support::WebApp;
use execgov::clock::{Clock, ManualClock, SystemClock};
use execgov::retention::Pass;
use execgov::store::Run;
use execgov::types::{RunId, RunState};
use sha2::{Digest, Sha256};
use std::time::Duration;

const DAY: i64 = 24 * 3600 * 1000;

const REPORT: &str = r#"name = "report"
description = "Print a line, write a CSV file and a result"
command = ["sh", "scripts/report.sh", "{note}"]
timeout = "20s"
[[param]]
name = "note"
type = "string"
default = "hello"
[access]
run = ["anyone"]
"#;

const REPORT_SH: &str = "echo \"report for $1\"\nprintf 'col\\n%s\\n' \"$1\" > \"$EXECGOV_OUTPUT_DIR/report.csv\"\nprintf '{\"rows\": 1}' > \"$EXECGOV_RESULT\"\n";

/// A test folder with the `report` manifest and `retention` appended to the config.
async fn env_with(backend: Backend, retention: &str) -> TestEnv {
    let env = TestEnv::new(backend).await;
    let m = env.path().join("manifests");
    std::fs::write(m.join("report.toml"), REPORT).unwrap();
    std::fs::write(m.join("scripts/report.sh"), REPORT_SH).unwrap();
    let mut config = std::fs::read_to_string(env.config_path()).unwrap();
    config.push_str(retention);
    std::fs::write(env.config_path(), config).unwrap();
    env
}

/// Asks for `line` as alice and waits for the run to succeed.
async fn run_ok(e: &execgov::engine::Engine, line: &str) -> Run {
    let reply = say(e, &person("alice"), line).await;
    let run = reply.run.unwrap_or_else(|| panic!("{}", reply.text));
    let run = wait_final(e, run.id).await;
    assert_eq!(run.state, RunState::Succeeded, "{:?}", run.error);
    run
}

/// The sha256 (hex) and size of the run's stored log.
async fn log_digest(e: &execgov::engine::Engine, id: RunId) -> (String, u64) {
    let log = e.store().log_bytes(id, 0, u64::MAX).await.unwrap();
    assert!(!log.is_empty(), "run {id} has a log");
    (hex::encode(Sha256::digest(&log)), log.len() as u64)
}

/// The `retention.pruned` entries, oldest first.
async fn pruned_entries(e: &execgov::engine::Engine) -> Vec<execgov::store::AuditEntry> {
    e.store()
        .audit_entries(None, 0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.action == "retention.pruned")
        .collect()
}

/// `execgov audit verify` on the test's config says ok.
fn verify_ok(env: &TestEnv) {
    let out = execgov(&env.config_path(), &["audit", "verify"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.starts_with("ok:"),
        "audit verify holds after pruning: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

both_backends!(
    retention_removes_old_payloads_and_keeps_rows_digests_and_the_chain,
    |b| async move {
        let env = env_with(
            b,
            "\n[retention]\nlogs = \"90d\"\nartifacts = \"90d\"\nruns = \"400d\"\n",
        )
        .await;
        let clock = ManualClock::new(SystemClock.now_ms());
        let app = WebApp::start_in(env, "", clock.clone()).await;
        let e = app.engine.clone();
        let config = e.config().clone();

        let old = [
            run_ok(&e, "run report note=first").await,
            run_ok(&e, "run report note=second").await,
        ];
        let mut digests = Vec::new();
        for r in &old {
            digests.push(log_digest(&e, r.id).await);
            assert!(r.output_tail.is_some() && r.result.is_some());
            assert!(config.runner.runs_dir.join(r.id.to_string()).is_dir());
            // The copy a chat upload makes under data_dir/artifacts/<run>/.
            let on_disk = execgov::runs_data::artifacts_on_disk(&e, r.id)
                .await
                .unwrap();
            assert_eq!(on_disk.len(), 1);
            assert!(std::path::Path::new(&on_disk[0].path).is_file());
        }
        let files_before = e.store().artifacts(old[0].id).await.unwrap();

        clock.advance(91 * DAY);
        let fresh = run_ok(&e, "run report note=fresh").await;
        let fresh_digest = log_digest(&e, fresh.id).await;

        // Act: one housekeeping pass past the logs' and files' retention.
        let report = execgov::housekeeping::prune_once(&e).await;
        let pruned = report.retention.expect("the retention pass ran");
        assert_eq!(
            (pruned.runs, pruned.logs, pruned.files, pruned.outputs),
            (2, 2, 2, 0),
            "the two old runs lose log and files, not yet their output: {pruned:?}"
        );

        for (r, (sha, bytes)) in old.iter().zip(&digests) {
            let now = e.store().get_run(r.id).await.expect("the run row stays");
            assert_eq!(now.state, RunState::Succeeded);
            assert_eq!(e.store().log_size(r.id).await.unwrap(), 0, "log rows gone");
            assert_eq!(now.log_sha256.as_deref(), Some(sha.as_str()), "digest kept");
            assert_eq!(now.log_bytes as u64, *bytes);
            assert!(now.log_pruned_at.is_some() && now.files_pruned_at.is_some());
            assert!(now.output_pruned_at.is_none() && now.output_tail.is_some());
            let files = e.store().artifacts(r.id).await.unwrap();
            assert_eq!(files.len(), 1, "the file's metadata stays");
            assert!(
                e.store()
                    .artifact_bytes(r.id, &files[0].name)
                    .await
                    .unwrap()
                    .is_none(),
                "its bytes are gone"
            );
            assert!(
                !config
                    .data_dir
                    .join("artifacts")
                    .join(r.id.to_string())
                    .exists(),
                "the copy on disk is gone"
            );
            assert!(
                config.runner.runs_dir.join(r.id.to_string()).is_dir(),
                "the run folder goes with `runs`, not yet"
            );
        }
        assert_eq!(
            e.store().artifacts(old[0].id).await.unwrap(),
            files_before,
            "names, sizes and sha256 of the files unchanged"
        );

        // The newer run is untouched.
        let f = e.store().get_run(fresh.id).await.unwrap();
        assert_eq!(log_digest(&e, fresh.id).await, fresh_digest);
        assert!(f.log_pruned_at.is_none() && f.files_pruned_at.is_none());
        assert!(
            e.store()
                .artifact_bytes(fresh.id, "report.csv")
                .await
                .unwrap()
                .is_some()
        );

        // One entry for the batch, by "retention", naming each run and its log's digest.
        let entries = pruned_entries(&e).await;
        assert_eq!(entries.len(), 1, "one entry per batch");
        assert_eq!(entries[0].actor, "retention");
        let runs = entries[0].details["runs"].as_array().unwrap();
        for (r, (sha, bytes)) in old.iter().zip(&digests) {
            let item = runs
                .iter()
                .find(|x| x["run"] == serde_json::json!(r.id))
                .unwrap_or_else(|| panic!("run {} in {runs:?}", r.id));
            assert_eq!(item["log_sha256"], serde_json::json!(sha));
            assert_eq!(item["log_bytes"], serde_json::json!(bytes));
            assert_eq!(item["removed"], serde_json::json!(["log", "files"]));
        }
        verify_ok(&app.env);

        // The run page and the downloads say so.
        let id = old[0].id;
        // (An audit link lasts a while from the run's end; these runs are 91 days old.)
        let token = e.links().token(id, e.now() + 60_000);
        let (status, page) = http_get(app.addr, &format!("/runs/{id}?t={token}")).await;
        assert_eq!(status, 200, "{page}");
        assert!(
            page.contains("Log removed by retention on") && page.contains(&digests[0].0),
            "the page says the log went, with its digest: {page}"
        );
        assert!(page.contains("Files removed by retention on"), "{page}");
        assert!(!page.contains("report for first"), "no log shown");
        let (status, body) = http_get(app.addr, &format!("/runs/{id}/log?t={token}")).await;
        assert_eq!(status, 410, "{body}");
        assert!(
            body.contains("removed by retention") && body.contains(&digests[0].0),
            "410 says why: {body}"
        );
        let (status, body) = http_get(
            app.addr,
            &format!("/runs/{id}/artifacts/report.csv?t={token}"),
        )
        .await;
        assert_eq!(status, 410, "{body}");
        assert!(body.contains("removed by retention"), "{body}");

        // `execgov show` says so.
        let out = execgov(&app.env.config_path(), &["show", &id.to_string()]);
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{shown}");
        assert!(
            shown.contains("log removed by retention on")
                && shown.contains(&format!("sha256 {}", digests[0].0)),
            "{shown}"
        );
        assert!(shown.contains("files removed by retention on"), "{shown}");

        // Past `runs`: output, result and run folder go too; the fresh run loses log and files.
        clock.advance(310 * DAY);
        let pruned = execgov::housekeeping::prune_once(&e)
            .await
            .retention
            .unwrap();
        assert_eq!(
            (pruned.runs, pruned.logs, pruned.files, pruned.outputs),
            (3, 1, 1, 2),
            "{pruned:?}"
        );
        for r in &old {
            let now = e.store().get_run(r.id).await.unwrap();
            assert!(now.output_pruned_at.is_some());
            assert!(now.output_tail.is_none() && now.result.is_none());
            assert!(!config.runner.runs_dir.join(r.id.to_string()).exists());
        }
        let f = e.store().get_run(fresh.id).await.unwrap();
        assert!(f.log_pruned_at.is_some() && f.output_pruned_at.is_none());
        let out = execgov(&app.env.config_path(), &["show", &id.to_string()]);
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(
            shown.contains("output and result removed by retention on"),
            "{shown}"
        );

        // A second pass finds nothing left to do.
        let again = execgov::housekeeping::prune_once(&e)
            .await
            .retention
            .unwrap();
        assert_eq!(again.runs, 0, "{again:?}");
        assert_eq!(pruned_entries(&e).await.len(), 2);
        verify_ok(&app.env);
    }
);

both_backends!(unset_retention_keeps_everything, |b| async move {
    let env = env_with(b, "").await;
    let clock = ManualClock::new(SystemClock.now_ms());
    let app = WebApp::start_in(env, "", clock.clone()).await;
    let e = app.engine.clone();
    let run = run_ok(&e, "run report note=kept").await;
    let digest = log_digest(&e, run.id).await;
    clock.advance(3650 * DAY);
    let report = execgov::housekeeping::prune_once(&e).await;
    assert!(report.retention.is_none(), "no [retention]: no pass");
    let kept = e.store().get_run(run.id).await.unwrap();
    assert_eq!(log_digest(&e, run.id).await, digest);
    assert!(kept.log_pruned_at.is_none() && kept.output_tail.is_some());
    assert!(
        e.store()
            .artifact_bytes(run.id, "report.csv")
            .await
            .unwrap()
            .is_some()
    );
    assert!(pruned_entries(&e).await.is_empty());
});

both_backends!(
    a_backlog_larger_than_a_batch_goes_in_several_writes,
    |b| async move {
        let env = env_with(b, "\n[retention]\nlogs = \"90d\"\n").await;
        let clock = ManualClock::new(SystemClock.now_ms());
        let app = WebApp::start_in(env, "", clock.clone()).await;
        let e = app.engine.clone();
        let mut first = Vec::new();
        for n in 0..5 {
            first.push(run_ok(&e, &format!("run echo-args note=n{n}")).await);
        }
        clock.advance(91 * DAY);
        let pass = Pass {
            batch: 2,
            log_budget: u64::MAX,
            pause: Duration::ZERO,
        };
        let pruned = execgov::housekeeping::prune_once_with(&e, &pass)
            .await
            .retention
            .unwrap();
        assert_eq!(
            (pruned.runs, pruned.batches),
            (5, 3),
            "2 + 2 + 1: {pruned:?}"
        );
        for r in &first {
            assert_eq!(e.store().log_size(r.id).await.unwrap(), 0, "run {}", r.id);
        }
        assert_eq!(pruned_entries(&e).await.len(), 3, "one entry per write");

        // A batch also closes when its logs reach the byte budget: one run per write here.
        let mut second = Vec::new();
        for n in 0..3 {
            second.push(run_ok(&e, &format!("run echo-args note=m{n}")).await);
        }
        clock.advance(91 * DAY);
        let pass = Pass {
            batch: 200,
            log_budget: 1,
            pause: Duration::ZERO,
        };
        let pruned = execgov::housekeeping::prune_once_with(&e, &pass)
            .await
            .retention
            .unwrap();
        assert_eq!((pruned.runs, pruned.batches), (3, 3), "{pruned:?}");
        for r in &second {
            let now = e.store().get_run(r.id).await.unwrap();
            assert!(now.log_sha256.is_some(), "run {}", r.id);
        }
        verify_ok(&app.env);
    }
);
