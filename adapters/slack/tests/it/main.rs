//! The Slack adapter against a fake Slack on loopback: signed requests in,
//! Web API calls out, Socket Mode over ws://.

mod fake_slack;
mod handler;
mod inbound;
mod late;
mod manifest;
mod outbound;
mod socket;

use axum::body::Bytes;
use axum::http::{Request, StatusCode};
use execgov_slack::{Settings, Slack, sign};
use fake_slack::FakeSlack;
use handler::Recorder;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

pub struct TestApp {
    pub fake: FakeSlack,
    pub handler: Arc<Recorder>,
    pub slack: Arc<Slack>,
    /// Where the adapter's router listens.
    pub url: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

pub struct Answer {
    pub status: StatusCode,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

pub async fn spawn_app() -> TestApp {
    let fake = FakeSlack::start().await;
    let handler = Arc::new(Recorder::new());
    let mut settings = Settings::new("xoxb-test-token", SECRET);
    settings.api_url = fake.api_url();
    settings.app_token = Some("xapp-test-token".into());
    let slack = Slack::new(settings, handler.clone()).expect("the adapter builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = slack.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    TestApp {
        fake,
        handler,
        slack,
        url,
        client: Client::builder(TokioExecutor::new()).build_http(),
    }
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl TestApp {
    /// POSTs `body` signed as Slack signs it, `age` seconds ago.
    pub async fn signed(&self, path: &str, content_type: &str, body: &str, age: i64) -> Answer {
        let ts = (now() - age).to_string();
        let sig = sign(SECRET, &ts, body.as_bytes());
        self.send(path, content_type, body, Some((ts, sig))).await
    }

    pub async fn send(
        &self,
        path: &str,
        content_type: &str,
        body: &str,
        signature: Option<(String, String)>,
    ) -> Answer {
        let mut req =
            Request::post(format!("{}{path}", self.url)).header("content-type", content_type);
        if let Some((ts, sig)) = signature {
            req = req
                .header("x-slack-request-timestamp", ts)
                .header("x-slack-signature", sig);
        }
        let req = req.body(Full::new(Bytes::from(body.to_string()))).unwrap();
        let res = self.client.request(req).await.expect("the adapter answers");
        let status = res.status();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    pub async fn command(&self, text: &str) -> Answer {
        let response_url = self.fake.response_url(1);
        let body = serde_urlencoded::to_string([
            ("token", "legacy"),
            ("team_id", "T1"),
            ("channel_id", "C0123"),
            ("user_id", "U0ALICE"),
            ("command", "/run"),
            ("text", text),
            ("response_url", response_url.as_str()),
            ("trigger_id", "1.2.3"),
        ])
        .unwrap();
        self.signed(
            "/slack/commands",
            "application/x-www-form-urlencoded",
            &body,
            0,
        )
        .await
    }

    pub async fn interaction(&self, payload: serde_json::Value) -> Answer {
        let body = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
        self.signed(
            "/slack/interactions",
            "application/x-www-form-urlencoded",
            &body,
            0,
        )
        .await
    }

    pub async fn event(&self, body: serde_json::Value) -> Answer {
        self.signed("/slack/events", "application/json", &body.to_string(), 0)
            .await
    }
}
