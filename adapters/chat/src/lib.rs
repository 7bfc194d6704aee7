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
//! - [`cap_echoes`] (`echo.rs`): what a person typed, shortened where an answer repeats it.
//! - [`result`]: a run's result read as facts and a table, for every renderer.

mod echo;
pub mod result;

pub use echo::{MAX_ANSWER_CHARS, MAX_ECHO_CHARS, cap_echoes};

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
    Text {
        text: String,
        /// The prefix itself meant "run" (Slack's `/run`, Matrix's `!run`): a line
        /// that does not start with a verb is read as `run <line>`.
        #[serde(default)]
        implicit_run: bool,
    },
    /// Approve a run (button, ✅ reaction, the step-up dialog with its code).
    Approve {
        run_id: String,
        /// A step-up code the person typed (Slack's approve dialog).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
    },
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
    /// Only ExecGov saw what was sent (a direct room or DM with the bot, a
    /// Slack slash command or dialog), not everyone in a shared room. A
    /// step-up code is accepted only from such an event.
    #[serde(default)]
    pub direct: bool,
    /// Files that came with the message (Slack's attached files, the Matrix
    /// file the command replies to), downloaded by the adapter: the core binds
    /// them to the script's file parameters.
    #[serde(default, skip)]
    pub files: Vec<Attachment>,
}

/// A file sent with a request: its name as sent and its bytes.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Attachment {
    pub name: String,
    pub data: Vec<u8>,
}

impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Attachment({:?}, {} bytes)", self.name, self.data.len())
    }
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

/// A run as chat shows it, already worded by the core; adapters only lay it out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunView {
    pub run_id: String,
    pub script: String,
    /// `key=value …` as the requester would type it back.
    pub args: String,
    /// Display name of the requester (`alice`, `schedule:health-check/daily`).
    pub requester: String,
    /// The requester's platform account, for a mention where the platform has them.
    pub requester_account: Option<PlatformUser>,
    /// Where it was asked, for people (`slack:C0123`, `cli:local`).
    pub asked_in: String,
    /// `awaiting_approval`, `queued`, `running`, `succeeded`, …
    pub state: String,
    /// True once the run can no longer change.
    pub finished: bool,
    pub progress_pct: Option<u8>,
    pub progress_text: Option<String>,
    pub exit_code: Option<i64>,
    pub duration_ms: Option<i64>,
    /// Why it was refused, rejected or failed.
    pub reason: Option<String>,
    /// The end of the (masked) output.
    pub output_tail: Option<String>,
    /// The run's whole stored log (masked, and capped as the store caps it),
    /// on a finished run's result only: what an adapter that shows only
    /// `output_tail` attaches as a file. `None`: not loaded, or no log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_output: Option<String>,
    /// The structured result the script wrote, if any.
    pub result: Option<serde_json::Value>,
    pub audit_link: String,
    /// Files the run produced, to upload with the result.
    pub files: Vec<OutboundFile>,
    /// Decisions so far, worded: `bob approved at 2026-11-24 10:02 UTC`.
    pub decisions: Vec<String>,
    /// While the run awaits approval: what it still needs and until when
    /// (`1 more approval(s) from bob, dave; expires 2026-11-24 11:02:00 UTC`).
    #[serde(default)]
    pub waiting_for: Option<String>,
    /// People to alert with a mention where this is shown (a failed scheduled
    /// run's `notify_on_failure`); adapters mention those on their platform.
    #[serde(default)]
    pub mentions: Vec<PlatformUser>,
    /// A mark the run carries everywhere it is shown, such as a break-glass
    /// run not reviewed yet; adapters show it prominently.
    #[serde(default)]
    pub flag: Option<String>,
}

/// An approval request as chat shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalView {
    pub run: RunView,
    /// What approval still needs: `1 of bob, dave`.
    pub needed: String,
    /// When the request expires, worded.
    pub expires: String,
    /// True while decisions are still possible (buttons shown).
    pub open: bool,
    /// Each approval needs a second-factor code (`risk = "critical"`):
    /// adapters ask for it (Slack: a dialog; Matrix: a direct message).
    #[serde(default)]
    pub step_up: bool,
    /// The script's preview run (manifest `[approval] preview`): what it
    /// printed and returned with the preview's arguments, for approvers to
    /// see what the run will do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<Box<PreviewView>>,
}

/// A preview run as an approval request shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviewView {
    /// The preview run itself (its state, exit code, output tail, result, audit link).
    pub run: RunView,
    /// The arguments the preview added, as typed: `--dry-run`.
    pub extra_args: String,
}

impl PreviewView {
    /// `Preview (run 13, --dry-run): succeeded, exit 0`, or `… still running`.
    pub fn headline(&self) -> String {
        let outcome = if self.run.finished {
            let mut o = self.run.state.replace('_', " ");
            if let Some(code) = self.run.exit_code {
                o.push_str(&format!(", exit {code}"));
            }
            o
        } else {
            "still running; this request is updated when it ends".to_string()
        };
        format!(
            "Preview (run {}, `{}`): {outcome}",
            self.run.run_id, self.extra_args
        )
    }
}

/// What the core asks an adapter to show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Message {
    /// A plain line (answers, errors, notes in a run's thread).
    Text { text: String },
    /// A run's status message: posted once where it was asked, edited as it moves.
    RunStatus { run: RunView },
    /// A run's result, posted in its thread, with its files.
    RunResult { run: RunView },
    /// An approval request in an approver channel, with Approve / Deny.
    ApprovalRequest { approval: ApprovalView },
}

impl Message {
    /// A complete plain-text rendering, for notifications and platforms without rich layout.
    pub fn fallback_text(&self) -> String {
        match self {
            Message::Text { text } => text.clone(),
            Message::RunStatus { run } => status_line(run),
            Message::RunResult { run } => {
                let mut out = status_line(run);
                if let Some(t) = run.output_tail.as_deref().filter(|t| !t.trim().is_empty()) {
                    out.push('\n');
                    out.push_str(t.trim_end());
                }
                out.push_str(&format!("\naudit: {}", run.audit_link));
                out
            }
            Message::ApprovalRequest { approval } => {
                let mut out = format!(
                    "approval needed for run {} `{} {}` requested by {} in {}: {}; expires {}",
                    approval.run.run_id,
                    approval.run.script,
                    approval.run.args,
                    approval.run.requester,
                    approval.run.asked_in,
                    approval.needed,
                    approval.expires
                );
                if let Some(p) = &approval.preview {
                    out.push('\n');
                    out.push_str(&p.headline());
                    if let Some(t) = p
                        .run
                        .output_tail
                        .as_deref()
                        .filter(|t| !t.trim().is_empty())
                    {
                        out.push('\n');
                        out.push_str(t.trim_end());
                    }
                }
                out
            }
        }
    }
}

/// `run 12 report-export month=2026-10: succeeded (exit 0, 1.2 s)`.
pub fn status_line(run: &RunView) -> String {
    let mut out = format!(
        "run {} `{} {}`: {}",
        run.run_id,
        run.script,
        run.args,
        run.state.replace('_', " ")
    );
    let mut extra = Vec::new();
    if let Some(pct) = run.progress_pct.filter(|_| !run.finished) {
        extra.push(format!("{pct}%"));
    }
    if let Some(t) = run.progress_text.as_ref().filter(|_| !run.finished) {
        extra.push(t.clone());
    }
    if let Some(c) = run.exit_code {
        extra.push(format!("exit {c}"));
    }
    if let Some(ms) = run.duration_ms {
        extra.push(format!("{:.1} s", ms as f64 / 1000.0));
    }
    if !extra.is_empty() {
        out.push_str(&format!(" ({})", extra.join(", ")));
    }
    if let Some(w) = run.waiting_for.as_ref().filter(|_| !run.finished) {
        out.push_str(&format!(": needs {w}"));
    }
    if let Some(r) = &run.reason {
        out.push_str(&format!(": {r}"));
    }
    if let Some(flag) = &run.flag {
        out.push_str(&format!(" [{flag}]"));
    }
    out
}

/// Something to post: a message for a place, optionally visible to one user only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outbound {
    pub place: Place,
    pub message: Message,
    /// Visible only to this user where the platform supports it (Slack ephemeral).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_to: Option<PlatformUser>,
}

/// How the core's answer to an inbound event should be shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyKind {
    /// Information for the requester (list, help, status, explain).
    Info,
    /// A usage error or a refusal: to the requester only, where the platform can.
    Error,
    /// A run was accepted; its status message follows from the core.
    Accepted,
    /// An approval decision was recorded.
    Decided,
    /// For the requester's eyes only, never in a shared channel (a sign-in
    /// link): Slack ephemeral, a Matrix direct message.
    Private,
}

/// The core's immediate answer to an inbound event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundReply {
    pub kind: ReplyKind,
    pub text: String,
    /// The run the event created or touched.
    pub run_id: Option<String>,
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

/// The core, as adapters see it: they hand it verified events and show its answers.
#[async_trait::async_trait]
pub trait InboundHandler: Send + Sync {
    /// Handles one verified event and answers at once (runs go on asynchronously).
    async fn handle(&self, inbound: Inbound) -> InboundReply;
    /// Records an event id durably; `false` when it was seen before (a retry).
    async fn first_time(&self, event_id: &str) -> bool;
    /// An event the adapter refused before it could become a command (a slash
    /// command that is not valid UTF-8): the core audits it like its own
    /// refusals. `reason` is worded for people; the input itself is not passed.
    async fn refused(&self, actor: &PlatformUser, place: &Place, reason: &str) {
        let _ = (actor, place, reason);
    }
}

/// The port every platform adapter implements for output.
#[async_trait::async_trait]
pub trait ChatAdapter: Send + Sync {
    fn platform(&self) -> Platform;
    /// Post a new message (in `place.thread` when set); returns a reference for
    /// later edits and thread replies.
    async fn post(&self, msg: &Outbound) -> Result<MessageRef, ChatError>;
    /// Replace the content of a message posted earlier.
    async fn edit(&self, target: &MessageRef, msg: &Outbound) -> Result<(), ChatError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn place_key_is_platform_and_channel() {
        let mut p = Place::new(Platform::Slack, "C0123");
        p.thread = Some("1.2".into());
        assert_eq!(
            p.key(),
            "slack:C0123",
            "threads do not change the channel key"
        );
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
            direct: false,
            files: Vec::new(),
        };
        let s = serde_json::to_string(&i).unwrap();
        assert_eq!(serde_json::from_str::<Inbound>(&s).unwrap(), i);
    }
}
