//! Plain-text shapes shared by the CLI and the adapters' fallbacks.

use crate::clock::{format_duration_ms, format_ms};
use crate::store::{Approval, Run};
use crate::types::RunState;

/// The grammar, for `help`.
pub fn help_text() -> String {
    "ExecGov commands:\n\
     \x20 run <script> [key=value ...]   ask for a run (quote values with spaces: note=\"two words\")\n\
     \x20 list                           the scripts\n\
     \x20 help <script>                  a script's parameters\n\
     \x20 explain <script> [key=value]   who may run it here, and who must approve, without running it\n\
     \x20 status <run-id>                where a run stands\n\
     \x20 cancel <run-id>                stop a run that has not finished\n\
     \x20 approve <run-id>               approve a run waiting for you\n\
     \x20 deny <run-id> [reason]         deny it"
        .to_string()
}

/// `key=value` pairs of a stored run, as typed.
pub fn stored_args_text(run: &Run) -> String {
    match &run.args {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                format!("{k}={}", crate::command::quote_if_needed(&v))
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// Where a run was asked, for people: `slack:C0123`, `cli:local`.
pub fn place_text(run: &Run) -> String {
    let p = &run.place;
    let platform = p.get("platform").and_then(|v| v.as_str()).unwrap_or("?");
    let channel = p.get("channel").and_then(|v| v.as_str()).unwrap_or("?");
    format!("{platform}:{channel}")
}

/// A run's state, result and tail as text (CLI `show`, `status`, `run --wait`).
pub fn run_summary(run: &Run, approvals: &[Approval], link: Option<&str>) -> String {
    let mut out = format!("run {} {} {}\n", run.id, run.script, stored_args_text(run));
    out.push_str(&format!("  state:      {}", run.state));
    if let Some(pct) = run.progress_pct.filter(|_| run.state == RunState::Running) {
        out.push_str(&format!(
            " ({pct}%{})",
            run.progress_text
                .as_deref()
                .map(|t| format!(" {t}"))
                .unwrap_or_default()
        ));
    }
    out.push('\n');
    if let Some(reason) = &run.reason {
        out.push_str(&format!("  reason:     {reason}\n"));
    }
    out.push_str(&format!(
        "  requested:  {} by {} at {}\n",
        format_ms(run.created_at),
        run.requester,
        place_text(run)
    ));
    if run.quorum > 0 {
        let approves = approvals.iter().filter(|a| a.approve).count();
        out.push_str(&format!(
            "  approval:   {approves} of {} needed",
            run.quorum
        ));
        if let Some(exp) = run
            .expires_at
            .filter(|_| run.state == RunState::AwaitingApproval)
        {
            out.push_str(&format!(", expires {}", format_ms(exp)));
        }
        out.push('\n');
        for a in approvals {
            out.push_str(&format!(
                "              {}\n",
                crate::chat::views::decision_text(a)
            ));
        }
    }
    if let (Some(s), Some(f)) = (run.started_at, run.finished_at) {
        out.push_str(&format!("  duration:   {}\n", format_duration_ms(f - s)));
    }
    if let Some(code) = run.exit_code {
        out.push_str(&format!("  exit code:  {code}\n"));
    }
    if let Some(err) = &run.error {
        out.push_str(&format!("  error:      {err}\n"));
    }
    if run.log_dropped > 0 {
        out.push_str(&format!(
            "  log:        capped; {} dropped\n",
            bytesize::ByteSize(run.log_dropped as u64).display().iec()
        ));
    }
    if let Some(result) = &run.result {
        out.push_str(&format!("  result:     {result}\n"));
    }
    if let Some(link) = link {
        out.push_str(&format!("  audit:      {link}\n"));
    }
    if let Some(tail) = run.output_tail.as_deref().filter(|t| !t.trim().is_empty()) {
        out.push_str("  output (tail):\n");
        for line in tail.trim_end().lines() {
            out.push_str(&format!("    {line}\n"));
        }
    }
    out.trim_end().to_string()
}
