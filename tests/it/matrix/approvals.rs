//! Risky runs wait for an approver: the request appears in the approvals room,
//! the requester's own ✅ is refused with a reply, an approver's ✅ (or
//! `!approve`) runs it, and ❌ (or `!deny … reason`) rejects it.

use super::World;
use super::user::{body, edit_of, in_thread};
use execgov::types::{RunId, RunState};
use serde_json::Value;

/// The approval request for the run whose arguments name `marker`: (event id, run id).
pub async fn request_for(w: &World, marker: &str) -> (String, String) {
    let req = w
        .bob
        .wait_for(&format!("the approval request for {marker}"), |v| {
            w.by_bot(v) && v["room_id"] == w.approvals.as_str() && body(v).contains(marker)
        })
        .await;
    assert!(body(&req).contains("Approval needed"), "{}", body(&req));
    assert!(
        body(&req).contains("React ✅ to approve or ❌ to deny"),
        "the request says how to decide: {}",
        body(&req)
    );
    assert!(
        body(&req).contains(&format!("Requested by: alice ({})", w.alice.id)),
        "{}",
        body(&req)
    );
    let run = req["content"]["org.execgov.run_id"]
        .as_str()
        .expect("the request names its run")
        .to_string();
    (req["event_id"].as_str().unwrap().to_string(), run)
}

async fn state_of(w: &World, run: &str) -> RunState {
    let id = RunId::parse(run).unwrap();
    w.engine().store().get_run(id).await.unwrap().state
}

fn edit_closing(w: &World, v: &Value, req: &str, word: &str) -> bool {
    w.by_bot(v) && edit_of(v, req).is_some_and(|b| b.contains(word) && !b.contains("React ✅"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approvers_reaction_runs_it_and_the_requesters_is_refused() {
    let w = World::new(false).await;
    let marker = w.env.path().join("approved-marker");
    let marker_s = marker.display().to_string();
    let cmd = w
        .alice
        .send(&w.ops, &format!("!run risky marker={marker_s}"))
        .await;
    let answer = w
        .alice
        .wait_for("the answer that it waits for approval", |v| {
            w.by_bot(v) && in_thread(v, cmd.as_str())
        })
        .await;
    assert!(
        body(&answer).contains("awaiting approval: needs 1 more approval(s) from")
            && body(&answer).contains("expires"),
        "the status message in the thread says what approval it needs: {}",
        body(&answer)
    );
    let (req, run) = request_for(&w, &marker_s).await;

    let own = w.alice.react(&w.approvals, &req, "✅").await;
    let refusal = w
        .alice
        .wait_for("a reply refusing the requester's own approval", |v| {
            w.by_bot(v) && in_thread(v, &req) && v["event_id"] != own.as_str()
        })
        .await;
    assert!(
        body(&refusal).contains("cannot approve"),
        "the refusal says why: {}",
        body(&refusal)
    );
    assert_eq!(
        state_of(&w, &run).await,
        RunState::AwaitingApproval,
        "the requester's ✅ changes nothing"
    );
    assert!(!marker.exists());

    w.bob.react(&w.approvals, &req, "✅").await;
    let done = crate::helpers::wait_final(&w.engine(), RunId::parse(&run).unwrap()).await;
    assert_eq!(done.state, RunState::Succeeded, "an approver's ✅ runs it");
    assert!(marker.exists(), "the script ran");
    w.bob
        .wait_for("the request edited once decided", |v| {
            edit_closing(&w, v, &req, "succeeded")
                || edit_closing(&w, v, &req, "queued")
                || edit_closing(&w, v, &req, "running")
        })
        .await;
    w.alice
        .wait_for("the result in the requester's thread", |v| {
            w.by_bot(v)
                && in_thread(v, cmd.as_str())
                && body(v).contains("succeeded")
                && body(v).contains("audit:")
        })
        .await;
    assert_eq!(w.runs("risky").await.len(), 1, "one command, one run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_by_reaction_or_command_and_approve_by_command() {
    let w = World::new(false).await;
    let path = |name: &str| w.env.path().join(name).display().to_string();

    // ❌ rejects.
    let m1 = path("m1");
    w.alice
        .send(&w.ops, &format!("!run risky marker={m1}"))
        .await;
    let (req1, run1) = request_for(&w, &m1).await;
    w.bob.react(&w.approvals, &req1, "❌").await;
    let r1 = crate::helpers::wait_final(&w.engine(), RunId::parse(&run1).unwrap()).await;
    assert_eq!(r1.state, RunState::Rejected, "❌ rejects");
    w.bob
        .wait_for("the request edited to rejected", |v| {
            edit_closing(&w, v, &req1, "rejected")
        })
        .await;

    // `!deny <id> reason` rejects, with the reason.
    let m2 = path("m2");
    w.alice
        .send(&w.ops, &format!("!run risky marker={m2}"))
        .await;
    let (req2, run2) = request_for(&w, &m2).await;
    w.bob
        .send(&w.approvals, &format!("!deny {run2} not during the freeze"))
        .await;
    let r2 = crate::helpers::wait_final(&w.engine(), RunId::parse(&run2).unwrap()).await;
    assert_eq!(r2.state, RunState::Rejected, "!deny rejects");
    w.bob
        .wait_for("the request edited with the reason", |v| {
            edit_closing(&w, v, &req2, "rejected")
                && edit_of(v, &req2).is_some_and(|b| b.contains("not during the freeze"))
        })
        .await;

    // `!approve <id>` runs it.
    let m3 = path("m3");
    w.alice
        .send(&w.ops, &format!("!run risky marker={m3}"))
        .await;
    let (_, run3) = request_for(&w, &m3).await;
    w.bob.send(&w.approvals, &format!("!approve {run3}")).await;
    let r3 = crate::helpers::wait_final(&w.engine(), RunId::parse(&run3).unwrap()).await;
    assert_eq!(r3.state, RunState::Succeeded, "!approve runs it");
    for m in [&m1, &m2] {
        assert!(
            !std::path::Path::new(m).exists(),
            "a rejected run never ran: {m}"
        );
    }
    assert!(std::path::Path::new(&m3).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_shows_its_output_and_table_in_the_request() {
    let w = World::new(false).await;
    crate::preview::install(&w.engine(), &w.env.path().join("manifests"));
    let marker = w.env.path().join("purged");
    let marker_s = marker.display().to_string();
    w.alice
        .send(&w.ops, &format!("!run purge marker={marker_s}"))
        .await;
    let (req, run) = request_for(&w, &marker_s).await;
    let run_id = RunId::parse(&run).unwrap();
    let preview = crate::preview::preview_of(&w.engine(), run_id).await;
    let request = w
        .bob
        .wait_for("the request with its preview", |v| {
            w.by_bot(v)
                && (v["event_id"] == req.as_str() || edit_of(v, &req).is_some())
                && v.to_string().contains("would purge 3 rows")
        })
        .await;
    let text = request.to_string();
    for shown in [
        format!(
            "Preview (run {}, `--dry-run`): succeeded, exit 0",
            preview.id
        ),
        "would purge 3 rows older than 90 days".to_string(),
        "<td>events</td>".to_string(),
    ] {
        assert!(text.contains(&shown), "the request shows `{shown}`: {text}");
    }
    assert!(!marker.exists(), "the preview changed nothing");
    w.bob.react(&w.approvals, &req, "✅").await;
    let done = crate::helpers::wait_final(&w.engine(), run_id).await;
    assert_eq!(done.state, RunState::Succeeded, "{done:?}");
    assert!(marker.exists(), "the approved run ran for real");
}
