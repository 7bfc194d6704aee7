//! Socket Mode: Slack pushes the same payloads as over HTTP through a WebSocket
//! that we open (`apps.connections.open` with the app token), and wants each
//! envelope acked with its `envelope_id`.
//!
//! Each connection runs as its own task and tells the supervisor
//! ([`Slack::socket_mode_until_stopped`]) when Slack says `hello`, when it
//! asks to reconnect (`disconnect`) and when the connection ends. A
//! `disconnect` (Slack rotates connections every few hours, and warns ~10 s
//! before it closes one) opens the next connection while the old one still
//! delivers; the old one is closed once the new one has said `hello`, so
//! there is no gap. A connection pings every third of its
//! [`SocketOptions::timeout`]; one that has sent nothing (no frame, no pong)
//! for two thirds of it is half-open and is dropped and replaced, so a dead
//! socket is seen within the timeout (30 s by default).

use crate::Slack;
use crate::commands::{SlashCommand, on_command};
use crate::events::{EventsBody, on_events};
use crate::interactions::{Interaction, on_interaction};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;

/// The first wait before reconnecting, doubled after each failed connection.
const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// Envelopes handled at the same time on one connection.
const MAX_IN_FLIGHT: usize = 64;

/// How Socket Mode watches its connections.
#[derive(Debug, Clone, Copy)]
pub struct SocketOptions {
    /// A half-open connection (no frame and no pong) is dropped and replaced
    /// within this long. Pings go out every third of it.
    pub timeout: Duration,
}

impl SocketOptions {
    /// 30 s: what the issue asks, and well within Slack's own ping cadence.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

    fn ping_every(&self) -> Duration {
        (self.timeout / 3).max(Duration::from_millis(10))
    }

    /// Silent this long at a ping: half-open. Checked every `ping_every`, so
    /// a dead socket is seen at most `timeout` after its last frame.
    fn silent_limit(&self) -> Duration {
        self.ping_every() * 2
    }
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            timeout: SocketOptions::DEFAULT_TIMEOUT,
        }
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What a connection's task needs besides the socket.
struct Connection {
    id: u64,
    events: mpsc::Sender<(u64, ConnEvent)>,
    stop: CancellationToken,
    opts: SocketOptions,
}

/// Sends one frame, giving up after `within`.
async fn send(ws: &mut Ws, msg: WsMessage, within: Duration) -> Result<(), String> {
    match tokio::time::timeout(within, ws.send(msg)).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("not sent within {} ms", within.as_millis())),
    }
}

/// A doubling, capped delay.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff {
            next: BACKOFF_START,
        }
    }

    /// The wait to use now; the one after is twice as long, up to the cap.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(BACKOFF_CAP);
        now
    }

    pub(crate) fn reset(&mut self) {
        self.next = BACKOFF_START;
    }
}

/// One envelope from Slack.
#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    envelope_id: Option<String>,
    #[serde(default)]
    payload: Value,
    #[serde(default)]
    reason: Option<String>,
}

/// What a connection's task tells the supervisor.
#[derive(Debug)]
enum ConnEvent {
    /// Slack said `hello`: it delivers on this connection from now on.
    Hello,
    /// Slack asks for a new connection; this one still delivers until closed.
    Disconnect,
    /// The connection is over (closed, failed, half-open, or stopped).
    Ended(Result<(), String>),
}

/// A connection the supervisor knows of.
struct Live {
    id: u64,
    stop: CancellationToken,
    greeted: bool,
    /// Slack asked to replace it; it is closed once its successor says hello.
    retiring: bool,
}

impl Slack {
    /// Runs Socket Mode until `shutdown` with [`SocketOptions::default`]: see
    /// [`Slack::socket_mode_with`].
    pub async fn socket_mode_until_stopped(
        self: Arc<Self>,
        shutdown: CancellationToken,
        connected: impl Fn(bool) + Send + Sync + 'static,
    ) {
        self.socket_mode_with(shutdown, SocketOptions::default(), connected)
            .await
    }

    /// Runs Socket Mode until `shutdown`: connect, handle and ack envelopes,
    /// replace a connection Slack rotates before dropping it, replace a
    /// half-open one, reconnect with a doubling, capped delay after failures.
    /// Returns at once without an app token.
    ///
    /// `connected` hears whether some connection is up (Slack said hello on it
    /// and it is still open): `false` at the start, while none is, and at the
    /// end. It is what `/readyz` reports for Slack in this mode.
    pub async fn socket_mode_with(
        self: Arc<Self>,
        shutdown: CancellationToken,
        opts: SocketOptions,
        connected: impl Fn(bool) + Send + Sync + 'static,
    ) {
        connected(false);
        if self.api.app_token.is_none() {
            tracing::warn!("Socket Mode needs an app token; not starting it");
            return;
        }
        let (events_tx, mut events) = mpsc::channel::<(u64, ConnEvent)>(16);
        let mut live: Vec<Live> = Vec::new();
        let mut next_id = 0u64;
        let mut backoff = Backoff::new();
        // When to open a connection next (`None`: no need now).
        let mut open_at: Option<Instant> = Some(Instant::now());
        let mut was_up = false;
        loop {
            let up = live.iter().any(|c| c.greeted);
            if up != was_up {
                connected(up);
                was_up = up;
            }
            let due = open_at.filter(|at| *at <= Instant::now());
            if due.is_some() {
                open_at = None;
                let opened = tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => break,
                    r = self.open_connection() => r,
                };
                match opened {
                    Ok(ws) => {
                        next_id += 1;
                        let stop = shutdown.child_token();
                        let conn = Connection {
                            id: next_id,
                            events: events_tx.clone(),
                            stop: stop.clone(),
                            opts,
                        };
                        tokio::spawn(self.clone().drive(ws, conn));
                        live.push(Live {
                            id: next_id,
                            stop,
                            greeted: false,
                            retiring: false,
                        });
                    }
                    Err(e) => {
                        let wait = backoff.next_delay();
                        tracing::warn!(error = %e, wait_ms = wait.as_millis() as u64, "Slack Socket Mode connection failed");
                        open_at = Some(Instant::now() + wait);
                    }
                }
                continue;
            }
            let wake = open_at.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some((id, event)) = events.recv() => match event {
                    ConnEvent::Hello => {
                        backoff.reset();
                        for c in live.iter_mut() {
                            if c.id == id {
                                c.greeted = true;
                            } else if c.retiring {
                                // Its successor delivers now: close it.
                                c.stop.cancel();
                            }
                        }
                    }
                    ConnEvent::Disconnect => {
                        tracing::info!(conn = id, "Slack asks to reconnect; opening the next connection first");
                        if let Some(c) = live.iter_mut().find(|c| c.id == id) {
                            c.retiring = true;
                        }
                        if open_at.is_none() && !live.iter().any(|c| !c.retiring) {
                            open_at = Some(Instant::now());
                        }
                    }
                    ConnEvent::Ended(result) => {
                        let greeted = live.iter().any(|c| c.id == id && c.greeted);
                        live.retain(|c| c.id != id);
                        match result {
                            Ok(()) => tracing::info!(conn = id, "Slack Socket Mode connection ended"),
                            Err(e) => tracing::warn!(conn = id, error = %e, "Slack Socket Mode connection lost"),
                        }
                        if open_at.is_none() && !live.iter().any(|c| !c.retiring) {
                            if greeted {
                                backoff.reset();
                            }
                            open_at = Some(Instant::now() + backoff.next_delay());
                        }
                    }
                },
                _ = tokio::time::sleep_until(wake), if open_at.is_some() => {}
            }
        }
        for c in &live {
            c.stop.cancel();
        }
        connected(false);
    }

    /// `apps.connections.open`, then the WebSocket handshake with the URL it gave.
    async fn open_connection(&self) -> Result<Ws, String> {
        let url = self
            .api
            .open_socket_url()
            .await
            .map_err(|e| e.to_string())?;
        let connector = tokio_tungstenite::Connector::Rustls(self.ws_tls.clone());
        let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(
            url.as_str(),
            None,
            true,
            Some(connector),
        )
        .await
        .map_err(|e| format!("connecting the WebSocket: {e}"))?;
        tracing::info!("Slack Socket Mode connected");
        Ok(ws)
    }

    /// One connection's task: reads envelopes, acks them, pings, and says how
    /// it ended.
    async fn drive(self: Arc<Self>, mut ws: Ws, conn: Connection) {
        let ended = self.read_until_ended(&mut ws, &conn).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
        let _ = conn.events.send((conn.id, ConnEvent::Ended(ended))).await;
    }

    async fn read_until_ended(
        self: &Arc<Self>,
        ws: &mut Ws,
        conn: &Connection,
    ) -> Result<(), String> {
        let (ack_tx, mut ack_rx) = mpsc::channel::<String>(MAX_IN_FLIGHT);
        let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let ping_every = conn.opts.ping_every();
        let mut pings = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heard = Instant::now();
        // A send that does not finish is a dead socket too.
        let send_within = conn.opts.timeout;
        loop {
            tokio::select! {
                biased;
                _ = conn.stop.cancelled() => return Ok(()),
                Some(ack) = ack_rx.recv() => {
                    send(ws, WsMessage::text(ack), send_within).await.map_err(|e| format!("sending an ack: {e}"))?;
                }
                _ = pings.tick() => {
                    let silent = heard.elapsed();
                    if silent >= conn.opts.silent_limit() {
                        return Err(format!("no frame and no pong for {} ms: the socket is half-open", silent.as_millis()));
                    }
                    send(ws, WsMessage::Ping(Vec::new().into()), send_within).await.map_err(|e| format!("sending a ping: {e}"))?;
                }
                msg = ws.next() => {
                    heard = Instant::now();
                    match msg {
                        None | Some(Ok(WsMessage::Close(_))) => return Ok(()),
                        Some(Err(e)) => return Err(format!("reading: {e}")),
                        Some(Ok(WsMessage::Text(text))) => {
                            let envelope: Envelope = match serde_json::from_str(text.as_str()) {
                                Ok(e) => e,
                                Err(e) => {
                                    tracing::warn!(error = %e, "unreadable Socket Mode message");
                                    continue;
                                }
                            };
                            match envelope.kind.as_str() {
                                "hello" => {
                                    let _ = conn.events.send((conn.id, ConnEvent::Hello)).await;
                                }
                                "disconnect" => {
                                    tracing::info!(reason = ?envelope.reason, "Slack asks to reconnect");
                                    let _ = conn.events.send((conn.id, ConnEvent::Disconnect)).await;
                                }
                                _ => {
                                    let permit = in_flight.clone().acquire_owned().await.map_err(|e| e.to_string())?;
                                    let slack = self.clone();
                                    let ack_tx = ack_tx.clone();
                                    tokio::spawn(async move {
                                        if let Some(ack) = slack.on_envelope(envelope).await {
                                            let _ = ack_tx.send(ack).await;
                                        }
                                        drop(permit);
                                    });
                                }
                            }
                        }
                        // Pongs (and Slack's pings, which tungstenite answers) show it is alive.
                        Some(Ok(_)) => {}
                    }
                }
            }
        }
    }

    /// Handles one envelope like its HTTP twin; returns the ack to send.
    async fn on_envelope(self: Arc<Self>, envelope: Envelope) -> Option<String> {
        let envelope_id = envelope.envelope_id?;
        let mut ack = json!({ "envelope_id": envelope_id });
        match envelope.kind.as_str() {
            "slash_commands" => match serde_json::from_value::<SlashCommand>(envelope.payload) {
                Ok(cmd) => ack["payload"] = on_command(&self, cmd).await,
                Err(e) => tracing::warn!(error = %e, "unreadable Socket Mode slash command"),
            },
            "interactive" => {
                let handled = match serde_json::from_value::<Interaction>(envelope.payload) {
                    Ok(i) => on_interaction(&self, i).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match handled {
                    Ok(Some(body)) => ack["payload"] = body,
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "unreadable Socket Mode interaction"),
                }
            }
            "events_api" => match serde_json::from_value::<EventsBody>(envelope.payload) {
                Ok(body) => {
                    on_events(&self, body).await;
                }
                Err(e) => tracing::warn!(error = %e, "unreadable Socket Mode event"),
            },
            other => tracing::debug!(kind = other, "Socket Mode envelope acked unread"),
        }
        Some(ack.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let mut b = Backoff::new();
        let waits: Vec<u64> = (0..9).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(
            waits,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        b.reset();
        assert_eq!(b.next_delay(), BACKOFF_START);
    }
}
