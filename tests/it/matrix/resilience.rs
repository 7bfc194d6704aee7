//! The bot survives restarts: its own (same device, nothing lost, nothing
//! handled twice) and the homeserver's (the sync loop backs off and resumes).

use super::approvals::request_for;
use super::synapse::Synapse;
use super::user::{body, in_thread};
use super::{Hs, World};
use execgov::types::{RunId, RunState};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_between_command_and_approval_loses_nothing_and_repeats_nothing() {
    let mut w = World::new(true).await;
    let device = w
        .bot
        .as_ref()
        .unwrap()
        .matrix
        .client()
        .device_id()
        .map(|d| d.to_owned());
    let marker = w.env.path().join("after-restart");
    let marker_s = marker.display().to_string();
    let cmd = w
        .alice
        .send(&w.ops, &format!("!run risky marker={marker_s}"))
        .await;
    let answer = w
        .alice
        .wait_for("the answer to the command", |v| {
            w.by_bot(v) && in_thread(v, cmd.as_str())
        })
        .await;
    let (req, run) = request_for(&w, &marker_s).await;

    w.stop_bot().await;
    // Decided while the bot is away.
    w.bob.react(&w.approvals, &req, "✅").await;
    w.start_bot().await;
    assert_eq!(
        w.bot
            .as_ref()
            .unwrap()
            .matrix
            .client()
            .device_id()
            .map(|d| d.to_owned()),
        device,
        "a restart is the same device (its keys still decrypt)"
    );

    let done = crate::helpers::wait_final(&w.engine(), RunId::parse(&run).unwrap()).await;
    assert_eq!(
        done.state,
        RunState::Succeeded,
        "the approval given while the bot was down counts"
    );
    assert!(marker.exists());
    w.alice
        .wait_for(
            "the result in the encrypted thread after the restart",
            |v| {
                w.by_bot(v)
                    && in_thread(v, cmd.as_str())
                    && body(v).contains("succeeded")
                    && body(v).contains("audit:")
            },
        )
        .await;

    // A later command is answered: everything before it has been handled.
    let later = w.alice.send(&w.ops, "!run list").await;
    w.alice
        .wait_for("the answer to a later command", |v| {
            w.by_bot(v) && in_thread(v, later.as_str())
        })
        .await;
    assert_eq!(
        w.runs("risky").await.len(),
        1,
        "the command was not run twice"
    );
    let answers = w
        .alice
        .events()
        .iter()
        .filter(|v| w.by_bot(v) && in_thread(v, cmd.as_str()) && body(v) == body(&answer))
        .count();
    assert_eq!(answers, 1, "the command was answered once");
    let requests = w
        .bob
        .events()
        .iter()
        .filter(|v| {
            w.by_bot(v)
                && v["room_id"] == w.approvals.as_str()
                && body(v).contains(&marker_s)
                && v["content"]["m.relates_to"]["rel_type"] != "m.replace"
        })
        .count();
    assert_eq!(requests, 1, "one approval request");
    let engine = w.engine();
    let decisions = engine.store().approvals(done.id).await.unwrap();
    assert_eq!(
        decisions.len(),
        1,
        "the ✅ was recorded once: {decisions:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_resumes_after_the_homeserver_restarts() {
    let w = World::on(Hs::Own(Synapse::own("restart")), false).await;
    let before = w.alice.send(&w.ops, "!run echo-args note=before").await;
    w.alice
        .wait_for("the result before the outage", |v| {
            w.by_bot(v) && in_thread(v, before.as_str()) && body(v).contains("succeeded")
        })
        .await;

    w.hs.stop();
    // Long enough for the bot's sync to fail and back off a few times.
    tokio::time::sleep(Duration::from_secs(3)).await;
    w.hs.start();

    let after = w.alice.send(&w.ops, "!run echo-args note=after").await;
    let result = w
        .alice
        .wait_for("the result after the homeserver came back", |v| {
            w.by_bot(v) && in_thread(v, after.as_str()) && body(v).contains("succeeded")
        })
        .await;
    assert!(body(&result).contains("arg=[after]"), "{}", body(&result));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_token_keeps_its_device_across_restarts() {
    let mut w = World::new(true).await;
    w.stop_bot().await;
    // A token for a device of its own, as an operator would make one.
    let login = execgov_matrix::matrix_sdk::Client::builder()
        .homeserver_url(w.hs.url())
        .build()
        .await
        .unwrap()
        .matrix_auth()
        .login_username(&w.bot_name, super::user::PASSWORD)
        .send()
        .await
        .expect("the operator logs in");
    w.access_token = Some(login.access_token.clone());
    std::fs::remove_dir_all(w.env.path().join("data/matrix")).unwrap();

    for round in 0..2 {
        w.start_bot().await;
        let device = w
            .bot
            .as_ref()
            .unwrap()
            .matrix
            .client()
            .device_id()
            .map(|d| d.to_owned());
        assert_eq!(
            device,
            Some(login.device_id.clone()),
            "the token's device (round {round})"
        );
        let cmd = w
            .alice
            .send(&w.ops, &format!("!run echo-args note=round{round}"))
            .await;
        w.alice
            .wait_for(
                "an answer from the token's device in the encrypted room",
                |v| {
                    w.by_bot(v)
                        && in_thread(v, cmd.as_str())
                        && body(v).contains(&format!("arg=[round{round}]"))
                },
            )
            .await;
        w.stop_bot().await;
    }
}
