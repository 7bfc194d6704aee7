//! The core's messages laid out for Matrix: a plain `body` and an HTML
//! `formatted_body` saying the same, plus who to mention. Pure: no I/O.

use execgov_chat::{ApprovalView, Message, RunView, status_line};
use serde_json::{Value, json};

/// Output and results longer than this are cut to their end (an event is at most 64 KiB).
const MAX_BLOCK: usize = 6000;

/// The custom content field that names the run an approval request is for,
/// so a reaction can be traced back to its run by fetching the event.
pub(crate) const RUN_ID_FIELD: &str = "org.execgov.run_id";

/// A message's content, before any relation (thread, edit) is added.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rendered {
    pub body: String,
    pub html: String,
    /// Users to notify (`m.mentions.user_ids`).
    pub mentions: Vec<String>,
    /// Set on approval requests: the run the request is for.
    pub run_id: Option<String>,
}

impl Rendered {
    /// `m.room.message` content: an `m.notice` (bots answer with notices, so
    /// other bots do not answer back) with HTML and mentions.
    pub(crate) fn content(&self) -> Value {
        let mut c = json!({
            "msgtype": "m.notice",
            "body": self.body,
            "format": "org.matrix.custom.html",
            "formatted_body": self.html,
            "m.mentions": { "user_ids": self.mentions },
        });
        if let Some(id) = &self.run_id {
            c[RUN_ID_FIELD] = json!(id);
        }
        c
    }
}

pub(crate) fn render(msg: &Message) -> Rendered {
    match msg {
        Message::Text { text } => text_message(text),
        Message::RunStatus { run } => status(run),
        Message::RunResult { run } => result(run),
        Message::ApprovalRequest { approval } => approval_request(approval),
    }
}

/// A line of the core's text: backtick spans become `<code>`, newlines `<br>`.
pub(crate) fn text_message(text: &str) -> Rendered {
    Rendered {
        body: text.to_string(),
        html: inline_html(text),
        mentions: Vec::new(),
        run_id: None,
    }
}

fn icon(run: &RunView) -> &'static str {
    match run.state.as_str() {
        "succeeded" => "✅",
        "failed" | "refused" | "rejected" => "❌",
        "timed_out" => "⏱️",
        "cancelled" => "🚫",
        "interrupted" | "expired" => "⚠️",
        "running" => "▶️",
        _ => "⏳",
    }
}

fn status(run: &RunView) -> Rendered {
    let line = status_line(run);
    Rendered {
        body: format!("{} {line}", icon(run)),
        html: format!("{} {}", icon(run), inline_html(&line)),
        mentions: Vec::new(),
        run_id: None,
    }
}

fn result(run: &RunView) -> Rendered {
    let line = status_line(run);
    let mut body = format!("{} {line}", icon(run));
    let mut html = format!("<p>{} {}</p>", icon(run), inline_html(&line));
    let mentions: Vec<String> = run.mentions.iter().map(|u| u.id.clone()).collect();
    if !mentions.is_empty() {
        body.push_str(&format!("\ncc {}", mentions.join(" ")));
        let pills: Vec<String> = mentions.iter().map(|m| pill(m)).collect();
        html.push_str(&format!("<p>cc {}</p>", pills.join(" ")));
    }
    if let Some(tail) = run.output_tail.as_deref().filter(|t| !t.trim().is_empty()) {
        let tail = last_chars(tail.trim_end(), MAX_BLOCK);
        body.push_str(&format!("\n{tail}"));
        html.push_str(&format!("<pre><code>{}</code></pre>", escape(tail)));
    }
    if let Some(view) = run
        .result
        .as_ref()
        .and_then(execgov_chat::result::ResultView::with_table)
    {
        let (text, html_table) = result_table(&view);
        body.push_str(&format!("\nresult:\n{text}"));
        html.push_str(&html_table);
    } else if let Some(result) = &run.result {
        let pretty = serde_json::to_string_pretty(result).unwrap_or_default();
        let pretty = last_chars(&pretty, MAX_BLOCK);
        body.push_str(&format!("\nresult: {pretty}"));
        html.push_str(&format!(
            "<p>Result:</p><pre><code class=\"language-json\">{}</code></pre>",
            escape(pretty)
        ));
    }
    if !run.files.is_empty() {
        let names: Vec<&str> = run.files.iter().map(|f| f.name.as_str()).collect();
        body.push_str(&format!("\nfiles: {}", names.join(", ")));
    }
    body.push_str(&format!("\naudit: {}", run.audit_link));
    html.push_str(&format!(
        "<p><a href=\"{}\">Audit record of run {}</a></p>",
        escape(&run.audit_link),
        escape(&run.run_id)
    ));
    Rendered {
        body,
        html,
        mentions,
        run_id: None,
    }
}

/// A result with a table: the facts, then an HTML table (at most
/// [`CHAT_ROWS`] rows, with a note for the rest) and, for clients that show no
/// HTML, the same as aligned text.
///
/// [`CHAT_ROWS`]: execgov_chat::result::CHAT_ROWS
fn result_table(view: &execgov_chat::result::ResultView) -> (String, String) {
    let mut text = String::new();
    let mut html = String::from("<p>Result:</p>");
    if !view.fields.is_empty() {
        html.push_str("<ul>");
        for (k, v) in &view.fields {
            text.push_str(&format!("{k}: {v}\n"));
            html.push_str(&format!("<li><b>{}</b>: {}</li>", escape(k), escape(v)));
        }
        html.push_str("</ul>");
    }
    if let Some(table) = &view.table {
        let (aligned, left_out) = table.aligned(execgov_chat::result::CHAT_ROWS);
        let shown = table.rows.len() - left_out;
        text.push_str(&aligned);
        html.push_str("<table><thead><tr>");
        for c in &table.columns {
            html.push_str(&format!("<th>{}</th>", escape(c)));
        }
        html.push_str("</tr></thead><tbody>");
        for row in &table.rows[..shown] {
            html.push_str("<tr>");
            for cell in row {
                html.push_str(&format!("<td>{}</td>", escape(cell)));
            }
            html.push_str("</tr>");
        }
        html.push_str("</tbody></table>");
        if let Some(note) = table.left_out_note(left_out) {
            text.push_str(&format!("\n{note}"));
            html.push_str(&format!("<p><em>{}</em></p>", escape(&note)));
        }
    }
    (text.trim_end().to_string(), html)
}

fn approval_request(a: &ApprovalView) -> Rendered {
    let run = &a.run;
    let who = match &run.requester_account {
        Some(acc) => format!("{} ({})", run.requester, acc.id),
        None => run.requester.clone(),
    };
    let who_html = match &run.requester_account {
        Some(acc) => format!("{} ({})", escape(&run.requester), pill(&acc.id)),
        None => escape(&run.requester),
    };
    let command = format!("{} {}", run.script, run.args).trim().to_string();
    let head = if a.open {
        format!("🔐 Approval needed for run {}", run.run_id)
    } else {
        format!(
            "🔐 Approval request for run {} ({})",
            run.run_id,
            run.state.replace('_', " ")
        )
    };
    let mut body = vec![
        head.clone(),
        format!("Script: {command}"),
        format!("Requested by: {who}"),
        format!("Asked in: {}", run.asked_in),
        format!("Needs: {}", a.needed),
        format!("Expires: {}", a.expires),
    ];
    let mut html = vec![
        format!("<b>{}</b>", escape(&head)),
        format!("Script: <code>{}</code>", escape(&command)),
        format!("Requested by: {who_html}"),
        format!("Asked in: {}", escape(&run.asked_in)),
        format!("Needs: {}", escape(&a.needed)),
        format!("Expires: {}", escape(&a.expires)),
    ];
    if !run.decisions.is_empty() {
        body.push(format!("Decisions: {}", run.decisions.join("; ")));
        html.push(format!("Decisions: {}", escape(&run.decisions.join("; "))));
    }
    if let Some(reason) = run.reason.as_deref().filter(|_| !a.open) {
        body.push(format!("Reason: {reason}"));
        html.push(format!("Reason: {}", escape(reason)));
    }
    if let Some(p) = &a.preview {
        let (text, preview_html) = preview(p);
        body.push(text);
        html.push(preview_html);
    }
    if a.open && a.step_up {
        let id = &run.run_id;
        body.push(format!(
            "Critical: each approval needs your authenticator code. Approve by sending `!approve {id} CODE` to me in a direct message (never here); deny with ❌ or `!deny {id} reason`"
        ));
        html.push(format!(
            "<b>Critical:</b> each approval needs your authenticator code. Approve by sending <code>!approve {id} CODE</code> to me in a direct message (never here); deny with ❌ or <code>!deny {id} reason</code>",
            id = escape(id)
        ));
    } else if a.open {
        let id = &run.run_id;
        body.push(format!(
            "React ✅ to approve or ❌ to deny, or reply `!approve {id}` / `!deny {id} reason`"
        ));
        html.push(format!(
            "React ✅ to approve or ❌ to deny, or reply <code>!approve {id}</code> / <code>!deny {id} reason</code>",
            id = escape(id)
        ));
    }
    body.push(format!("audit: {}", run.audit_link));
    html.push(format!(
        "<a href=\"{}\">Audit record</a>",
        escape(&run.audit_link)
    ));
    Rendered {
        body: body.join("\n"),
        html: html.join("<br>"),
        mentions: Vec::new(),
        run_id: Some(run.run_id.clone()),
    }
}

/// A preview run on its approval request: its outcome, the end of its
/// output, its result (a table as HTML with a plain fallback), a link.
fn preview(p: &execgov_chat::PreviewView) -> (String, String) {
    let run = &p.run;
    let headline = p.headline();
    let mut text = headline.clone();
    let mut html = format!("<p><b>{}</b></p>", inline_html(&headline));
    if let Some(reason) = run.reason.as_deref().filter(|r| !r.trim().is_empty()) {
        text.push_str(&format!("\nReason: {reason}"));
        html.push_str(&format!("<p>Reason: {}</p>", escape(reason)));
    }
    if let Some(tail) = run.output_tail.as_deref().filter(|t| !t.trim().is_empty()) {
        let tail = last_chars(tail.trim_end(), MAX_BLOCK);
        text.push_str(&format!("\n{tail}"));
        html.push_str(&format!("<pre><code>{}</code></pre>", escape(tail)));
    }
    if let Some(view) = run
        .result
        .as_ref()
        .and_then(execgov_chat::result::ResultView::with_table)
    {
        let (table_text, table_html) = result_table(&view);
        text.push_str(&format!("\nresult:\n{table_text}"));
        html.push_str(&table_html);
    } else if let Some(result) = &run.result {
        let pretty = serde_json::to_string_pretty(result).unwrap_or_default();
        let pretty = last_chars(&pretty, MAX_BLOCK);
        text.push_str(&format!("\nresult: {pretty}"));
        html.push_str(&format!("<pre><code>{}</code></pre>", escape(pretty)));
    }
    html.push_str(&format!(
        "<p><a href=\"{}\">Preview run {}</a></p>",
        escape(&run.audit_link),
        escape(&run.run_id)
    ));
    (text, html)
}

/// A user pill: a `matrix.to` link that clients show as the user's name.
fn pill(user_id: &str) -> String {
    format!(
        "<a href=\"https://matrix.to/#/{0}\">{0}</a>",
        escape(user_id)
    )
}

pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Escaped text with `code` spans and line breaks.
fn inline_html(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in text.split('`').enumerate() {
        let part = escape(part);
        if i % 2 == 1 {
            out.push_str(&format!("<code>{part}</code>"));
        } else {
            out.push_str(&part);
        }
    }
    // An unmatched backtick leaves an odd split; keep it as text.
    if text.matches('`').count() % 2 == 1 {
        out = escape(text);
    }
    out.replace('\n', "<br>")
}

/// The last `max` bytes of `s`, cut on a character boundary.
fn last_chars(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use execgov_chat::{OutboundFile, Platform, PlatformUser};

    fn run() -> RunView {
        RunView {
            run_id: "12".into(),
            script: "report-export".into(),
            args: "month=2026-10".into(),
            requester: "alice".into(),
            requester_account: Some(PlatformUser {
                platform: Platform::Matrix,
                id: "@alice:hs".into(),
            }),
            asked_in: "matrix:!room:hs".into(),
            state: "succeeded".into(),
            finished: true,
            progress_pct: None,
            progress_text: None,
            exit_code: Some(0),
            duration_ms: Some(1200),
            reason: None,
            output_tail: Some("rows: 3\n<done> & ok\n".into()),
            full_output: None,
            result: Some(json!({"rows": 3})),
            audit_link: "http://127.0.0.1:8080/runs/12?t=abc&x=1".into(),
            files: vec![OutboundFile {
                name: "report.csv".into(),
                path: "/tmp/report.csv".into(),
            }],
            decisions: vec![],
            waiting_for: None,
            mentions: vec![PlatformUser {
                platform: Platform::Matrix,
                id: "@bob:hs".into(),
            }],
            flag: None,
        }
    }

    #[test]
    fn a_table_result_is_an_html_table_with_a_plain_fallback() {
        let mut run = run();
        let rows: Vec<serde_json::Value> = (0..25).map(|i| json!([format!("r<{i}>"), i])).collect();
        run.result = Some(json!({"total": 25, "table": {"columns": ["name", "n"], "rows": rows}}));
        let r = result(&run);
        assert!(
            r.html.contains("<table><thead><tr><th>name</th><th>n</th></tr></thead><tbody><tr><td>r&lt;0&gt;</td><td>0</td></tr>"),
            "an escaped HTML table: {}",
            r.html
        );
        assert!(r.html.contains("<li><b>total</b>: 25</li>"), "{}", r.html);
        assert!(
            !r.html.contains("r&lt;20&gt;"),
            "at most 20 rows: {}",
            r.html
        );
        assert!(
            r.body
                .contains("result:\ntotal: 25\nname   n\n-----  --\nr<0>   0\n"),
            "the plain fallback is aligned text: {}",
            r.body
        );
        assert!(r.body.contains("Showing 20 of 25 rows"), "{}", r.body);
    }

    #[test]
    fn result_has_outcome_output_result_audit_and_mentions() {
        let r = render(&Message::RunResult { run: run() });
        assert!(
            r.body.contains("succeeded (exit 0, 1.2 s)"),
            "outcome in the body: {}",
            r.body
        );
        assert!(
            r.body
                .contains("audit: http://127.0.0.1:8080/runs/12?t=abc&x=1")
        );
        assert!(
            r.html
                .contains("<pre><code>rows: 3\n&lt;done&gt; &amp; ok</code></pre>"),
            "output tail escaped in a code block: {}",
            r.html
        );
        assert!(r.html.contains("language-json"), "structured result shown");
        assert!(
            r.html
                .contains("href=\"http://127.0.0.1:8080/runs/12?t=abc&amp;x=1\"")
        );
        assert_eq!(r.mentions, vec!["@bob:hs".to_string()], "mentions notify");
        assert!(r.html.contains("https://matrix.to/#/@bob:hs"));
    }

    #[test]
    fn approval_request_says_how_to_decide_while_open() {
        let mut view = ApprovalView {
            run: RunView {
                state: "awaiting_approval".into(),
                finished: false,
                ..run()
            },
            needed: "1 more approval(s) from bob, dave".into(),
            expires: "2026-11-24 11:00:00 UTC".into(),
            open: true,
            step_up: false,
            preview: None,
        };
        let r = render(&Message::ApprovalRequest {
            approval: view.clone(),
        });
        assert_eq!(r.run_id.as_deref(), Some("12"), "the request names its run");
        assert!(r.body.contains("Requested by: alice (@alice:hs)"));
        assert!(r.body.contains("report-export month=2026-10"));
        assert!(r.body.contains(
            "React ✅ to approve or ❌ to deny, or reply `!approve 12` / `!deny 12 reason`"
        ));
        assert_eq!(r.content()[RUN_ID_FIELD], "12");
        view.open = false;
        view.run.state = "rejected".into();
        let closed = render(&Message::ApprovalRequest { approval: view });
        assert!(
            !closed.body.contains("React"),
            "no instructions once decided"
        );
        assert!(closed.body.contains("(rejected)"));
    }

    #[test]
    fn text_code_spans_and_escaping() {
        let r = text_message("use `run <script>`\nthen <b>");
        assert_eq!(
            r.html,
            "use <code>run &lt;script&gt;</code><br>then &lt;b&gt;"
        );
        assert_eq!(text_message("a ` b").html, "a ` b");
    }

    #[test]
    fn long_output_keeps_its_end() {
        let mut r = run();
        r.output_tail = Some(format!("{}END", "é".repeat(5000)));
        let out = render(&Message::RunResult { run: r });
        assert!(out.body.contains("END"));
        assert!(out.body.len() < 8000);
    }
}
