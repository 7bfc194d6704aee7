//! Runners: real `execgov runner` processes against a real `execgov serve`
//! (`processes.rs`, on the deployment of `served.rs`); the protocol as the
//! service speaks it (`protocol.rs`, by hand over real HTTP).

use crate::both_backends;
use crate::helpers::*;
use crate::web_support::*;
use execgov::clock::{Clock, ManualClock};
use execgov::types::{RunId, RunState};
use serde_json::{Value, json};
use std::sync::Arc;

mod processes;
mod protocol;
mod served;

/// 2026-06-01T00:00:00Z.
const T0: i64 = 1_780_272_000_000;
const MINUTE: i64 = 60_000;

/// A script only runners with the `db-host` tag may run.
const ON_DB: &str = r#"name = "on-db"
description = "Print its note, on a database host"
command = ["sh", "scripts/echo_args.sh", "{note}", "db"]
runs_on = ["db-host"]
[[param]]
name = "note"
type = "string"
default = "hello"
[access]
run = ["anyone"]
"#;

impl WebApp {
    /// The test app, with the `on-db` script (`runs_on = ["db-host"]`).
    async fn with_runners(backend: Backend, clock: Arc<dyn Clock>) -> WebApp {
        let env = TestEnv::new(backend).await;
        std::fs::write(env.path().join("manifests/on-db.toml"), ON_DB).unwrap();
        WebApp::start_in(env, "", clock).await
    }
}

/// Starts an app with the `on-db` script on the system clock.
async fn app_with_runners(backend: Backend) -> WebApp {
    WebApp::with_runners(backend, Arc::new(execgov::clock::SystemClock)).await
}

/// A one-time enrolment token for runner `name`, as `execgov runners enrol` makes it.
async fn enrolment(app: &WebApp, name: &str, tags: &[&str]) -> String {
    let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    execgov::runners::enrolment_token(&app.engine, name, &tags, "person:dave")
        .await
        .unwrap()
}

fn enrol_body(token: &str) -> Value {
    json!({ "token": token, "hostname": "test-host", "version": "test" })
}

/// An enrolled runner's credential.
async fn runner(app: &WebApp, name: &str, tags: &[&str]) -> String {
    let token = enrolment(app, name, tags).await;
    let r = app
        .client()
        .post_json_plain("/runner/v1/enrol", enrol_body(&token))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["credential"].as_str().unwrap().to_string()
}

/// A run of `script` asked by alice in chat, queued.
async fn ask(app: &WebApp, script: &str, note: &str) -> RunId {
    let r = say(
        &app.engine,
        &person("alice"),
        &format!("run {script} note={note}"),
    )
    .await;
    let run = r.run.unwrap_or_else(|| panic!("recorded: {}", r.text));
    assert_eq!(run.state, RunState::Queued, "{}", r.text);
    run.id
}

fn poll_body(slots: u32, holding: &[(i64, bool)]) -> Value {
    let holding: Vec<Value> = holding
        .iter()
        .map(|(run, started)| json!({ "run": run, "started": started }))
        .collect();
    json!({ "free_slots": slots, "holding": holding, "wait_ms": 0 })
}

/// One poll that does not wait; the jobs it got.
async fn poll(c: &mut Client, credential: &str, slots: u32, holding: &[(i64, bool)]) -> Vec<Value> {
    let r = c
        .post_json("/runner/v1/poll", credential, poll_body(slots, holding))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["jobs"].as_array().unwrap().clone()
}

async fn send_log(c: &mut Client, credential: &str, path: &str, bytes: &[u8]) -> Resp {
    c.send_bytes(
        "POST",
        path,
        &[
            ("Authorization", &format!("Bearer {credential}")),
            ("Content-Type", "application/octet-stream"),
        ],
        Some(bytes.to_vec()),
    )
    .await
}

fn finish_body(code: i32, log_bytes: u64) -> Value {
    json!({
        "kind": "exited", "code": code, "error": null, "duration_ms": 5,
        "log_bytes": log_bytes, "dropped_bytes": 0, "tail": "hello world",
        "result": null, "artifacts": []
    })
}

async fn audit_actions(app: &WebApp) -> Vec<String> {
    app.engine
        .store()
        .audit_entries(None, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect()
}

impl Client {
    /// A JSON POST without credentials (enrolment).
    pub async fn post_json_plain(&mut self, path: &str, json: Value) -> Resp {
        self.send(
            "POST",
            path,
            &[("Content-Type", "application/json")],
            Some(json.to_string()),
        )
        .await
    }
}
