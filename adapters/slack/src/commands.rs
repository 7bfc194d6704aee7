//! Slash commands (`/run …`): handed to the core as implicit-run text, answered
//! to the requester only. Slack wants the answer within 3 s; a slow core gets
//! "working on it…" now and its answer as an ephemeral message later.

use crate::Slack;
use crate::blocks::escape;
use execgov_chat::{Inbound, InboundContent, Place, Platform, PlatformUser};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// How long the core may take before the command is acked without its answer.
pub(crate) const ANSWER_WITHIN: Duration = Duration::from_millis(2500);

/// The fields of a slash command that matter here (form-encoded over HTTP, a
/// JSON object in Socket Mode).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SlashCommand {
    #[serde(default)]
    pub command: String,
    #[serde(default)]
    pub text: String,
    pub user_id: String,
    pub channel_id: String,
}

/// Handles one slash command; returns the body to ack it with.
pub(crate) async fn on_command(slack: &Arc<Slack>, cmd: SlashCommand) -> Value {
    tracing::debug!(command = %cmd.command, user = %cmd.user_id, channel = %cmd.channel_id, "slash command");
    let inbound = Inbound {
        event_id: None,
        actor: PlatformUser {
            platform: Platform::Slack,
            id: cmd.user_id.clone(),
        },
        place: Place::new(Platform::Slack, cmd.channel_id.clone()),
        content: InboundContent::Text {
            text: cmd.text.trim().to_string(),
            implicit_run: true,
        },
    };
    let handler = slack.handler.clone();
    // Spawned so that a timeout below never cancels the core half-way.
    let mut answer = tokio::spawn(async move { handler.handle(inbound).await });
    match tokio::time::timeout(ANSWER_WITHIN, &mut answer).await {
        Ok(Ok(reply)) => ephemeral(&reply.text),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "handling a slash command failed");
            ephemeral("Something went wrong handling that; it has been logged.")
        }
        Err(_) => {
            let slack = slack.clone();
            tokio::spawn(async move {
                let text = match answer.await {
                    Ok(reply) => reply.text,
                    Err(e) => {
                        tracing::error!(error = %e, "handling a slash command failed");
                        return;
                    }
                };
                slack.tell(&cmd.channel_id, &cmd.user_id, None, &text).await;
            });
            ephemeral("Working on it…")
        }
    }
}

/// `{"response_type":"ephemeral","text":…}`: seen by the requester only.
fn ephemeral(text: &str) -> Value {
    json!({ "response_type": "ephemeral", "text": escape(text) })
}
