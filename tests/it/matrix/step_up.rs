//! Step-up in Matrix: a critical run's request says to approve with a code in
//! a direct message; `!approve ID CODE` in the shared approvals room is
//! refused (told to treat the code as used) and decides nothing; the next code
//! sent to the bot in a direct room approves it and the script runs.

use super::World;
use super::user::{body, in_thread};
use crate::helpers::person;
use execgov::clock::{Clock, SystemClock};
use execgov::totp::{STEP_SECONDS, code_at, from_base32, step_at};
use execgov::types::{RunId, RunState};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_is_taken_in_a_direct_room_only() {
    let mut w = World::new(false).await;
    // The critical script, for a bot started after it is there.
    w.stop_bot().await;
    crate::step_up::write_critical(w.env.path());
    w.start_bot().await;

    let marker = w.env.path().join("critical-marker");
    let marker_s = marker.display().to_string();
    w.alice
        .send(&w.ops, &format!("!run vault-rotate marker={marker_s}"))
        .await;
    let req = w
        .bob
        .wait_for("the approval request", |v| {
            w.by_bot(v) && v["room_id"] == w.approvals.as_str() && body(v).contains(&marker_s)
        })
        .await;
    assert!(
        body(&req).contains("direct message") && body(&req).contains("CODE"),
        "the request says how to approve a critical run: {}",
        body(&req)
    );
    let run = req["content"]["org.execgov.run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let id = RunId::parse(&run).unwrap();

    // Three codes in a row, well inside one 30-second step: the one before
    // it (confirms), its own (burned in the shared room), the next (the DM).
    let step_ms = STEP_SECONDS * 1000;
    let into = SystemClock.now_ms() % step_ms;
    if into > step_ms / 2 {
        tokio::time::sleep(Duration::from_millis((step_ms - into + 200) as u64)).await;
    }
    let base = step_at(SystemClock.now_ms());
    let e = w.engine();
    let enrolment = e.enrol_factor(&person("bob")).await.unwrap().unwrap();
    let secret = from_base32(&enrolment.secret).unwrap();
    e.confirm_factor(&person("bob"), &code_at(&secret, base - 1))
        .await
        .unwrap()
        .unwrap();

    let shared = w
        .bob
        .send(
            &w.approvals,
            &format!("!approve {run} {}", code_at(&secret, base)),
        )
        .await;
    let refusal = w
        .bob
        .wait_for("the refusal of a code in a shared room", |v| {
            w.by_bot(v) && in_thread(v, shared.as_str())
        })
        .await;
    assert!(
        body(&refusal).contains("treat it as used"),
        "{}",
        body(&refusal)
    );
    assert_eq!(
        e.store().get_run(id).await.unwrap().state,
        RunState::AwaitingApproval,
        "a code in a shared room decides nothing"
    );

    // A direct room with the bot (it makes one for a private answer).
    w.bob.send(&w.ops, "!run login").await;
    let dm = w.bob.accept_invite().await;
    w.bob
        .wait_for("the bot's first message in the direct room", |v| {
            w.by_bot(v) && v["room_id"] == dm.as_str()
        })
        .await;
    w.bob
        .send(
            &dm,
            &format!("!approve {run} {}", code_at(&secret, base + 1)),
        )
        .await;
    let done = crate::helpers::wait_final(&e, id).await;
    assert_eq!(done.state, RunState::Succeeded, "{:?}", done.error);
    assert!(marker.exists(), "the script ran");
    let entries = e.store().audit_entries(Some(id), 0, 100).await.unwrap();
    assert!(
        entries
            .iter()
            .any(|a| a.action == "approval.approved" && a.details["step_up"] == true),
        "approved with step-up"
    );
    assert!(
        entries
            .iter()
            .any(|a| a.action == "2fa.refused" && a.details["burned"] == true),
        "the shared-room code was burned"
    );
}
