//! A fake Slack Web API on 127.0.0.1: it records every call in order (method,
//! parsed body, bearer token, what it answered), answers in Slack's documented
//! shapes with realistic ids, checks the bearer token, and can be told to fail
//! a method (HTTP 429 with `Retry-After`, or `ok:false`). Its `/hooks/` take
//! `response_url` POSTs as Slack does (recorded as method `response_url`:
//! `ok` as text, 5 uses per URL, `expired_url` when told to fail). Its `/socket`
//! endpoint speaks Socket Mode (see `socket.rs`). Shared by the tests and by
//! `benches/slack_load.rs`, so it depends on nothing else in the test crate.

use super::answers;
use super::socket::{self, Hub};
use axum::Router;
use axum::routing::{any, get, post};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

pub const BOT_TOKEN: &str = "xoxb-1111-2222-execgovtestbot";
pub const APP_TOKEN: &str = "xapp-1-A1-3333-execgovtestapp";
pub const BOT_USER: &str = "UBOT";
pub const BOT_ID: &str = "BBOT";
pub const TEAM: &str = "T1";
pub const APP_ID: &str = "A1";
/// How long `wait_for` waits before failing the test with what it saw.
pub const WAIT: Duration = Duration::from_secs(30);

/// One Web API call as the fake received and answered it.
#[derive(Debug, Clone)]
pub struct Call {
    /// The method from the path: `chat.postMessage`.
    pub method: String,
    /// The JSON body, or the form / query fields as a JSON object of strings.
    pub body: Value,
    /// The `Authorization` header as sent.
    pub auth: Option<String>,
    /// The HTTP status and JSON the fake answered.
    pub status: u16,
    pub response: Value,
    /// When it arrived.
    pub at: std::time::Instant,
}

impl Call {
    /// Answered 200 with `ok: true`.
    pub fn ok(&self) -> bool {
        self.status == 200 && self.response["ok"] == true
    }

    /// A string field of the request (`channel`, `thread_ts`, `text`, …).
    pub fn field(&self, key: &str) -> Option<&str> {
        self.body.get(key).and_then(Value::as_str)
    }

    /// The `ts` the fake answered (`chat.postMessage`, `chat.update`).
    pub fn answered_ts(&self) -> Option<&str> {
        self.response.get("ts").and_then(Value::as_str)
    }

    /// Text and blocks as one string, for "mentions X" assertions.
    pub fn shown(&self) -> String {
        format!(
            "{} {}",
            self.field("text").unwrap_or_default(),
            self.body.get("blocks").cloned().unwrap_or(Value::Null)
        )
    }
}

/// A file uploaded through `files.getUploadURLExternal` + the upload URL.
#[derive(Debug, Clone)]
pub struct UploadedFile {
    pub file_id: String,
    pub filename: String,
    pub bytes: Vec<u8>,
    /// The `files.completeUploadExternal` body that shared it, once completed.
    pub completed: Option<Value>,
}

/// A programmed failure of one method.
#[derive(Debug, Clone)]
pub enum Fault {
    /// HTTP 429, `Retry-After: secs`, body `{"ok":false,"error":"ratelimited"}`.
    RateLimited { retry_after_secs: u64 },
    /// HTTP 200 with `{"ok":false,"error":…}`.
    Error(String),
}

#[derive(Default)]
pub(super) struct Inner {
    pub(super) calls: Vec<Call>,
    pub(super) faults: Vec<(String, usize, Fault)>,
    pub(super) files: Vec<UploadedFile>,
    /// `(channel, ts)` of every message posted, so edits of others fail as in Slack.
    pub(super) posted: Vec<(String, String)>,
    /// How often each `response_url` was used (Slack allows 5).
    pub(super) hook_uses: std::collections::HashMap<String, u32>,
    /// Files people shared, served at `url_private_download` to the bot token.
    pub(super) hosted: std::collections::HashMap<String, Vec<u8>>,
    /// How often each hosted file was downloaded.
    pub(super) downloads: std::collections::HashMap<String, u32>,
    counter: u64,
}

impl Inner {
    /// A fresh number for ids and timestamps.
    pub(super) fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }
}

pub(super) struct Shared {
    inner: Mutex<Inner>,
    /// Bumped on every recorded change (call, upload, socket frame) so waiters wake.
    pub(super) version: watch::Sender<u64>,
    pub(super) base: String,
    pub(super) hub: Hub,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn bump(&self) {
        self.version.send_modify(|v| *v += 1);
    }
}

/// The running fake; stops serving when dropped.
pub struct FakeSlack {
    pub(super) shared: Arc<Shared>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeSlack {
    fn drop(&mut self) {
        self.task.abort();
        self.shared.hub.close_all();
    }
}

impl FakeSlack {
    pub async fn start() -> FakeSlack {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fake Slack binds");
        let addr = listener.local_addr().expect("fake Slack address");
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner::default()),
            version: watch::channel(0).0,
            base: format!("http://{addr}"),
            hub: Hub::default(),
        });
        let app = Router::new()
            .route("/api/{method}", any(answers::api))
            .route("/upload/{file_id}", post(answers::upload))
            .route("/files-pri/{team_file}/{name}", get(answers::download))
            .route("/hooks/{*path}", post(answers::hook))
            .route("/socket", get(socket::upgrade))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeSlack { shared, addr, task }
    }

    /// Where the fake listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A fresh `response_url` on this fake, as Slack sends with each slash
    /// command (`https://hooks.slack.com/commands/T…/…/…`).
    pub fn response_url(&self) -> String {
        let n = self.shared.lock().next();
        format!(
            "http://{}/hooks/commands/{TEAM}/{}/96rGlfmibIGlgcZRskXaIFfN",
            self.addr,
            397700885554u64 + n
        )
    }

    /// The bot's `slack.api_url`.
    pub fn api_url(&self) -> String {
        format!("http://{}/api/", self.addr)
    }

    /// A file someone shared in Slack, as an event's `files` entry shows it;
    /// its `url_private_download` serves the bytes to the bot token only.
    pub fn host_file(&self, name: &str, bytes: Vec<u8>) -> Value {
        let id = {
            let mut inner = self.shared.lock();
            let id = format!("F{:08}", inner.next());
            inner.hosted.insert(id.clone(), bytes.clone());
            id
        };
        let url = format!("http://{}/files-pri/{TEAM}-{id}/{name}", self.addr);
        serde_json::json!({
            "id": id, "name": name, "title": name, "mimetype": "text/csv", "filetype": "csv",
            "size": bytes.len(), "mode": "hosted", "is_external": false,
            "url_private": url, "url_private_download": format!("{url}?download=1"),
        })
    }

    /// How often the hosted file `id` was downloaded.
    pub fn downloads(&self, id: &str) -> u32 {
        self.shared.lock().downloads.get(id).copied().unwrap_or(0)
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().calls.clone()
    }

    pub fn calls_of(&self, method: &str) -> Vec<Call> {
        self.shared
            .lock()
            .calls
            .iter()
            .filter(|c| c.method == method)
            .cloned()
            .collect()
    }

    /// Uploaded files, completed or not, in upload order.
    pub fn uploaded_files(&self) -> Vec<UploadedFile> {
        self.shared.lock().files.clone()
    }

    /// Waits for an uploaded file that `pred` accepts.
    pub async fn wait_file(
        &self,
        what: &str,
        pred: impl Fn(&UploadedFile) -> bool,
    ) -> UploadedFile {
        self.wait_until(what, |s| s.lock().files.iter().find(|f| pred(f)).cloned())
            .await
    }

    /// The next `n` calls of `method` fail with `fault`.
    pub fn fail_next(&self, method: &str, n: usize, fault: Fault) {
        self.shared
            .lock()
            .faults
            .push((method.to_string(), n, fault));
    }

    /// Waits until `check` finds what it looks for in the calls so far, and
    /// fails the test with a summary of the calls after [`WAIT`].
    pub async fn wait_for<T>(&self, what: &str, check: impl Fn(&[Call]) -> Option<T>) -> T {
        self.wait_until(what, |s| check(&s.lock().calls)).await
    }

    /// Waits until `check` finds what it looks for in anything the fake records.
    pub(super) async fn wait_until<T>(
        &self,
        what: &str,
        check: impl Fn(&Shared) -> Option<T>,
    ) -> T {
        let mut rx = self.shared.version.subscribe();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(found) = check(&self.shared) {
                return found;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                panic!(
                    "fake Slack: timed out waiting for {what}; calls:\n{}",
                    self.summary()
                );
            }
        }
    }

    /// Waits for the first call of `method` that `pred` accepts.
    pub async fn wait_call(&self, method: &str, pred: impl Fn(&Call) -> bool) -> Call {
        self.wait_for(&format!("a {method} call"), |calls| {
            calls
                .iter()
                .find(|c| c.method == method && pred(c))
                .cloned()
        })
        .await
    }

    /// One line per call, for failure messages.
    pub fn summary(&self) -> String {
        let inner = self.shared.lock();
        let lines: Vec<String> = inner
            .calls
            .iter()
            .map(|c| {
                let mut shown = c.shown();
                shown.truncate(160);
                format!(
                    "  {} {} channel={:?} thread_ts={:?} ts={:?} -> {} {}: {shown}",
                    c.method,
                    if c.ok() { "ok" } else { "FAILED" },
                    c.field("channel").or(c.field("channel_id")),
                    c.field("thread_ts"),
                    c.field("ts"),
                    c.status,
                    c.response
                        .get("error")
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                )
            })
            .collect();
        lines.join("\n")
    }
}
