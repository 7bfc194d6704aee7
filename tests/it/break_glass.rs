//! Break-glass end to end on both backends: a run that needs approval starts at
//! once for someone in `[access] break_glass` with a reason, its approvers are
//! told in their channel at once, it stays marked until an approver reviews it,
//! and one not reviewed within `review_within` is posted again (injected clock).
//! Without a reason, or by someone not allowed: refused and audited.

use crate::both_backends;
use crate::helpers::*;
use crate::notify::{Call, Recorder};
use execgov::chat::notifier::Notifier;
use execgov::clock::{Clock, ManualClock, SystemClock};
use execgov::engine::ReplyKind;
use execgov::types::RunState;
use execgov_chat::{ChatAdapter, Message};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

const ACCESS: &str = "\n[access]\nbreak_glass = [\"person:alice\"]\nreview_within = \"2h\"\n";

/// The approval-channel message about run `id` whose "needed" text holds `text`.
fn approval_says(c: &Call, id: &str, text: &str) -> bool {
    matches!(&c.out.message, Message::ApprovalRequest { approval }
        if approval.run.run_id == id && approval.needed.contains(text))
}

both_backends!(
    break_glass_runs_at_once_and_stays_marked_until_reviewed,
    |b| async move {
        let env = TestEnv::new(b).await;
        let mut config = std::fs::read_to_string(env.config_path()).unwrap();
        config.push_str(ACCESS);
        std::fs::write(env.config_path(), config).unwrap();
        let clock = ManualClock::new(SystemClock.now_ms());
        let e = execgov::app::build_engine(Arc::new(env.config()), clock.clone())
            .await
            .unwrap();
        let stop = CancellationToken::new();
        let _stop = stop.clone().drop_guard();
        let local =
            execgov::runner::Local::new(e.clone(), execgov::runner::LocalOptions::from_engine(&e));
        tokio::spawn(local.run_until_stopped(None, stop.clone()));
        tokio::spawn(execgov::runners::maintain_until_stopped(
            e.clone(),
            stop.clone(),
        ));
        let rec = Arc::new(Recorder::default());
        let notifier = Notifier::new(e.clone(), vec![rec.clone() as Arc<dyn ChatAdapter>]);
        tokio::spawn(notifier.run_until_stopped(stop.clone()));
        let marker = env.path().join("marker");
        let line =
            |who_reason: &str| format!("run! risky marker={} {who_reason}", marker.display());

        // No reason: refused, audited, nothing recorded.
        let none = say(&e, &person("alice"), &line("")).await;
        assert!(
            none.is_error() && none.text.contains("needs a reason"),
            "{}",
            none.text
        );
        assert!(none.run.is_none());
        // carol may run it but may not break glass.
        let carol = say(&e, &person("carol"), &line("reason=\"disk full\"")).await;
        assert!(
            carol.is_error() && carol.text.contains("may not break glass"),
            "{}",
            carol.text
        );
        let refused = e.store().audit_entries(None, 0, 1000).await.unwrap();
        assert_eq!(
            refused
                .iter()
                .filter(|a| a.action == "break_glass.refused")
                .count(),
            2,
            "both refusals audited"
        );
        assert!(!marker.exists());

        // alice, with a reason: queued at once, runs, approvers told.
        let glass = say(&e, &person("alice"), &line("reason=\"disk full on db1\"")).await;
        assert_eq!(glass.kind, ReplyKind::Accepted, "{}", glass.text);
        assert!(
            glass.text.contains("WITHOUT its approval"),
            "{}",
            glass.text
        );
        let run = glass.run.unwrap();
        assert_eq!(run.state, RunState::Queued);
        assert_eq!(run.break_glass.as_deref(), Some("disk full on db1"));
        let id = run.id.to_string();
        assert_eq!(wait_final(&e, run.id).await.state, RunState::Succeeded);
        assert!(marker.exists(), "the script really ran");
        let acts = actions(&e, run.id).await;
        assert!(acts.iter().any(|a| a == "policy.bypassed"), "{acts:?}");
        assert!(
            !acts.iter().any(|a| a == "run.awaiting_approval"),
            "{acts:?}"
        );
        rec.wait_for("the approvers told in their channel", |c| {
            c.iter().any(|c| {
                c.out.place.channel == "CAPPROVE"
                    && approval_says(c, &id, "BREAK-GLASS, not reviewed")
            })
        })
        .await;
        let status = say(&e, &person("alice"), &format!("status {id}")).await;
        assert!(
            status.text.contains("BREAK-GLASS, not reviewed yet"),
            "{}",
            status.text
        );

        // Neither its requester nor a non-approver may review it.
        let own = say(&e, &person("alice"), &format!("review {id}")).await;
        assert!(
            own.is_error() && own.text.contains("requested this run"),
            "{}",
            own.text
        );
        let outsider = say(&e, &person("carol"), &format!("review {id}")).await;
        assert!(outsider.is_error(), "{}", outsider.text);

        // Not reviewed within review_within: posted again, once.
        assert_eq!(e.remind_unreviewed().await.unwrap(), 0, "not due yet");
        clock.advance(3 * 3600 * 1000);
        assert_eq!(e.remind_unreviewed().await.unwrap(), 1);
        assert_eq!(e.remind_unreviewed().await.unwrap(), 0, "reminded once");
        rec.wait_for("the overdue reminder", |c| {
            c.iter()
                .any(|c| c.edit_of.is_none() && approval_says(c, &id, "OVERDUE for review"))
        })
        .await;
        assert!(
            actions(&e, run.id)
                .await
                .iter()
                .any(|a| a == "policy.review_overdue")
        );

        // bob (an approver) reviews it: the mark changes everywhere.
        let ok = say(
            &e,
            &person("bob"),
            &format!("review {id} checked the cleanup"),
        )
        .await;
        assert_eq!(ok.kind, ReplyKind::Decided, "{}", ok.text);
        let reviewed = e.store().get_run(run.id).await.unwrap();
        assert_eq!(reviewed.reviewed_by.as_deref(), Some("bob"));
        rec.wait_for("the request edited to reviewed", |c| {
            c.iter()
                .any(|c| c.edit_of.is_some() && approval_says(c, &id, "reviewed by bob"))
        })
        .await;
        let again = say(&e, &person("dave"), &format!("review {id}")).await;
        assert!(
            again.is_error() && again.text.contains("already reviewed by bob"),
            "{}",
            again.text
        );
        let entries = e.store().audit_entries(Some(run.id), 0, 100).await.unwrap();
        let review = entries
            .iter()
            .find(|a| a.action == "policy.reviewed")
            .unwrap();
        assert_eq!(review.details["note"], "checked the cleanup");
        assert_eq!(review.actor, "bob");
        let check = e.store().verify_chain().await.unwrap();
        assert!(
            matches!(check, execgov::store::ChainCheck::Ok { .. }),
            "the chain verifies: {check:?}"
        );
    }
);

/// A script that needs no approval runs as an ordinary request: no mark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_glass_on_a_script_without_approval_is_an_ordinary_run() {
    let app = start_with(Backend::Sqlite, |dir| {
        let path = dir.join("execgov.toml");
        let mut config = std::fs::read_to_string(&path).unwrap();
        config.push_str(ACCESS);
        std::fs::write(path, config).unwrap();
    })
    .await;
    let reply = say(
        &app.engine,
        &person("alice"),
        "run! echo-args reason=\"why not\"",
    )
    .await;
    assert_eq!(reply.kind, ReplyKind::Accepted, "{}", reply.text);
    assert!(reply.text.contains("not break-glass"), "{}", reply.text);
    assert_eq!(reply.run.unwrap().break_glass, None);
}

/// On the web: the checkbox is offered to whoever may use it; a reason is
/// required; the run page shows the mark and an approver's review form; the
/// JSON API takes `break_glass` and answers 403 to someone not allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_glass_from_the_web_form_and_the_api() {
    use crate::web_support::WebApp;
    use execgov::types::RunId;
    let env = TestEnv::new(Backend::Sqlite).await;
    let mut config = std::fs::read_to_string(env.config_path()).unwrap();
    config.push_str(ACCESS);
    std::fs::write(env.config_path(), config).unwrap();
    let app = WebApp::start_in(env, "", Arc::new(SystemClock)).await;

    let mut alice = app.sign_in("alice").await;
    let page = alice.get("/scripts/risky").await;
    assert!(
        page.body.contains("name=\"execgov:break-glass\""),
        "offered to alice"
    );
    let mut carol = app.sign_in("carol").await;
    let page = carol.get("/scripts/risky").await;
    assert!(
        !page.body.contains("execgov:break-glass"),
        "not offered to carol"
    );

    let csrf = alice.csrf().await;
    let marker = app.env.path().join("web-marker");
    let marker = marker.to_str().unwrap();
    let without = alice
        .post_form(
            "/scripts/risky/run",
            &[
                ("csrf", &csrf),
                ("marker", marker),
                ("execgov:break-glass", "on"),
            ],
        )
        .await;
    assert_eq!(without.status, 400, "a reason is required");
    assert!(without.body.contains("needs a reason"), "{}", without.body);
    let r = alice
        .post_form(
            "/scripts/risky/run",
            &[
                ("csrf", &csrf),
                ("marker", marker),
                ("execgov:break-glass", "on"),
                ("execgov:break-glass-reason", "pager says db1 is down"),
            ],
        )
        .await;
    let id = RunId::parse(
        r.header("location")
            .expect("a redirect to the run")
            .trim_start_matches("/runs/"),
    )
    .unwrap();
    assert_eq!(wait_final(&app.engine, id).await.state, RunState::Succeeded);

    let mut bob = app.sign_in("bob").await;
    let page = bob.get(&format!("/runs/{id}")).await;
    assert!(
        page.body.contains("BREAK-GLASS, not reviewed yet"),
        "{}",
        page.body
    );
    assert!(page.body.contains(&format!("action=\"/runs/{id}/review\"")));
    let bc = bob.csrf().await;
    bob.post_form(
        &format!("/runs/{id}/review"),
        &[("csrf", &bc), ("note", "fine")],
    )
    .await;
    let page = bob.get(&format!("/runs/{id}")).await;
    assert!(page.body.contains("reviewed by bob"), "{}", page.body);
    assert!(
        page.body.contains("Break-glass reviewed: fine"),
        "the timeline says so"
    );

    // The API: carol may not break glass (403), alice may.
    let token = |c: &mut crate::web_support::Client| {
        let mut c = std::mem::replace(c, app.client());
        async move {
            let csrf = c.csrf().await;
            let page = c
                .post_form("/account/tokens", &[("csrf", &csrf), ("name", "t")])
                .await;
            page.body
                .split("id=\"new-token\">")
                .nth(1)
                .unwrap()
                .split('<')
                .next()
                .unwrap()
                .trim()
                .to_string()
        }
    };
    let carols = token(&mut carol).await;
    let alices = token(&mut alice).await;
    let mut c = app.client();
    let body = serde_json::json!({
        "script": "risky", "args": { "marker": "/dev/null" }, "break_glass": "db down"
    });
    let r = c.post_json("/api/v1/runs", &carols, body.clone()).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = c.post_json("/api/v1/runs", &alices, body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["run"]["state"], "queued");
}
