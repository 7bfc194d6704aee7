//! Socket Mode: Slack pushes the same payloads as over HTTP through a WebSocket
//! that we open (`apps.connections.open` with the app token), and wants each
//! envelope acked with its `envelope_id`. The loop reconnects after a close, a
//! `disconnect` or an error, waiting longer after each failure, and stops when
//! told to.

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
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;

/// The first wait before reconnecting, doubled after each failed connection.
const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// Envelopes handled at the same time on one connection.
const MAX_IN_FLIGHT: usize = 64;

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

/// How one connection ended.
enum Ended {
    Stopped,
    /// Closed or asked to reconnect; `greeted` when Slack said hello first.
    Reconnect {
        greeted: bool,
    },
}

impl Slack {
    /// Runs Socket Mode until `shutdown`: connect, handle and ack envelopes,
    /// reconnect with a doubling, capped delay. Returns at once without an app token.
    ///
    /// `connected` hears `true` once Slack has said hello on a connection (it
    /// delivers from then on) and `false` at the start, whenever a connection
    /// ends, and at the end: what `/readyz` reports for Slack in this mode.
    pub async fn socket_mode_until_stopped(
        self: Arc<Self>,
        shutdown: CancellationToken,
        connected: impl Fn(bool) + Send + Sync + 'static,
    ) {
        connected(false);
        if self.api.app_token.is_none() {
            tracing::warn!("Socket Mode needs an app token; not starting it");
            return;
        }
        let mut backoff = Backoff::new();
        loop {
            let ended = tokio::select! {
                biased;
                _ = shutdown.cancelled() => None,
                ended = self.connection(&shutdown, &connected) => Some(ended),
            };
            connected(false);
            let Some(ended) = ended else {
                return;
            };
            match ended {
                Ok(Ended::Stopped) => return,
                Ok(Ended::Reconnect { greeted }) => {
                    if greeted {
                        backoff.reset();
                    }
                    tracing::info!("Slack Socket Mode connection ended; reconnecting");
                }
                Err(e) => tracing::warn!(error = %e, "Slack Socket Mode connection failed"),
            }
            let delay = backoff.next_delay();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// One WebSocket connection, from `apps.connections.open` to its end.
    async fn connection(
        self: &Arc<Self>,
        shutdown: &CancellationToken,
        connected: &(impl Fn(bool) + Send + Sync),
    ) -> Result<Ended, String> {
        let url = self
            .api
            .open_socket_url()
            .await
            .map_err(|e| e.to_string())?;
        let connector = tokio_tungstenite::Connector::Rustls(self.ws_tls.clone());
        let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(
            url.as_str(),
            None,
            true,
            Some(connector),
        )
        .await
        .map_err(|e| format!("connecting the WebSocket: {e}"))?;
        tracing::info!("Slack Socket Mode connected");
        let (ack_tx, mut ack_rx) = mpsc::channel::<String>(MAX_IN_FLIGHT);
        let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let mut greeted = false;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    let _ = ws.close(None).await;
                    return Ok(Ended::Stopped);
                }
                Some(ack) = ack_rx.recv() => {
                    ws.send(WsMessage::text(ack)).await.map_err(|e| format!("sending an ack: {e}"))?;
                }
                msg = ws.next() => match msg {
                    None | Some(Ok(WsMessage::Close(_))) => return Ok(Ended::Reconnect { greeted }),
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
                                greeted = true;
                                connected(true);
                            }
                            "disconnect" => {
                                tracing::info!(reason = ?envelope.reason, "Slack asks to reconnect");
                                let _ = ws.close(None).await;
                                return Ok(Ended::Reconnect { greeted });
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
                    Some(Ok(_)) => {} // pings are answered by tungstenite
                },
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
                let handled = serde_json::from_value::<Interaction>(envelope.payload)
                    .map_err(|e| e.to_string())
                    .and_then(|i| on_interaction(&self, i).map_err(|e| e.to_string()));
                if let Err(e) = handled {
                    tracing::warn!(error = %e, "unreadable Socket Mode interaction");
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
