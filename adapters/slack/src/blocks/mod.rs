//! Block Kit rendering: pure functions from the port's [`Message`] to the JSON
//! that `chat.postMessage` / `chat.update` take. No I/O here, so every layout is
//! tested from fixtures.
//!
//! Slack's limits that shape this code: a text object holds at most 3,000
//! characters, a section field 2,000, a section at most 10 fields; `&`, `<`, `>`
//! in any mrkdwn text must be escaped, or Slack reads them as markup.

mod approval;
mod run;
#[cfg(test)]
mod tests;

pub(crate) use approval::{
    APPROVE_CALLBACK_ID, CODE_INPUT, DENY_CALLBACK_ID, DialogMetadata, REASON_INPUT, approve_modal,
    deny_modal,
};
use execgov_chat::{Message, Platform, RunView};
use serde_json::{Value, json};

/// Action ids of the approval buttons, matched by the interactions endpoint.
pub(crate) const APPROVE_ACTION: &str = "execgov_approve";
/// Approve on a critical run: opens the dialog that asks for the code.
pub(crate) const APPROVE_CODE_ACTION: &str = "execgov_approve_code";
pub(crate) const DENY_ACTION: &str = "execgov_deny";

/// Most characters in one text object.
pub(crate) const TEXT_LIMIT: usize = 3000;
/// Most characters in one section field.
pub(crate) const FIELD_LIMIT: usize = 2000;
/// Most fields in one section.
pub(crate) const MAX_FIELDS: usize = 10;
/// Slack cuts a message's top-level `text` beyond this.
const MESSAGE_TEXT_LIMIT: usize = 40_000;

/// A message laid out for Slack.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rendered {
    /// The notification / fallback text (escaped mrkdwn).
    pub text: String,
    /// Block Kit blocks; `None` for plain text messages.
    pub blocks: Option<Vec<Value>>,
    /// What to upload as `output.txt` when the blocks show only the output's
    /// end: the whole stored log where the core sent it, else the tail.
    pub full_output: Option<String>,
}

/// Lays out one message.
pub(crate) fn render(message: &Message) -> Rendered {
    let text = clip(&escape(&message.fallback_text()), MESSAGE_TEXT_LIMIT);
    match message {
        Message::Text { .. } => Rendered {
            text,
            blocks: None,
            full_output: None,
        },
        Message::RunStatus { run } => Rendered {
            text,
            blocks: Some(run::status_blocks(run)),
            full_output: None,
        },
        Message::RunResult { run } => {
            let (blocks, cut) = run::result_blocks(run);
            Rendered {
                text,
                blocks: Some(blocks),
                full_output: cut.then(|| {
                    run.full_output
                        .clone()
                        .or_else(|| run.output_tail.clone())
                        .unwrap_or_default()
                }),
            }
        }
        Message::ApprovalRequest { approval } => Rendered {
            text,
            blocks: Some(approval::approval_blocks(approval)),
            full_output: None,
        },
    }
}

/// The run a message is about, for logs.
pub(crate) fn run_id_of(message: &Message) -> Option<&str> {
    match message {
        Message::Text { .. } => None,
        Message::RunStatus { run } | Message::RunResult { run } => Some(&run.run_id),
        Message::ApprovalRequest { approval } => Some(&approval.run.run_id),
    }
}

/// Escapes the three characters Slack's mrkdwn reserves.
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Keeps the start of `s` within `max` characters, marking a cut with `…`.
pub(crate) fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    // Do not leave half an escape (`&am`) behind.
    if let Some(amp) = out.rfind('&')
        && !out[amp..].contains(';')
    {
        out.truncate(amp);
    }
    out.push('…');
    out
}

pub(crate) fn mrkdwn(text: &str) -> Value {
    json!({ "type": "mrkdwn", "text": clip(text, TEXT_LIMIT) })
}

pub(crate) fn plain(text: &str, max: usize) -> Value {
    json!({ "type": "plain_text", "text": clip(text, max), "emoji": true })
}

pub(crate) fn section(text: &str) -> Value {
    json!({ "type": "section", "text": mrkdwn(text) })
}

/// A section of `*title*\nvalue` fields (at most ten, each within its limit).
pub(crate) fn fields(pairs: &[(String, String)]) -> Value {
    let fields: Vec<Value> = pairs
        .iter()
        .take(MAX_FIELDS)
        .map(|(title, value)| {
            json!({ "type": "mrkdwn", "text": clip(&format!("*{title}*\n{value}"), FIELD_LIMIT) })
        })
        .collect();
    json!({ "type": "section", "fields": fields })
}

pub(crate) fn context(text: &str) -> Value {
    json!({ "type": "context", "elements": [mrkdwn(text)] })
}

/// `*Run 12* · `script args``.
pub(crate) fn run_title(run: &RunView) -> String {
    let cmdline = if run.args.trim().is_empty() {
        run.script.clone()
    } else {
        format!("{} {}", run.script, run.args)
    };
    format!(
        "*Run {}* · `{}`",
        escape(&run.run_id),
        escape(&cmdline).replace('`', "'")
    )
}

/// A mention where the requester has a Slack account, else their name.
pub(crate) fn requester(run: &RunView) -> String {
    match &run.requester_account {
        Some(acc) if acc.platform == Platform::Slack => format!("<@{}>", escape(&acc.id)),
        _ => escape(&run.requester),
    }
}

/// `slack:C0123` as a channel link, anything else as written.
pub(crate) fn place_name(asked_in: &str) -> String {
    match asked_in.strip_prefix("slack:") {
        Some(channel) if !channel.is_empty() && !channel.contains(['<', '>', '|', ' ']) => {
            format!("<#{channel}>")
        }
        _ => escape(asked_in),
    }
}

/// `<link|Audit trail>` as a context block.
pub(crate) fn audit_context(run: &RunView) -> Value {
    let link = run.audit_link.replace('|', "%7C");
    context(&format!(
        "<{}|Audit trail> · run {}",
        escape(&link),
        escape(&run.run_id)
    ))
}

/// An emoji for each run state of the lifecycle.
pub(crate) fn state_emoji(state: &str) -> &'static str {
    match state {
        "requested" => ":inbox_tray:",
        "awaiting_approval" => ":lock:",
        "queued" => ":hourglass_flowing_sand:",
        "running" => ":arrows_counterclockwise:",
        "succeeded" => ":white_check_mark:",
        "failed" => ":x:",
        "timed_out" => ":alarm_clock:",
        "cancelled" => ":no_entry_sign:",
        "refused" | "rejected" => ":no_entry:",
        "expired" => ":hourglass:",
        "interrupted" => ":warning:",
        _ => ":grey_question:",
    }
}

/// `timed_out` → `Timed out`.
pub(crate) fn state_label(state: &str) -> String {
    let words = escape(&state.replace('_', " "));
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
