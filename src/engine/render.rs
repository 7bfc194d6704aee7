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
     \x20 deny <run-id> [reason]         deny it\n\
     \x20 run! <script> [key=value ...] reason=\"…\"   break glass: start now, approvers review after\n\
     \x20 review <run-id> [note]         review a break-glass run"
        .to_string()
}

/// `key=value` pairs of a stored run, as typed.
pub fn stored_args_text(run: &Run) -> String {
    super::request::args_text(&run.args)
}

/// An argv shown with each element quoted where needed.
pub fn argv_text(argv: &[String]) -> String {
    super::request::argv_text(argv)
}

/// The mark a break-glass run carries on every surface until it is reviewed:
/// `break-glass (not reviewed): disk full` / `break-glass, reviewed by bob`.
pub fn break_glass_text(run: &Run) -> Option<String> {
    let reason = run.break_glass.as_deref()?;
    Some(match &run.reviewed_by {
        None => format!(
            "BREAK-GLASS, not reviewed yet (`review {}`): {reason}",
            run.id
        ),
        Some(by) => format!("break-glass, reviewed by {by}: {reason}"),
    })
}

/// What a queued run waits for, when it needs a runner with tags: "waiting
/// for a runner with tags db-host, eu".
pub fn waiting_text(run: &Run) -> Option<String> {
    (run.state == RunState::Queued && !run.runs_on.is_empty())
        .then(|| format!("waiting for a runner with tags {}", run.runs_on.join(", ")))
}

/// `bob approved at 2026-11-24 10:02:00 UTC` / `dave denied at …: reason`.
pub fn decision_text(a: &Approval) -> String {
    let what = if a.approve { "approved" } else { "denied" };
    let why = a
        .reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    format!("{} {what} at {}{why}", a.approver, format_ms(a.at))
}

/// Where a run was asked, for people: `slack:C0123`, `cli:local`.
pub fn place_text(run: &Run) -> String {
    run.place.key()
}

/// A run's state, result and tail as text (CLI `show`, `status`, `run --wait`).
/// `has_files`: the run has files, so a retention note about them is due.
pub fn run_summary(
    run: &Run,
    approvals: &[Approval],
    has_files: bool,
    link: Option<&str>,
) -> String {
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
    if let Some(waiting) = waiting_text(run) {
        out.push_str(&format!(" ({waiting})"));
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
            out.push_str(&format!("              {}\n", decision_text(a)));
        }
    }
    if let Some(rule) = &run.rule {
        out.push_str(&format!("  rule:       {rule}\n"));
    }
    if let Some(flag) = break_glass_text(run) {
        out.push_str(&format!("  {flag}\n"));
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
    if let Some(view) = run
        .result
        .as_ref()
        .and_then(execgov_chat::result::ResultView::with_table)
    {
        out.push_str("  result:\n");
        for (k, v) in &view.fields {
            out.push_str(&format!("    {k}: {v}\n"));
        }
        if let Some(table) = &view.table {
            for line in table.aligned(usize::MAX).0.lines() {
                out.push_str(&format!("    {line}\n"));
            }
        }
    } else if let Some(result) = &run.result {
        out.push_str(&format!("  result:     {result}\n"));
    }
    for note in crate::retention::notes(run, has_files) {
        out.push_str(&format!("  retention:  {note}\n"));
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
