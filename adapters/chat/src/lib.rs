//! The chat port of ExecGov.
//!
//! Platform adapters (Slack, Matrix, …) turn platform events into one
//! platform-neutral [`Inbound`] value and render [`Outbound`] values back into
//! platform messages. The core (engine, policy, store) depends on this crate
//! only and never on a platform crate; adapters never decide policy.
//!
//! Layout:
//! - [`Platform`], [`PlatformUser`], [`Place`]: who said something, and where.
//! - [`Inbound`]: one verified event from a platform.
//! - [`Outbound`], [`MessageRef`]: what the engine asks an adapter to post or edit.
//! - [`ChatAdapter`]: the trait each adapter implements, held as `Arc<dyn ChatAdapter>`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A chat platform (or the local CLI/web, which are channels too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Slack,
    Matrix,
    Cli,
    Web,
    Schedule,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Slack => "slack",
            Platform::Matrix => "matrix",
            Platform::Cli => "cli",
            Platform::Web => "web",
            Platform::Schedule => "schedule",
        }
    }

    pub fn parse(s: &str) -> Option<Platform> {
        Some(match s {
            "slack" => Platform::Slack,
            "matrix" => Platform::Matrix,
            "cli" => Platform::Cli,
            "web" => Platform::Web,
            "schedule" => Platform::Schedule,
            _ => return None,
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user id as the platform verified it (Slack's signed `user_id`, Matrix's
/// event `sender`, the OS user for the CLI). Never taken from message text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PlatformUser {
    pub platform: Platform,
    pub id: String,
}

impl fmt::Display for PlatformUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.platform, self.id)
    }
}

/// Where something was said: a channel or room, and optionally a thread in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Place {
    pub platform: Platform,
    /// Slack channel id (`C0123…`), Matrix room id (`!abc:server`), `local` for CLI.
    pub channel: String,
    /// Slack `thread_ts` or Matrix thread root event id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
}

impl Place {
    pub fn new(platform: Platform, channel: impl Into<String>) -> Self {
        Place {
            platform,
            channel: channel.into(),
            thread: None,
        }
    }

    /// The `platform:channel` key that `[channels]` in the config maps names to.
    pub fn key(&self) -> String {
        format!("{}:{}", self.platform, self.channel)
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.thread {
            Some(t) => write!(f, "{}:{} (thread {})", self.platform, self.channel, t),
            None => write!(f, "{}:{}", self.platform, self.channel),
        }
    }
}

/// What arrived: a line of command text, or a structured action (a button click,
/// a reaction) that an adapter already decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InboundContent {
    /// Command text with any prefix (`/run`, `!run`, the bot's mention) removed.
    Text { text: String },
    /// Approve a run (button, ✅ reaction).
    Approve { run_id: String },
    /// Deny a run (button + reason modal, ❌ reaction).
    Deny {
        run_id: String,
        reason: Option<String>,
    },
}

/// One verified event from a platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inbound {
    /// The platform's own id for the event (Slack `event_id` / action id, Matrix
    /// event id), used to process each event once.
    pub event_id: Option<String>,
    pub actor: PlatformUser,
    pub place: Place,
    pub content: InboundContent,
}

/// A reference to a message the adapter posted, so it can be edited or replied to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRef {
    pub place: Place,
    /// Slack `ts` / Matrix event id of the message itself.
    pub id: String,
}

/// A file to upload with a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundFile {
    pub name: String,
    pub path: std::path::PathBuf,
}

/// What the engine asks an adapter to show. Adapters choose the rendering
/// (Block Kit, HTML); `text` is always a complete plain-text fallback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outbound {
    pub place: Place,
    pub text: String,
    /// Structured payload the adapter may render richly (run status, approval request).
    #[serde(default)]
    pub data: serde_json::Value,
    #[serde(default)]
    pub files: Vec<OutboundFile>,
    /// Visible only to this user where the platform supports it (Slack ephemeral).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_to: Option<PlatformUser>,
}

/// Errors an adapter reports to the core, split by whether a retry can help.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("transient chat error (retry after {retry_after_ms:?} ms): {message}")]
    Transient {
        message: String,
        retry_after_ms: Option<u64>,
    },
    #[error("chat error: {0}")]
    Permanent(String),
}

impl ChatError {
    pub fn is_transient(&self) -> bool {
        matches!(self, ChatError::Transient { .. })
    }
}

/// The port every platform adapter implements.
#[async_trait::async_trait]
pub trait ChatAdapter: Send + Sync {
    fn platform(&self) -> Platform;
    /// Post a new message; returns a reference for later edits and thread replies.
    async fn post(&self, msg: Outbound) -> Result<MessageRef, ChatError>;
    /// Replace the content of a message posted earlier.
    async fn edit(&self, target: &MessageRef, msg: Outbound) -> Result<(), ChatError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn place_key_is_platform_and_channel() {
        let mut p = Place::new(Platform::Slack, "C0123");
        p.thread = Some("1.2".into());
        assert_eq!(p.key(), "slack:C0123", "threads do not change the channel key");
    }

    #[test]
    fn inbound_round_trips_as_json() {
        let i = Inbound {
            event_id: Some("Ev1".into()),
            actor: PlatformUser {
                platform: Platform::Matrix,
                id: "@a:x".into(),
            },
            place: Place::new(Platform::Matrix, "!r:x"),
            content: InboundContent::Deny {
                run_id: "7".into(),
                reason: Some("no".into()),
            },
        };
        let s = serde_json::to_string(&i).unwrap();
        assert_eq!(serde_json::from_str::<Inbound>(&s).unwrap(), i);
    }
}
