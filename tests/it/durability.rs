//! What someone is told happened is on disk before they are told, whichever
//! channel they used: a decision or a cancel made on the web or through the API
//! is committed with the same (synced) durability as one made in chat, and a
//! `kill -9` of `execgov serve` right after its 200 keeps it.

use crate::both_backends;
use crate::helpers::*;
use crate::web_support::*;
use execgov::store::{Durability, Store};
use execgov::types::RunState;
use serde_json::json;
use std::time::Duration;

/// How many `op` writes the store committed with `durability`.
fn commits(store: &Store, op: &str, durability: Durability) -> u64 {
    store
        .commit_counts()
        .into_iter()
        .filter(|(o, d, _)| *o == op && *d == durability)
        .map(|(_, _, n)| n)
        .sum()
}

/// A risky run asked by alice in chat, awaiting approval.
async fn risky(engine: &execgov::engine::Engine, marker: &str) -> execgov::types::RunId {
    let reply = say(
        engine,
        &person("alice"),
        &format!("run risky marker={marker}"),
    )
    .await;
    let run = reply.run.expect("recorded");
    assert_eq!(run.state, RunState::AwaitingApproval, "{}", reply.text);
    run.id
}

both_backends!(
    decisions_and_cancels_from_every_channel_are_committed_synced,
    |backend| async move {
        let app = WebApp::start(backend, "").await;
        let store = app.engine.store().clone();
        let marker = app.env.path().join("marker").display().to_string();

        // Chat: the reference.
        let id = risky(&app.engine, &marker).await;
        let r = say(&app.engine, &person("bob"), &format!("approve {id}")).await;
        assert!(!r.is_error(), "{}", r.text);
        assert_eq!(commits(&store, "decide", Durability::Synced), 1, "chat");

        // The web form.
        let id = risky(&app.engine, &marker).await;
        let mut bob = app.sign_in("bob").await;
        let (csrf, confirmation) = bob.confirmation(id).await;
        let r = bob
            .post_form(
                &format!("/runs/{id}/decision"),
                &[
                    ("csrf", &csrf),
                    ("decision", "approve"),
                    ("confirm", &confirmation),
                ],
            )
            .await;
        assert!(r.status < 400, "{} {}", r.status, r.body);
        assert_ne!(
            store.get_run(id).await.unwrap().state,
            RunState::AwaitingApproval,
            "the web decision was taken"
        );
        assert_eq!(commits(&store, "decide", Durability::Synced), 2, "web");

        // The JSON API, with a token made through the web UI.
        let id = risky(&app.engine, &marker).await;
        let token = api_token(&app, "bob").await;
        let r = bob
            .post_json(
                &format!("/api/v1/runs/{id}/decision"),
                &token,
                json!({ "decision": "deny", "reason": "not now" }),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(store.get_run(id).await.unwrap().state, RunState::Rejected);
        assert_eq!(commits(&store, "decide", Durability::Synced), 3, "API");
        assert_eq!(
            commits(&store, "decide", Durability::Relaxed),
            0,
            "no decision is ever bookkeeping"
        );

        // Cancels: chat, web, API.
        let id = risky(&app.engine, &marker).await;
        let r = say(&app.engine, &person("alice"), &format!("cancel {id}")).await;
        assert!(!r.is_error(), "{}", r.text);
        let mut alice = app.sign_in("alice").await;
        let csrf = alice.csrf().await;
        let id = risky(&app.engine, &marker).await;
        let r = alice
            .post_form(&format!("/runs/{id}/cancel"), &[("csrf", &csrf)])
            .await;
        assert!(r.status < 400, "{} {}", r.status, r.body);
        assert_eq!(store.get_run(id).await.unwrap().state, RunState::Cancelled);
        let id = risky(&app.engine, &marker).await;
        let alices = api_token(&app, "alice").await;
        let r = alice
            .post_json(&format!("/api/v1/runs/{id}/cancel"), &alices, json!({}))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(store.get_run(id).await.unwrap().state, RunState::Cancelled);
        assert_eq!(commits(&store, "cancel", Durability::Synced), 3);
        assert_eq!(commits(&store, "cancel", Durability::Relaxed), 0);

        // And /metrics says the same.
        let m = app.client().get("/metrics").await;
        assert!(
            m.body
                .contains("execgov_store_commits_total{op=\"decide\",durability=\"synced\"} 3"),
            "{}",
            m.body
        );
    }
);

/// An API token for `name`, made through the web UI.
async fn api_token(app: &WebApp, name: &str) -> String {
    let mut c = app.sign_in(name).await;
    let csrf = c.csrf().await;
    let page = c
        .post_form("/account/tokens", &[("csrf", &csrf), ("name", "tests")])
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.body
        .split("id=\"new-token\">")
        .nth(1)
        .expect("the new token is shown once")
        .split('<')
        .next()
        .unwrap()
        .to_string()
}

/// Waits until something accepts connections at `addr` and answers `/healthz`.
async fn wait_until_serving(addr: std::net::SocketAddr) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "serve listens on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(http_get(addr, "/healthz").await.0, 200, "serve is healthy");
}

/// `execgov serve`, killed with SIGKILL when dropped.
struct Served(std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

both_backends!(
    a_decision_and_a_cancel_survive_kill_9_right_after_their_answer,
    |backend| async move {
        let env = TestEnv::new(backend).await;
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let text = std::fs::read_to_string(env.config_path()).unwrap();
        let text = text.replacen(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{port}\""),
            1,
        );
        std::fs::write(env.config_path(), text).unwrap();

        // API tokens straight into the database, before the service starts.
        let store = Store::connect(&env.database_url).await.unwrap();
        let (alice, bob) = ("egv_alice_token_for_tests", "egv_bob_token_for_tests");
        for (token, who) in [(alice, "alice"), (bob, "bob")] {
            let hash = execgov::links::token_hash(token);
            store.create_api_token(&hash, who, "t", 1).await.unwrap();
        }
        store.close().await;

        let child = std::process::Command::new(env!("CARGO_BIN_EXE_execgov"))
            .args(["--config", env.config_path().to_str().unwrap(), "serve"])
            .current_dir(env.path())
            .env_remove("EXECGOV_DATABASE_URL")
            .env("EXECGOV_LOG", "warn")
            .spawn()
            .expect("serve starts");
        let mut served = Served(child);
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_until_serving(addr).await;

        let mut c = Client::new(addr);
        let marker = env.path().join("marker").display().to_string();
        let ask = json!({ "script": "risky", "args": { "marker": marker } });
        let first = c.post_json("/api/v1/runs", alice, ask.clone()).await;
        assert!(first.status < 300, "{}", first.body);
        let approve_me = first.json()["run"]["id"].as_i64().unwrap();
        let second = c.post_json("/api/v1/runs", alice, ask).await;
        let cancel_me = second.json()["run"]["id"].as_i64().unwrap();

        let r = c
            .post_json(
                &format!("/api/v1/runs/{approve_me}/decision"),
                bob,
                json!({ "decision": "approve" }),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let r = c
            .post_json(
                &format!("/api/v1/runs/{cancel_me}/cancel"),
                alice,
                json!({}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        // SIGKILL at once: nothing of the service gets to run after the answer.
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(served.0.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        served.0.wait().unwrap();

        // The chain is keyed: verifying it needs the service's audit key.
        let config = execgov::config::Config::load(Some(&env.config_path())).unwrap();
        let store = execgov::audit::open_store(&config).await.unwrap();
        let approved = store
            .get_run(execgov::types::RunId(approve_me))
            .await
            .unwrap();
        assert_ne!(
            approved.state,
            RunState::AwaitingApproval,
            "the approval answered with 200 is kept"
        );
        let approvals = store.approvals(approved.id).await.unwrap();
        assert_eq!(approvals.len(), 1, "bob's approval is recorded");
        assert_eq!(approvals[0].approver.as_str(), "bob");
        let cancelled = store
            .get_run(execgov::types::RunId(cancel_me))
            .await
            .unwrap();
        assert_eq!(cancelled.state, RunState::Cancelled, "the cancel is kept");
        assert!(
            matches!(
                store.verify_chain().await.unwrap(),
                execgov::store::ChainCheck::Ok { .. }
            ),
            "the chain verifies after the kill"
        );
        store.close().await;
    }
);
