//! Requests to the bot's Slack endpoints, signed exactly as Slack signs them
//! (`v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}` with the signing
//! secret), plus the broken variants the bot must refuse, and a small
//! keep-alive HTTP/1.1 client. Shared by the tests and `benches/slack_load.rs`.

use axum::body::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use sha2::Sha256;
use std::net::SocketAddr;

pub const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

/// `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}`.
pub fn sign(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// How a request is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    Good,
    /// Signed with another secret.
    BadSignature,
    /// Correctly signed, but six minutes ago (Slack's window is five).
    Stale,
    /// No `X-Slack-Signature` header.
    NoSignature,
    /// No `X-Slack-Request-Timestamp` header.
    NoTimestamp,
}

/// One request to the bot: path, content type, body, and extra headers.
#[derive(Debug, Clone)]
pub struct SlackRequest {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: String,
    pub headers: Vec<(String, String)>,
    pub signing: Signing,
}

impl SlackRequest {
    /// `POST /slack/commands` with a slash command's form fields.
    pub fn command(fields: &[(String, String)]) -> SlackRequest {
        SlackRequest::form(
            "/slack/commands",
            serde_urlencoded::to_string(fields).expect("form encodes"),
        )
    }

    /// `POST /slack/interactions` with `payload=<json>`.
    pub fn interaction(payload: &Value) -> SlackRequest {
        let body =
            serde_urlencoded::to_string([("payload", payload.to_string())]).expect("form encodes");
        SlackRequest::form("/slack/interactions", body)
    }

    /// `POST /slack/events` with a JSON body.
    pub fn event(body: &Value) -> SlackRequest {
        SlackRequest {
            path: "/slack/events",
            content_type: "application/json",
            body: body.to_string(),
            headers: Vec::new(),
            signing: Signing::Good,
        }
    }

    fn form(path: &'static str, body: String) -> SlackRequest {
        SlackRequest {
            path,
            content_type: "application/x-www-form-urlencoded",
            body,
            headers: Vec::new(),
            signing: Signing::Good,
        }
    }

    pub fn signed(mut self, signing: Signing) -> SlackRequest {
        self.signing = signing;
        self
    }

    /// Slack's redelivery: `X-Slack-Retry-Num` and `X-Slack-Retry-Reason`.
    pub fn retry(mut self, n: u32) -> SlackRequest {
        self.headers
            .push(("X-Slack-Retry-Num".into(), n.to_string()));
        self.headers
            .push(("X-Slack-Retry-Reason".into(), "http_timeout".into()));
        self
    }

    /// The HTTP request, signed now as `self.signing` says.
    pub fn build(&self, addr: SocketAddr) -> hyper::Request<Full<Bytes>> {
        let now = now_secs();
        let (secret, ts) = match self.signing {
            Signing::BadSignature => ("not-the-signing-secret", now),
            Signing::Stale => (SIGNING_SECRET, now - 6 * 60),
            _ => (SIGNING_SECRET, now),
        };
        let mut req = hyper::Request::post(self.path)
            .header("host", addr.to_string())
            .header("content-type", self.content_type)
            .header("user-agent", "Slackbot 1.0 (+https://api.slack.com/robots)");
        if self.signing != Signing::NoTimestamp {
            req = req.header("x-slack-request-timestamp", ts.to_string());
        }
        if self.signing != Signing::NoSignature {
            req = req.header("x-slack-signature", sign(secret, ts, &self.body));
        }
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        req.body(Full::new(Bytes::from(self.body.clone())))
            .expect("a valid request")
    }
}

/// The bot's answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Reply {
    /// The body as JSON (`Null` when it is empty or not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// One keep-alive HTTP/1.1 connection to the bot.
pub struct Conn {
    addr: SocketAddr,
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn { addr, sender })
    }

    pub async fn send(&mut self, req: &SlackRequest) -> std::io::Result<Reply> {
        self.sender.ready().await.map_err(std::io::Error::other)?;
        let res = self
            .sender
            .send_request(req.build(self.addr))
            .await
            .map_err(std::io::Error::other)?;
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = res
            .into_body()
            .collect()
            .await
            .map_err(std::io::Error::other)?
            .to_bytes();
        Ok(Reply {
            status,
            content_type,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

/// Sends one request on a fresh connection.
pub async fn send(addr: SocketAddr, req: &SlackRequest) -> Reply {
    let mut conn = Conn::open(addr).await.expect("connect to the bot");
    conn.send(req).await.expect("the bot answers")
}
