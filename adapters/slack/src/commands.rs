//! Slash commands (`/run …`): handed to the core as implicit-run text, answered
//! to the requester only. Slack wants the answer within 3 s; a slow core gets
//! "Working on it…" now, and its answer later through the command's
//! `response_url` (replacing "Working on it…"), or, when that fails or has
//! expired, as a direct message from the bot. Never `chat.postEphemeral`: it
//! fails in direct messages and in private channels the bot is not in, where
//! the person would see "Working on it…" and nothing after it.

use crate::Slack;
use crate::api::Post;
use crate::blocks::escape;
use execgov_chat::{Inbound, InboundContent, Place, Platform, PlatformUser, ReplyKind, cap_echoes};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// How long the core may take before the command is acked without its answer.
pub(crate) const ANSWER_WITHIN: Duration = Duration::from_millis(2500);

/// What a slash command whose text is not valid UTF-8 is answered.
pub(crate) const NOT_UTF8: &str = "That command is not valid UTF-8 text, so nothing was run. Type it again (or paste it as plain text).";

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
    /// Where a late answer goes (30 minutes, 5 uses); Slack sends one with
    /// every command.
    #[serde(default)]
    pub response_url: Option<String>,
}

impl SlashCommand {
    fn actor(&self) -> PlatformUser {
        PlatformUser {
            platform: Platform::Slack,
            id: self.user_id.clone(),
        }
    }

    fn place(&self) -> Place {
        Place::new(Platform::Slack, self.channel_id.clone())
    }
}

/// Handles one slash command; returns the body to ack it with.
pub(crate) async fn on_command(slack: &Arc<Slack>, cmd: SlashCommand) -> Value {
    tracing::debug!(command = %cmd.command, user = %cmd.user_id, channel = %cmd.channel_id, "slash command");
    let inbound = Inbound {
        event_id: None,
        actor: cmd.actor(),
        place: cmd.place(),
        content: InboundContent::Text {
            text: cmd.text.trim().to_string(),
            implicit_run: true,
        },
        // A slash command's text is seen by the app alone, not the channel.
        direct: true,
        files: Vec::new(),
    };
    let handler = slack.handler.clone();
    // Spawned so that a timeout below never cancels the core half-way.
    let mut answer = tokio::spawn(async move { handler.handle(inbound).await });
    match tokio::time::timeout(ANSWER_WITHIN, &mut answer).await {
        Ok(Ok(reply)) => ephemeral(&answer_text(reply.kind, &reply.text)),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "handling a slash command failed");
            ephemeral("Something went wrong handling that; it has been logged.")
        }
        Err(_) => {
            let slack = slack.clone();
            tokio::spawn(async move {
                let text = match answer.await {
                    Ok(reply) => answer_text(reply.kind, &reply.text),
                    Err(e) => {
                        tracing::error!(error = %e, "handling a slash command failed");
                        "Something went wrong handling that; it has been logged.".to_string()
                    }
                };
                slack.answer_late(&cmd, &text).await;
            });
            ephemeral("Working on it…")
        }
    }
}

/// A slash command that is not valid UTF-8: refused before it is read as a
/// command (a lossy reading would turn bytes into U+FFFD and run that), and
/// audited by the core as a refusal.
pub(crate) async fn on_invalid_command(slack: &Arc<Slack>, cmd: SlashCommand) -> Value {
    tracing::warn!(user = %cmd.user_id, channel = %cmd.channel_id, "slash command is not valid UTF-8; refused");
    slack
        .handler
        .refused(&cmd.actor(), &cmd.place(), "the command is not valid UTF-8")
        .await;
    ephemeral(NOT_UTF8)
}

/// What the requester is shown: errors never repeat more than a short piece
/// of what was typed (the core caps them too; this holds for any core).
fn answer_text(kind: ReplyKind, text: &str) -> String {
    match kind {
        ReplyKind::Error => cap_echoes(text),
        _ => text.to_string(),
    }
}

/// `{"response_type":"ephemeral","text":…}`: seen by the requester only.
fn ephemeral(text: &str) -> Value {
    json!({ "response_type": "ephemeral", "text": escape(text) })
}

impl Slack {
    /// The answer to a slash command acked with "Working on it…": through its
    /// `response_url`, replacing that message; else a direct message.
    pub(crate) async fn answer_late(&self, cmd: &SlashCommand, text: &str) {
        if let Some(url) = cmd.response_url.as_deref().filter(|u| !u.trim().is_empty()) {
            let mut body = ephemeral(text);
            body["replace_original"] = json!(true);
            match self.api.respond(url, &body).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(user = %cmd.user_id, error = %e, "answering through response_url failed; sending a direct message")
                }
            }
        }
        let text = format!("Your `{} {}`: {text}", cmd.command, cmd.text.trim());
        self.direct_message(&cmd.user_id, &cap_echoes(&text)).await;
    }

    /// A message in the bot's direct conversation with `user` (its App Home's
    /// messages tab); failures are logged.
    pub(crate) async fn direct_message(&self, user: &str, text: &str) {
        let channel = match self.api.open_dm(user).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(user, error = %e, "opening a direct message failed");
                return;
            }
        };
        let text = escape(text);
        let post = Post {
            channel: &channel,
            thread_ts: None,
            text: &text,
            blocks: None,
        };
        if let Err(e) = self.api.post_message(post).await {
            tracing::warn!(user, error = %e, "direct message failed");
        }
    }
}
