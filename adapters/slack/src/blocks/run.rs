//! A run's status message and its result in the thread.

use super::{
    MAX_FIELDS, TEXT_LIMIT, audit_context, clip, escape, fields, mrkdwn, place_name, requester,
    run_title, section, state_emoji, state_label,
};
use execgov_chat::RunView;
use serde_json::Value;

/// Width of the text progress bar, in cells.
const BAR_CELLS: usize = 10;

/// The status message: what, who, where, the state and progress, the audit link.
pub(crate) fn status_blocks(run: &RunView) -> Vec<Value> {
    let mut blocks = vec![section(&format!(
        "{}\nAsked by {} in {}",
        run_title(run),
        requester(run),
        place_name(&run.asked_in)
    ))];
    let mut state = format!("{} *{}*", state_emoji(&run.state), state_label(&run.state));
    if !run.finished {
        if let Some(progress) = progress_line(run) {
            state.push('\n');
            state.push_str(&progress);
        }
        if let Some(waiting) = run.waiting_for.as_deref() {
            state.push_str(&format!("\nNeeds {}", escape(waiting)));
        }
    } else if let Some(summary) = exit_summary(run) {
        state.push_str(" · ");
        state.push_str(&summary);
    }
    blocks.push(section(&state));
    if let Some(reason) = run.reason.as_deref().filter(|r| !r.trim().is_empty()) {
        blocks.push(section(&format!("*Reason:* {}", escape(reason))));
    }
    if let Some(flag) = run.flag.as_deref() {
        blocks.push(section(&format!(":rotating_light: *{}*", escape(flag))));
    }
    blocks.push(audit_context(run));
    blocks
}

/// `▓▓▓▓░░░░░░ 40% Exporting rows`, or just the text when no percentage is known.
pub(crate) fn progress_line(run: &RunView) -> Option<String> {
    let text = run
        .progress_text
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(escape);
    match (run.progress_pct, text) {
        (None, None) => None,
        (None, Some(t)) => Some(t),
        (Some(pct), text) => {
            let pct = pct.min(100);
            let filled = usize::from(pct) * BAR_CELLS / 100;
            let mut line = format!(
                "{}{} {pct}%",
                "▓".repeat(filled),
                "░".repeat(BAR_CELLS - filled)
            );
            if let Some(t) = text {
                line.push(' ');
                line.push_str(&t);
            }
            Some(line)
        }
    }
}

/// `exit 0 · 1.2 s`.
fn exit_summary(run: &RunView) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(code) = run.exit_code {
        parts.push(format!("exit {code}"));
    }
    if let Some(ms) = run.duration_ms {
        parts.push(duration(ms));
    }
    (!parts.is_empty()).then(|| parts.join(" · "))
}

/// `850 ms`, `1.2 s`, `3 min 5 s`, `1 h 2 min`.
pub(crate) fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{} min {} s", ms / 60_000, ms % 60_000 / 1000),
        _ => format!("{} h {} min", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

/// The result in the run's thread. The flag says the output had to be cut, so
/// the caller uploads it whole as a file.
pub(crate) fn result_blocks(run: &RunView) -> (Vec<Value>, bool) {
    let mut blocks = vec![section(&format!(
        "{} {} — *{}*",
        state_emoji(&run.state),
        run_title(run),
        state_label(&run.state)
    ))];
    let mut facts = vec![(
        "Outcome".to_string(),
        format!("{} {}", state_emoji(&run.state), state_label(&run.state)),
    )];
    if let Some(ms) = run.duration_ms {
        facts.push(("Duration".to_string(), duration(ms)));
    }
    if let Some(code) = run.exit_code {
        facts.push(("Exit code".to_string(), code.to_string()));
    }
    blocks.push(fields(&facts));
    if let Some(reason) = run.reason.as_deref().filter(|r| !r.trim().is_empty()) {
        blocks.push(section(&format!("*Reason:* {}", escape(reason))));
    }
    let mut cut = false;
    if let Some(tail) = run.output_tail.as_deref().filter(|t| !t.trim().is_empty()) {
        let whole = run
            .full_output
            .as_deref()
            .map(|o| o.trim_end().chars().count());
        let (text, was_cut) = output_section_of(tail, whole);
        blocks.push(section(&text));
        cut = was_cut;
    }
    if let Some(result) = run.result.as_ref().filter(|r| !r.is_null()) {
        match execgov_chat::result::ResultView::with_table(result) {
            Some(view) => blocks.extend(table_blocks(&view)),
            None => blocks.push(result_block(result)),
        }
    }
    blocks.push(audit_context(run));
    (blocks, cut)
}

/// A preview run on its approval request: its outcome, the end of its output
/// and its result (a table as on a result), and a link to it.
pub(crate) fn preview_blocks(p: &execgov_chat::PreviewView) -> Vec<Value> {
    let run = &p.run;
    let emoji = if run.finished {
        state_emoji(&run.state)
    } else {
        ":hourglass_flowing_sand:"
    };
    let mut blocks = vec![section(&format!("{emoji} *{}*", escape(&p.headline())))];
    if let Some(reason) = run.reason.as_deref().filter(|r| !r.trim().is_empty()) {
        blocks.push(section(&format!("*Reason:* {}", escape(reason))));
    }
    if let Some(tail) = run.output_tail.as_deref().filter(|t| !t.trim().is_empty()) {
        blocks.push(section(&output_section_of(tail, None).0));
    }
    if let Some(result) = run.result.as_ref().filter(|r| !r.is_null()) {
        match execgov_chat::result::ResultView::with_table(result) {
            Some(view) => blocks.extend(table_blocks(&view)),
            None => blocks.push(result_block(result)),
        }
    }
    blocks.push(audit_context(run));
    blocks
}

/// Opening and closing fences of a code block.
const FENCE_OPEN: &str = "```\n";
const FENCE_CLOSE: &str = "\n```";

/// The output tail in a code block within [`TEXT_LIMIT`]: the end is kept, and a
/// note says when the start was cut.
#[cfg(test)]
pub(crate) fn output_section(tail: &str) -> (String, bool) {
    output_section_of(tail, None)
}

/// [`output_section`], where `whole` is the length in characters of the whole
/// stored log when it goes to `output.txt` (`None`: only the tail does), so
/// the note says truthfully what the file holds.
pub(crate) fn output_section_of(tail: &str, whole: Option<usize>) -> (String, bool) {
    let tail = tail.trim_end();
    let fences = FENCE_OPEN.chars().count() + FENCE_CLOSE.chars().count();
    let escaped = code_escape(tail);
    if escaped.chars().count() + fences <= TEXT_LIMIT {
        return (format!("{FENCE_OPEN}{escaped}{FENCE_CLOSE}"), false);
    }
    let tail_chars = tail.chars().count();
    let note = |kept: usize| cut_note(kept, tail_chars, whole);
    // The note's length depends on how much is kept; reserve for the longest note.
    let note_room = note(tail_chars).chars().count() + 1;
    let (kept, kept_chars) = keep_end(tail, TEXT_LIMIT - fences - note_room);
    (
        format!("{}\n{FENCE_OPEN}{kept}{FENCE_CLOSE}", note(kept_chars)),
        true,
    )
}

/// What the cut output's note says: how much is shown, and what `output.txt`
/// holds — the whole log when the core sent it, else only the tail.
fn cut_note(kept: usize, tail: usize, whole: Option<usize>) -> String {
    match whole {
        Some(total) => format!(
            "_Output cut: the last {kept} of {} characters; the whole output is in output.txt._",
            total.max(tail)
        ),
        None => format!(
            "_Output cut: the last {kept} characters; output.txt holds the last {tail}, the \
             whole log is behind the audit link._"
        ),
    }
}

/// The longest end of `text` whose escaped form fits in `budget` characters,
/// cut on a character boundary; with the number of original characters kept.
fn keep_end(text: &str, budget: usize) -> (String, usize) {
    let mut used = 0;
    let mut pieces = Vec::new();
    for c in text.chars().rev() {
        let piece = code_escape_char(c);
        let len = piece.chars().count();
        if used + len > budget {
            break;
        }
        used += len;
        pieces.push(piece);
    }
    let kept = pieces.len();
    pieces.reverse();
    (pieces.concat(), kept)
}

/// Escapes text for a code block: mrkdwn's reserved characters, and backticks
/// so that the output cannot close the block early.
fn code_escape(text: &str) -> String {
    text.chars().map(code_escape_char).collect()
}

fn code_escape_char(c: char) -> String {
    match c {
        '&' => "&amp;".into(),
        '<' => "&lt;".into(),
        '>' => "&gt;".into(),
        // A zero-width space after each backtick: three in a row never form a fence.
        '`' => "`\u{200B}".into(),
        c => c.to_string(),
    }
}

/// A result with a table: its facts as fields (at most [`MAX_FIELDS`]), then the
/// table as aligned text in a code block, at most [`CHAT_ROWS`] rows and within
/// [`TEXT_LIMIT`]; a note says how many rows were left out.
///
/// [`CHAT_ROWS`]: execgov_chat::result::CHAT_ROWS
fn table_blocks(view: &execgov_chat::result::ResultView) -> Vec<Value> {
    let mut blocks = Vec::new();
    if !view.fields.is_empty() {
        let pairs: Vec<(String, String)> = view
            .fields
            .iter()
            .take(MAX_FIELDS)
            .map(|(k, v)| (escape(k), escape(v)))
            .collect();
        let mut block = fields(&pairs);
        block["text"] = mrkdwn("*Result*");
        blocks.push(block);
    }
    let Some(table) = &view.table else {
        return blocks;
    };
    let heading = if view.fields.is_empty() {
        "*Result*\n"
    } else {
        ""
    };
    let mut rows = execgov_chat::result::CHAT_ROWS;
    loop {
        let (text, left_out) = table.aligned(rows);
        let note = table
            .left_out_note(left_out)
            .map(|n| format!("\n_{n}_"))
            .unwrap_or_default();
        let body = format!(
            "{heading}{FENCE_OPEN}{}{FENCE_CLOSE}{note}",
            code_escape(&text)
        );
        if body.chars().count() <= TEXT_LIMIT || rows == 0 {
            blocks.push(section(&clip(&body, TEXT_LIMIT)));
            return blocks;
        }
        rows -= 1;
    }
}

/// The script's structured result: an object of plain values as fields, anything
/// else as pretty JSON in a code block.
fn result_block(result: &Value) -> Value {
    if let Value::Object(map) = result
        && !map.is_empty()
        && map.len() <= MAX_FIELDS
        && map.values().all(|v| !v.is_object() && !v.is_array())
    {
        let pairs: Vec<(String, String)> = map
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    Value::String(s) => escape(s),
                    other => escape(&other.to_string()),
                };
                (escape(k), value)
            })
            .collect();
        let mut block = fields(&pairs);
        block["text"] = mrkdwn("*Result*");
        return block;
    }
    let pretty = serde_json::to_string_pretty(result).unwrap_or_else(|_| result.to_string());
    let room = TEXT_LIMIT - "*Result*\n".len() - FENCE_OPEN.len() - FENCE_CLOSE.len();
    section(&format!(
        "*Result*\n{FENCE_OPEN}{}{FENCE_CLOSE}",
        clip(&code_escape(&pretty), room)
    ))
}
