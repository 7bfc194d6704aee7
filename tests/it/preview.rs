//! `[approval] preview`: before an approval request is posted, the script runs
//! once with the preview's arguments (its own run, linked, never approved), and
//! the request shows its outcome. Chat surfaces are tested in
//! `slack/approvals.rs` and `matrix/approvals.rs`; here the engine and store on
//! both backends, and the web page.

use crate::helpers::{Backend, person, say, start_with, wait_final};
use execgov::engine::Engine;
use execgov::types::{RunId, RunState};
use std::path::Path;

/// A high-risk script with a `--dry-run` preview: the preview prints what it
/// would do and returns a table; the real run writes its marker. A marker
/// named `fail` makes the preview fail (exit 3).
pub const PURGE: &str = r#"name = "purge"
description = "Purge old rows (the preview says which)"
command = ["sh", "scripts/purge.sh", "{marker}"]
timeout = "20s"
risk = "high"
[[param]]
name = "marker"
type = "string"
required = true
[access]
run = ["group:sre"]
[approval]
approvers = ["group:leads"]
channel = "approvals"
preview = ["--dry-run"]
"#;

pub const PURGE_SH: &str = r#"if [ "$2" = "--dry-run" ]; then
  case "$1" in *fail*) echo "cannot reach the database"; exit 3;; esac
  echo "would purge 3 rows older than 90 days"
  printf '{"rows": 3, "table": {"columns": ["table", "rows"], "rows": [["events", 2], ["sessions", 1]]}}' > "$EXECGOV_RESULT"
  exit 0
fi
echo purged > "$1"
echo "purged 3 rows"
"#;

/// Writes `purge` into the manifests folder `dir`.
pub fn write(dir: &Path) {
    std::fs::write(dir.join("purge.toml"), PURGE).unwrap();
    std::fs::write(dir.join("scripts/purge.sh"), PURGE_SH).unwrap();
}

/// Writes `purge` into `dir` and loads it into a running engine.
pub fn install(engine: &Engine, dir: &Path) {
    write(dir);
    let (catalog, problems) = execgov::manifest::load_catalog(dir, engine.config());
    assert!(problems.is_empty(), "{problems:?}");
    engine.replace_catalog(catalog);
}

/// The preview run of `id`, once it is final.
pub async fn preview_of(engine: &Engine, id: RunId) -> execgov::store::Run {
    let preview = engine
        .store()
        .preview_for(id)
        .await
        .unwrap()
        .expect("a preview run was recorded");
    wait_final(engine, preview.id).await
}

async fn preview_runs_first_and_the_approved_run_runs_without_it(backend: Backend) {
    let app = start_with(backend, |p| write(&p.join("manifests"))).await;
    let engine = &app.engine;
    let marker = app.env.path().join("purged");
    let reply = say(
        engine,
        &person("alice"),
        &format!("run purge marker={}", marker.display()),
    )
    .await;
    assert!(!reply.is_error(), "{}", reply.text);
    let run = reply.run.expect("recorded");
    assert_eq!(run.state, RunState::AwaitingApproval);
    let preview = preview_of(engine, run.id).await;
    assert!(
        reply
            .text
            .contains(&format!("preview run {} shows its approvers", preview.id)),
        "the requester learns of the preview: {}",
        reply.text
    );
    assert_eq!(preview.preview_of, Some(run.id), "linked to its request");
    assert_eq!(preview.state, RunState::Succeeded, "{preview:?}");
    assert_eq!(preview.quorum, 0, "a preview needs no approval");
    assert!(
        preview
            .output_tail
            .as_deref()
            .unwrap_or_default()
            .contains("would purge 3 rows"),
        "it ran with --dry-run: {:?}",
        preview.output_tail
    );
    assert_eq!(preview.result.as_ref().unwrap()["rows"], 3);
    assert!(!marker.exists(), "the preview changed nothing");
    assert_eq!(
        engine.store().get_run(run.id).await.unwrap().state,
        RunState::AwaitingApproval,
        "the request still waits for its approver"
    );
    let requested = engine
        .store()
        .audit_entries(Some(preview.id), 0, 50)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.action == "run.requested")
        .expect("the preview's request is audited");
    assert_eq!(requested.details["preview_of"], run.id.0, "{requested:?}");

    let approved = say(engine, &person("bob"), &format!("approve {}", run.id)).await;
    assert!(!approved.is_error(), "{}", approved.text);
    let done = wait_final(engine, run.id).await;
    assert_eq!(done.state, RunState::Succeeded, "{done:?}");
    assert!(marker.exists(), "the approved run ran without --dry-run");
    assert!(
        done.output_tail
            .unwrap_or_default()
            .contains("purged 3 rows"),
        "the real run's own output"
    );
    assert!(
        engine
            .store()
            .preview_for(preview.id)
            .await
            .unwrap()
            .is_none(),
        "a preview has no preview"
    );
    let chain = engine.store().verify_chain().await.unwrap();
    assert!(
        matches!(chain, execgov::store::ChainCheck::Ok { .. }),
        "{chain:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_runs_first_and_the_approved_run_runs_without_it_sqlite() {
    preview_runs_first_and_the_approved_run_runs_without_it(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_runs_first_and_the_approved_run_runs_without_it_postgres() {
    preview_runs_first_and_the_approved_run_runs_without_it(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_preview_is_shown_as_failed_and_the_request_still_waits() {
    let app = start_with(Backend::Sqlite, |p| write(&p.join("manifests"))).await;
    let engine = &app.engine;
    let reply = say(engine, &person("alice"), "run purge marker=fail").await;
    let run = reply.run.expect("recorded");
    let preview = preview_of(engine, run.id).await;
    assert_eq!(preview.state, RunState::Failed, "{preview:?}");
    assert_eq!(preview.exit_code, Some(3));
    assert_eq!(
        engine.store().get_run(run.id).await.unwrap().state,
        RunState::AwaitingApproval,
        "the request goes on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_preview_without_approval_or_for_a_refusal() {
    let app = start_with(Backend::Sqlite, |p| write(&p.join("manifests"))).await;
    let engine = &app.engine;
    // carol is in sre too; dave is not in sre: refused, nothing previewed.
    let refused = say(engine, &person("dave"), "run purge marker=x").await;
    assert!(refused.is_error(), "{}", refused.text);
    let id = refused.run.expect("a refusal is recorded").id;
    assert!(engine.store().preview_for(id).await.unwrap().is_none());
    let runs = engine
        .store()
        .list_runs(&execgov::store::RunFilter {
            limit: 50,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(runs.len(), 1, "only the refusal: {runs:?}");
}

#[tokio::test]
async fn check_refuses_an_empty_or_templated_preview() {
    let env = crate::helpers::TestEnv::new(Backend::Sqlite).await;
    let config = env.config();
    let dir = env.path().join("manifests");
    for (preview, says) in [
        ("[]", "must name at least one argument"),
        ("[\"--since={marker}\"]", "a preview argument is literal"),
        ("\"--dry-run\"", "array of strings"),
    ] {
        write(&dir);
        let text = PURGE.replace("[\"--dry-run\"]", preview);
        std::fs::write(dir.join("purge.toml"), &text).unwrap();
        let (_, problems) = execgov::manifest::load_catalog(&dir, &config);
        let shown: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert!(
            shown
                .iter()
                .any(|p| p.contains(says) && p.contains("purge.toml:")),
            "{preview}: {shown:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_page_shows_the_preview_to_its_approver() {
    use crate::web_support::WebApp;
    let env = crate::helpers::TestEnv::new(Backend::Sqlite).await;
    write(&env.path().join("manifests"));
    let app = WebApp::start_in(env, "", std::sync::Arc::new(execgov::clock::SystemClock)).await;
    let reply = say(&app.engine, &person("alice"), "run purge marker=web").await;
    let run = reply.run.expect("recorded");
    let preview = preview_of(&app.engine, run.id).await;
    let mut bob = app.sign_in("bob").await;
    let page = bob.get(&format!("/runs/{}", run.id)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for shown in [
        "<h2>Preview</h2>".to_string(),
        format!("href=\"/runs/{}\"", preview.id),
        "would purge 3 rows older than 90 days".to_string(),
        "sessions".to_string(),
    ] {
        assert!(
            page.body.contains(&shown),
            "the page shows `{shown}`: {}",
            page.body
        );
    }
    let own = bob.get(&format!("/runs/{}", preview.id)).await;
    assert_eq!(own.status, 200, "{}", own.body);
    assert!(
        own.body.contains("This is the preview of")
            && own.body.contains(&format!("href=\"/runs/{}\"", run.id)),
        "the preview's page links its request: {}",
        own.body
    );
}
