//! Socket Mode on the fake's `/socket`: the WebSocket that
//! `apps.connections.open` hands out. On connect it sends Slack's `hello`; a
//! test pushes envelopes (`slash_commands`, `interactive`, `events_api`) to the
//! newest live connection and awaits the bot's ack by `envelope_id`; it can send
//! `disconnect` and close, as Slack does before it rotates a connection.

use super::fake::{APP_ID, FakeSlack, Shared};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

/// The fake's live Socket Mode connections and the frames the bot sent on them.
#[derive(Default)]
pub(super) struct Hub {
    conns: Mutex<Vec<(usize, mpsc::UnboundedSender<Message>)>>,
    /// JSON frames from the bot (acks), in arrival order.
    frames: Mutex<Vec<Value>>,
    /// Connections that went silent: the fake neither reads (so no pong) nor
    /// sends on them, as a half-open socket behaves.
    silent: Mutex<Vec<usize>>,
    /// Connections ever accepted.
    connects: AtomicUsize,
    envelopes: AtomicUsize,
}

impl Hub {
    fn add(&self, tx: mpsc::UnboundedSender<Message>) -> usize {
        let id = self.connects.fetch_add(1, Ordering::SeqCst) + 1;
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((id, tx));
        id
    }

    fn remove(&self, id: usize) {
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(c, _)| *c != id);
    }

    fn newest(&self) -> Option<(usize, mpsc::UnboundedSender<Message>)> {
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last()
            .cloned()
    }

    fn live(&self) -> usize {
        self.conns.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Closes every connection (the fake is going away).
    pub(super) fn close_all(&self) {
        for (_, tx) in self
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = tx.send(Message::Close(None));
        }
    }
}

/// `GET /socket`: the WebSocket handshake, then [`serve`] on the upgraded connection.
pub(super) async fn upgrade(State(s): State<Arc<Shared>>, mut req: Request) -> Response {
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return (StatusCode::BAD_REQUEST, "expected a WebSocket upgrade").into_response();
    };
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "this connection cannot be upgraded",
        )
            .into_response();
    };
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let ws =
                WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
            serve(s, ws).await;
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(
            header::SEC_WEBSOCKET_ACCEPT,
            derive_accept_key(key.as_bytes()),
        )
        .body(Body::empty())
        .expect("a valid 101 response")
}

async fn serve<S>(s: Arc<Shared>, ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let id = s.hub.add(tx.clone());
    let hello = json!({
        "type": "hello",
        "num_connections": s.hub.live(),
        "debug_info": {"host": "applink-fake-1", "build_number": 1, "approximate_connection_time": 18060},
        "connection_info": {"app_id": APP_ID}
    });
    let _ = tx.send(Message::text(hello.to_string()));
    s.bump();
    let writer = async {
        while let Some(m) = rx.recv().await {
            let close = matches!(m, Message::Close(_));
            if sink.send(m).await.is_err() || close {
                break;
            }
        }
        let _ = sink.close().await;
    };
    let is_silent = || {
        s.hub
            .silent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&id)
    };
    let writer = async {
        writer.await;
        // A silent connection stays open from this side.
        if is_silent() {
            std::future::pending::<()>().await;
        }
    };
    let reader = async {
        loop {
            if is_silent() {
                std::future::pending::<()>().await;
            }
            let Some(Ok(m)) = stream.next().await else {
                break;
            };
            match m {
                Message::Text(t) => {
                    let frame =
                        serde_json::from_str(t.as_str()).unwrap_or(Value::String(t.to_string()));
                    s.hub
                        .frames
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(frame);
                    s.bump();
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
    };
    tokio::select! {
        _ = writer => {}
        _ = reader => {}
    }
    s.hub.remove(id);
    s.bump();
}

impl FakeSlack {
    /// Socket Mode connections the bot has opened so far.
    pub fn socket_connects(&self) -> usize {
        self.shared.hub.connects.load(Ordering::SeqCst)
    }

    /// Waits until the bot has opened at least `n` connections and one is live.
    pub async fn wait_socket_connects(&self, n: usize) {
        self.wait_until(&format!("{n} Socket Mode connection(s)"), |s| {
            (s.hub.connects.load(Ordering::SeqCst) >= n && s.hub.live() > 0).then_some(())
        })
        .await
    }

    /// Sends an envelope of `kind` to the newest live connection; returns its id.
    pub async fn push_envelope(&self, kind: &str, payload: Value) -> String {
        self.wait_socket_connects(1).await;
        let n = self.shared.hub.envelopes.fetch_add(1, Ordering::SeqCst) + 1;
        let envelope_id = format!("{n:08x}-4d35-4997-a8d6-{n:012x}");
        let envelope = json!({
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": 0,
            "retry_reason": ""
        });
        let (_, tx) = self
            .shared
            .hub
            .newest()
            .expect("a live Socket Mode connection");
        tx.send(Message::text(envelope.to_string()))
            .expect("the connection takes the envelope");
        envelope_id
    }

    /// Waits for the bot's ack of `envelope_id`: `{"envelope_id":…(,"payload":…)}`.
    pub async fn wait_ack(&self, envelope_id: &str) -> Value {
        self.wait_until(&format!("the ack of envelope {envelope_id}"), |s| {
            let frames = s.hub.frames.lock().unwrap_or_else(|e| e.into_inner());
            frames
                .iter()
                .find(|f| f["envelope_id"] == envelope_id)
                .cloned()
        })
        .await
    }

    /// The newest connection goes silent (half-open): no frame, no pong, and
    /// it is not closed from this side. Returns how many connections were
    /// accepted so far.
    pub async fn silence_newest(&self) -> usize {
        self.wait_socket_connects(1).await;
        let (id, _) = self
            .shared
            .hub
            .newest()
            .expect("a live Socket Mode connection");
        self.shared
            .hub
            .silent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(id);
        self.shared.hub.remove(id);
        self.shared.bump();
        self.socket_connects()
    }

    /// Sends `disconnect` (Slack's warning before it rotates a connection) on the
    /// newest live connection, then closes it.
    pub async fn disconnect_newest(&self, reason: &str) {
        self.wait_socket_connects(1).await;
        let (id, tx) = self
            .shared
            .hub
            .newest()
            .expect("a live Socket Mode connection");
        let frame = json!({"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake-1"}});
        let _ = tx.send(Message::text(frame.to_string()));
        let _ = tx.send(Message::Close(None));
        self.shared.hub.remove(id);
        self.shared.bump();
    }
}
