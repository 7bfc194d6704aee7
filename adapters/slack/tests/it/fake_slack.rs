//! A fake Slack Web API on 127.0.0.1 that records every call and answers with
//! Slack's documented shapes, or with canned answers a test queues. It also
//! takes `response_url` POSTs (under `/hooks/`), recorded as method
//! `response_url` and answered as Slack does: `ok` as text, or a canned error.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub authorization: Option<String>,
    /// JSON body, form body or query string, as a JSON object.
    pub body: Value,
    /// The raw body (for uploads).
    pub raw: Bytes,
}

/// A canned answer.
#[derive(Debug, Clone)]
pub struct Canned {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    canned: HashMap<String, VecDeque<Canned>>,
    next_ts: u64,
    socket_url: Option<String>,
}

/// The fake server's handle.
#[derive(Clone)]
pub struct FakeSlack {
    inner: Arc<Mutex<Inner>>,
    changed: Arc<Notify>,
    pub base: String,
}

impl FakeSlack {
    pub async fn start() -> FakeSlack {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fake = FakeSlack {
            inner: Arc::default(),
            changed: Arc::default(),
            base: format!("http://{addr}"),
        };
        let app = Router::new()
            .route("/api/{method}", any(api))
            .route("/upload/{file}", post(upload))
            .route("/hooks/{*path}", post(hook))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    /// A slash command's `response_url` on this fake.
    pub fn response_url(&self, n: u32) -> String {
        format!(
            "{}/hooks/commands/T1/{n}/96rGlfmibIGlgcZRskXaIFfN",
            self.base
        )
    }

    /// What `Settings::api_url` should be.
    pub fn api_url(&self) -> String {
        format!("{}/api/", self.base)
    }

    pub fn set_socket_url(&self, url: String) {
        self.inner.lock().unwrap().socket_url = Some(url);
    }

    /// Answers the next call of `method` with this instead of success.
    pub fn queue(&self, method: &str, canned: Canned) {
        let mut inner = self.inner.lock().unwrap();
        inner
            .canned
            .entry(method.into())
            .or_default()
            .push_back(canned);
    }

    pub fn calls(&self) -> Vec<Call> {
        self.inner.lock().unwrap().calls.clone()
    }

    pub fn calls_of(&self, method: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method)
            .collect()
    }

    /// Waits (up to 10 s) until `method` was called `n` times.
    pub async fn wait_for(&self, method: &str, n: usize) -> Vec<Call> {
        let wait = async {
            loop {
                let notified = self.changed.notified();
                let calls = self.calls_of(method);
                if calls.len() >= n {
                    return calls;
                }
                notified.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| panic!("{method} was not called {n} times: {:?}", self.calls()))
    }

    fn record(&self, call: Call) {
        self.inner.lock().unwrap().calls.push(call);
        self.changed.notify_waiters();
    }

    fn answer(&self, method: &str, body: &Value) -> Canned {
        let mut inner = self.inner.lock().unwrap();
        if let Some(c) = inner.canned.get_mut(method).and_then(VecDeque::pop_front) {
            return c;
        }
        inner.next_ts += 1;
        let ts = format!("1700000000.{:06}", inner.next_ts);
        let channel = body["channel"].as_str().unwrap_or("C0").to_string();
        let ok = |v: Value| Canned {
            status: 200,
            retry_after: None,
            body: v,
        };
        match method {
            "chat.postMessage" | "chat.update" => ok(json!({
                "ok": true, "channel": channel, "ts": body["ts"].as_str().unwrap_or(&ts),
                "message": { "text": body["text"] }
            })),
            "chat.postEphemeral" => ok(json!({ "ok": true, "message_ts": ts })),
            "conversations.open" => {
                let user = body["users"].as_str().unwrap_or_default();
                ok(json!({ "ok": true, "channel": { "id": format!("D{user}") } }))
            }
            "views.open" => ok(json!({ "ok": true, "view": { "id": "V1" } })),
            "auth.test" => ok(json!({
                "ok": true, "url": "https://acme.slack.com/", "team": "Acme", "user": "execgov",
                "team_id": "T1", "user_id": "U0BOT", "bot_id": "B0BOT"
            })),
            "apps.connections.open" => ok(json!({ "ok": true, "url": inner.socket_url })),
            "files.getUploadURLExternal" => {
                let id = format!("F{}", inner.next_ts);
                ok(
                    json!({ "ok": true, "upload_url": format!("{}/upload/{id}", self.base), "file_id": id }),
                )
            }
            "files.completeUploadExternal" => ok(json!({ "ok": true, "files": body["files"] })),
            _ => ok(json!({ "ok": false, "error": "unknown_method" })),
        }
    }
}

async fn api(
    State(fake): State<FakeSlack>,
    Path(method): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let body: Value = if content_type.starts_with("application/json") {
        serde_json::from_slice(&raw).unwrap_or(Value::Null)
    } else {
        let form = if raw.is_empty() {
            query.unwrap_or_default().into_bytes()
        } else {
            raw.to_vec()
        };
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&form).unwrap_or_default();
        Value::Object(
            pairs
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        )
    };
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let canned = fake.answer(&method, &body);
    fake.record(Call {
        method,
        authorization,
        body,
        raw,
    });
    let mut response = (
        StatusCode::from_u16(canned.status).unwrap(),
        axum::Json(canned.body),
    )
        .into_response();
    if let Some(s) = canned.retry_after {
        response.headers_mut().insert("retry-after", s.into());
    }
    response
}

async fn upload(State(fake): State<FakeSlack>, Path(file): Path<String>, raw: Bytes) -> String {
    let len = raw.len();
    fake.record(Call {
        method: format!("upload:{file}"),
        authorization: None,
        body: Value::Null,
        raw,
    });
    format!("OK - {len}")
}

/// A `response_url`: Slack answers `ok` as plain text, errors (`expired_url`,
/// `used_url`, `invalid_payload`) as text with a 4xx.
async fn hook(State(fake): State<FakeSlack>, headers: HeaderMap, raw: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let canned = {
        let mut inner = fake.inner.lock().unwrap();
        inner
            .canned
            .get_mut("response_url")
            .and_then(VecDeque::pop_front)
    };
    fake.record(Call {
        method: "response_url".into(),
        authorization,
        body: body.clone(),
        raw,
    });
    let (status, text) = match canned {
        Some(c) => (c.status, c.body.as_str().unwrap_or("error").to_string()),
        None if body.get("text").is_none() && body.get("blocks").is_none() => {
            (400, "no_text".to_string())
        }
        None => (200, "ok".to_string()),
    };
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "text/plain")],
        text,
    )
        .into_response()
}
