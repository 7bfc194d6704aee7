//! Slack end to end: the application as the binary builds it, talking to a fake
//! Slack Web API on 127.0.0.1 ([`fake`]) and receiving requests signed exactly
//! as Slack signs them ([`sign`], [`payloads`]), over HTTP or Socket Mode
//! ([`socket`]).
//!
//! Layout: `spawn_slack_app()` here; the fake in `fake.rs` (recording, waiting),
//! `answers.rs` (what each method answers) and `socket.rs` (Socket Mode);
//! requests in `sign.rs` + `payloads.rs`; tests in `flows.rs`, `late.rs`, `refusals.rs`,
//! `approvals.rs`, `files.rs`, `step_up.rs`, `reliability.rs`, `socket_mode.rs`.

mod answers;
pub mod fake;
pub mod payloads;
pub mod sign;
pub mod socket;

mod approvals;
mod checkpoints;
mod files;
mod flows;
mod late;
mod refusals;
mod reliability;
mod socket_mode;
mod step_up;

use crate::helpers::{Backend, TestEnv};
use execgov::app::Application;
use execgov::engine::Engine;
use execgov::store::{Run, RunFilter};
use execgov::types::RunId;
use fake::{Call, FakeSlack};
use payloads::{SlackChannel, SlackUser};
use serde_json::Value;
use sign::{Reply, SlackRequest};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A script that reports progress, takes a moment (so its status message is
/// edited while it runs) and writes a CSV into `$EXECGOV_OUTPUT_DIR`.
const SLACK_REPORT: &str = r#"name = "slack-report"
description = "Write one month's sales report as CSV"
command = ["sh", "scripts/slack_report.sh", "{month}"]
timeout = "20s"
[[param]]
name = "month"
type = "string"
pattern = '^\d{4}-(0[1-9]|1[0-2])$'
required = true
[access]
run = ["group:sre"]
channels = ["oncall"]
"#;

const SLACK_REPORT_SH: &str = "echo '::progress 50 Writing rows'\nsleep 0.6\n\
printf 'month,region,total\\n%s,emea,1200\\n%s,amer,900\\n' \"$1\" \"$1\" > \"$EXECGOV_OUTPUT_DIR/report-$1.csv\"\n\
echo \"wrote report-$1.csv\"\n";

/// A script whose output is far longer than a message shows: 20,000 numbered lines.
const SLACK_LONG: &str = r#"name = "slack-long"
description = "Print 20,000 numbered lines"
command = ["sh", "scripts/slack_long.sh"]
timeout = "20s"
[access]
run = ["group:sre"]
channels = ["oncall"]
"#;

const SLACK_LONG_SH: &str = "i=1\nwhile [ $i -le 20000 ]; do echo \"line $i\"; i=$((i+1)); done\n";

/// How the app under test talks to Slack.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Set `slack.app_token`: Socket Mode instead of the HTTP endpoints.
    pub socket_mode: bool,
    /// Register the critical script `vault-rotate` (step-up approval).
    pub critical: bool,
    /// Register `import-csv`, which takes a file (at most 1 MiB, .csv).
    pub files: bool,
    /// `[audit] channel = "approvals"`: checkpoints are posted there.
    pub audit_channel: bool,
}

/// The application serving `/slack/*`, with its fake Slack; stopped when dropped.
pub struct SlackApp {
    pub env: TestEnv,
    pub fake: FakeSlack,
    pub addr: SocketAddr,
    pub engine: Arc<Engine>,
    stop: CancellationToken,
}

impl Drop for SlackApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub async fn spawn_slack_app() -> SlackApp {
    spawn_slack_app_with(Options::default()).await
}

pub async fn spawn_slack_app_with(opts: Options) -> SlackApp {
    // slack-morphism's connector needs a process-wide rustls provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = FakeSlack::start().await;
    let env = TestEnv::new(Backend::Sqlite).await;
    let manifests = env.path().join("manifests");
    std::fs::write(manifests.join("slack-report.toml"), SLACK_REPORT).unwrap();
    std::fs::write(manifests.join("scripts/slack_report.sh"), SLACK_REPORT_SH).unwrap();
    std::fs::write(manifests.join("slack-long.toml"), SLACK_LONG).unwrap();
    std::fs::write(manifests.join("scripts/slack_long.sh"), SLACK_LONG_SH).unwrap();
    if opts.critical {
        crate::step_up::write_critical(env.path());
    }
    if opts.files {
        crate::files::write_import(env.path(), "low");
    }
    let secrets = env.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let secret = |name: &str, value: &str| {
        let path = secrets.join(name);
        std::fs::write(&path, value).unwrap();
        format!("file:{}", path.display())
    };
    let mut section = format!(
        "\n[slack]\nbot_token = \"{}\"\nsigning_secret = \"{}\"\napi_url = \"{}\"\n",
        secret("slack_bot_token", fake::BOT_TOKEN),
        secret("slack_signing_secret", sign::SIGNING_SECRET),
        fake.api_url()
    );
    if opts.socket_mode {
        section.push_str(&format!(
            "app_token = \"{}\"\n",
            secret("slack_app_token", fake::APP_TOKEN)
        ));
    }
    if opts.audit_channel {
        section.push_str("\n[audit]\nchannel = \"approvals\"\n");
    }
    // `write_config`'s extra lands before `[database]`: a table goes at the end.
    env.write_config("");
    let mut text = std::fs::read_to_string(env.config_path()).unwrap();
    text.push_str(&section);
    std::fs::write(env.config_path(), text).unwrap();

    let app = Application::build(env.config())
        .await
        .expect("the app builds with a [slack] section");
    let addr = app.local_addr();
    let engine = app.engine();
    let stop = CancellationToken::new();
    tokio::spawn(app.run_until_stopped(stop.clone()));
    if opts.socket_mode {
        fake.wait_socket_connects(1).await;
    }
    SlackApp {
        env,
        fake,
        addr,
        engine,
        stop,
    }
}

impl SlackApp {
    pub async fn send(&self, req: &SlackRequest) -> Reply {
        sign::send(self.addr, req).await
    }

    /// `/run {text}` from `user` in `channel`, correctly signed.
    /// The `response_url` goes to the fake, as Slack's goes to Slack.
    pub async fn command(&self, user: SlackUser, channel: SlackChannel, text: &str) -> Reply {
        let mut fields = payloads::slash_command(user, channel, text);
        for (k, v) in &mut fields {
            if k == "response_url" {
                *v = self.fake.response_url();
            }
        }
        self.send(&SlackRequest::command(&fields)).await
    }

    pub async fn interact(&self, payload: &Value) -> Reply {
        self.send(&SlackRequest::interaction(payload)).await
    }

    /// Every run, oldest first.
    pub async fn runs(&self) -> Vec<Run> {
        let filter = RunFilter {
            limit: 500,
            ..RunFilter::default()
        };
        let mut runs = self
            .engine
            .store()
            .list_runs(&filter)
            .await
            .expect("list runs");
        runs.reverse();
        runs
    }

    /// The only run so far.
    pub async fn only_run(&self) -> Run {
        let runs = self.runs().await;
        assert_eq!(runs.len(), 1, "exactly one run recorded: {runs:?}");
        runs.into_iter().next().unwrap()
    }

    /// Waits until `n` runs exist (events are handled after their ack), and returns them.
    pub async fn wait_runs(&self, n: usize) -> Vec<Run> {
        eventually(
            &self.engine,
            &format!("{n} run(s) are recorded"),
            || async { self.runs().await.len() >= n },
        )
        .await;
        self.runs().await
    }

    /// The status message of run `id`: the first top-level post in `channel` about it.
    pub async fn status_message(&self, id: RunId, channel: SlackChannel) -> Call {
        self.fake
            .wait_call("chat.postMessage", |c| {
                c.ok()
                    && c.field("channel") == Some(channel.id)
                    && c.field("thread_ts").is_none()
                    && mentions_run(c, id)
            })
            .await
    }

    /// The approval request of run `id` in the approvals channel.
    pub async fn approval_message(&self, id: RunId) -> Call {
        self.fake
            .wait_call("chat.postMessage", |c| {
                c.ok() && c.field("channel") == Some(payloads::APPROVALS.id) && mentions_run(c, id)
            })
            .await
    }

    /// Audit actions of the whole log, in order.
    pub async fn all_actions(&self) -> Vec<String> {
        let entries = self
            .engine
            .store()
            .audit_entries(None, 0, 1000)
            .await
            .expect("audit entries");
        entries.into_iter().map(|e| e.action).collect()
    }
}

/// The message text or blocks name run `id` (`run 7`, `Run 7`, `run #7`).
pub fn mentions_run(c: &Call, id: RunId) -> bool {
    let re = regex::Regex::new(&format!(r"(?i)\brun\W{{0,3}}#?{id}\b")).expect("valid pattern");
    re.is_match(&c.shown())
}

/// Buttons (type `button`) anywhere in a message's blocks.
pub fn buttons(blocks: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for block in blocks.as_array().into_iter().flatten() {
        let elements = block
            .get("elements")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for el in elements.chain(block.get("accessory")) {
            if el["type"] == "button" {
                out.push(el.clone());
            }
        }
    }
    out
}

/// Waits until `check` holds, re-checking on the engine's run events (or every
/// 100 ms for changes that send none, such as chat bookkeeping).
pub async fn eventually<F, Fut>(engine: &Engine, what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut events = engine.subscribe();
    let deadline = tokio::time::Instant::now() + fake::WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        let _ = tokio::time::timeout(Duration::from_millis(100), events.recv()).await;
    }
}
