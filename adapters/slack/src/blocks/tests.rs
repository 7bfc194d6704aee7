//! Block Kit layouts from JSON fixtures: buttons, confirm dialogs, Slack's
//! per-text limit, and no buttons once an approval is closed.

use super::run::{duration, output_section, progress_line};
use super::*;
use execgov_chat::{ApprovalView, Message, RunView};

fn running() -> RunView {
    serde_json::from_str(include_str!("../../tests/fixtures/run_running.json")).unwrap()
}

fn succeeded() -> RunView {
    serde_json::from_str(include_str!("../../tests/fixtures/run_succeeded.json")).unwrap()
}

fn approval() -> ApprovalView {
    serde_json::from_str(include_str!("../../tests/fixtures/approval_open.json")).unwrap()
}

/// Every `text` string anywhere in the blocks.
fn texts(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("text", Value::String(s)) => out.push(s.clone()),
                    _ => texts(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| texts(i, out)),
        _ => {}
    }
}

fn all_texts(blocks: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    blocks.iter().for_each(|b| texts(b, &mut out));
    out
}

fn assert_within_limits(blocks: &[Value]) {
    for t in all_texts(blocks) {
        assert!(
            t.chars().count() <= TEXT_LIMIT,
            "a text object has {} chars, over Slack's 3,000",
            t.chars().count()
        );
    }
    assert!(blocks.len() <= 50, "Slack takes at most 50 blocks");
}

#[test]
fn status_shows_title_requester_progress_and_audit_link() {
    let r = render(&Message::RunStatus { run: running() });
    let blocks = r.blocks.expect("status messages have blocks");
    let all = all_texts(&blocks).join("\n");
    assert!(
        all.contains("*Run 12* · `report-export month=2026-10`"),
        "{all}"
    );
    assert!(
        all.contains("<@U024BE7LH>"),
        "a Slack requester is mentioned: {all}"
    );
    assert!(
        all.contains("<#C0123REPORTS>"),
        "the channel is linked: {all}"
    );
    assert!(all.contains("▓▓▓▓░░░░░░ 40% Exporting rows"), "{all}");
    assert!(all.contains(":arrows_counterclockwise: *Running*"), "{all}");
    assert!(
        all.contains("<http://127.0.0.1:8080/runs/12?t=abc|Audit trail>"),
        "{all}"
    );
    assert_eq!(
        r.text,
        Message::RunStatus { run: running() }.fallback_text(),
        "the fallback text is the port's"
    );
    assert_eq!(
        blocks.last().unwrap()["type"],
        "context",
        "the audit link closes the message"
    );
}

#[test]
fn awaiting_status_says_what_approval_it_needs() {
    let run = RunView {
        state: "awaiting_approval".into(),
        progress_pct: None,
        progress_text: None,
        waiting_for: Some(
            "1 more approval(s) from bob, dave; expires 2026-11-24 11:00:00 UTC".into(),
        ),
        ..running()
    };
    let message = Message::RunStatus { run };
    let all = all_texts(&render(&message).blocks.unwrap()).join("\n");
    assert!(
        all.contains("Needs 1 more approval(s) from bob, dave; expires 2026-11-24 11:00:00 UTC"),
        "{all}"
    );
    assert!(
        message
            .fallback_text()
            .ends_with("awaiting approval: needs 1 more approval(s) from bob, dave; expires 2026-11-24 11:00:00 UTC"),
        "{}",
        message.fallback_text()
    );
}

#[test]
fn progress_bar_rounds_down_and_clamps() {
    let mut run = running();
    run.progress_pct = Some(99);
    run.progress_text = None;
    assert_eq!(progress_line(&run).unwrap(), "▓▓▓▓▓▓▓▓▓░ 99%");
    run.progress_pct = Some(250);
    assert_eq!(progress_line(&run).unwrap(), "▓▓▓▓▓▓▓▓▓▓ 100%");
    run.progress_pct = None;
    run.progress_text = Some("warming up".into());
    assert_eq!(progress_line(&run).unwrap(), "warming up");
}

#[test]
fn result_has_outcome_output_fields_and_audit() {
    let run = succeeded();
    let r = render(&Message::RunResult { run: run.clone() });
    let blocks = r.blocks.unwrap();
    assert_within_limits(&blocks);
    assert!(r.full_output.is_none(), "a short tail is not uploaded");
    let all = all_texts(&blocks).join("\n");
    assert!(all.contains("*Duration*\n1.2 s"), "{all}");
    assert!(all.contains("*Exit code*\n0"), "{all}");
    assert!(
        all.contains("```\nexported 1204 rows &lt;ok&gt; &amp; done\n```"),
        "the tail is escaped in a code block: {all}"
    );
    let result = blocks
        .iter()
        .find(|b| b["text"]["text"] == "*Result*")
        .expect("an object result is a section of fields");
    let fields = result["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 3, "one field per key");
    assert!(all.contains("*rows*\n1204"), "{all}");
}

#[test]
fn nested_result_is_a_code_block() {
    let mut run = succeeded();
    run.result = Some(serde_json::json!({ "by_day": [1, 2, 3] }));
    let blocks = render(&Message::RunResult { run }).blocks.unwrap();
    let all = all_texts(&blocks).join("\n");
    assert!(all.contains("*Result*\n```\n{"), "{all}");
}

#[test]
fn a_table_result_is_an_aligned_code_block_with_its_rows_capped() {
    let mut run = succeeded();
    let rows: Vec<serde_json::Value> = (0..500)
        .map(|i| serde_json::json!([format!("region <{i}>"), i * 1000]))
        .collect();
    run.result = Some(serde_json::json!({
        "total": 500,
        "table": {"columns": ["region", "amount"], "rows": rows}
    }));
    let blocks = render(&Message::RunResult { run }).blocks.unwrap();
    assert_within_limits(&blocks);
    let all = all_texts(&blocks).join("\n");
    assert!(all.contains("*total*\n500"), "the facts are fields: {all}");
    assert!(
        all.contains("```\nregion       amount\n-----------  ------\nregion &lt;0&gt;   0\n"),
        "aligned, escaped, in a code block: {all}"
    );
    assert!(
        all.contains("_Showing 20 of 500 rows; all of them are on the run page._"),
        "the rows left out are said: {all}"
    );
    assert!(
        !all.contains("region &lt;20&gt;"),
        "at most 20 rows in chat"
    );
}

#[test]
fn long_output_keeps_its_end_within_the_limit() {
    let mut run = succeeded();
    let mut tail: String = (0..2000).map(|i| format!("line {i} <&>\n")).collect();
    tail.push_str("héllo wörld — the very end");
    run.output_tail = Some(tail.clone());
    let r = render(&Message::RunResult { run });
    let blocks = r.blocks.unwrap();
    assert_within_limits(&blocks);
    assert_eq!(
        r.full_output.as_deref(),
        Some(tail.as_str()),
        "the whole tail goes to output.txt"
    );
    let all = all_texts(&blocks).join("\n");
    assert!(all.contains("the very end\n```"), "the end is kept: {all}");
    assert!(!all.contains("line 0 "), "the start is cut");
    assert!(all.contains("_Output cut: the last "), "the cut is said");
    assert!(all.contains("output.txt"), "and where the rest is");
}

#[test]
fn output_cut_lands_on_char_boundaries_and_never_splits_escapes() {
    let tail = "ä<".repeat(3000);
    let (text, cut) = output_section(&tail);
    assert!(cut);
    assert!(
        text.chars().count() <= TEXT_LIMIT,
        "{}",
        text.chars().count()
    );
    let body = text.split("```\n").nth(1).unwrap();
    assert!(
        body.starts_with("ä&lt;") || body.starts_with("&lt;"),
        "{}",
        &body[..20]
    );
}

#[test]
fn backticks_in_output_cannot_close_the_code_block() {
    let (text, _) = output_section("before ``` after");
    assert_eq!(text.matches("```").count(), 2, "only the fences: {text}");
}

#[test]
fn open_approval_has_styled_buttons_with_confirm_dialogs() {
    let a = approval();
    let r = render(&Message::ApprovalRequest {
        approval: a.clone(),
    });
    let blocks = r.blocks.unwrap();
    assert_within_limits(&blocks);
    let actions = blocks
        .iter()
        .find(|b| b["type"] == "actions")
        .expect("an open request has buttons");
    let buttons = actions["elements"].as_array().unwrap();
    assert_eq!(buttons.len(), 2);
    let approve = &buttons[0];
    assert_eq!(approve["action_id"], APPROVE_ACTION);
    assert_eq!(approve["style"], "primary");
    assert_eq!(approve["value"], "31", "the button carries the run id");
    assert!(
        approve["confirm"]["title"]["text"].is_string(),
        "approve asks to confirm"
    );
    assert!(approve["confirm"]["confirm"]["text"].is_string());
    assert!(approve["confirm"]["deny"]["text"].is_string());
    let deny = &buttons[1];
    assert_eq!(deny["action_id"], DENY_ACTION);
    assert_eq!(deny["style"], "danger");
    assert_eq!(deny["value"], "31");
    assert!(deny["confirm"].is_object(), "deny asks to confirm");
    let all = all_texts(&blocks).join("\n");
    assert!(
        all.contains("*Requested by*\ncarol"),
        "a Matrix requester is named: {all}"
    );
    assert!(all.contains("matrix:!oncall:example.org"), "{all}");
    assert!(all.contains("*Needs*\n1 of bob, dave"), "{all}");
    assert!(all.contains("*Expires*\n2026-11-24 11:00 UTC"), "{all}");
    assert!(all.contains("`days=30 dir=/var/tmp/exports`"), "{all}");
}

#[test]
fn closed_approval_lists_decisions_and_has_no_buttons() {
    let mut a = approval();
    a.open = false;
    a.run.state = "queued".into();
    a.run.decisions = vec!["bob approved at 2026-11-24 10:02 UTC".into()];
    let blocks = render(&Message::ApprovalRequest { approval: a })
        .blocks
        .unwrap();
    assert!(
        blocks.iter().all(|b| b["type"] != "actions"),
        "no buttons once decided"
    );
    let all = all_texts(&blocks).join("\n");
    assert!(
        all.contains("*Decisions*\n• bob approved at 2026-11-24 10:02 UTC"),
        "{all}"
    );
}

#[test]
fn deny_modal_round_trips_its_metadata() {
    let meta = DialogMetadata {
        run_id: "31".into(),
        channel_id: "C0456APPROVE".into(),
        message_ts: Some("1700000000.000100".into()),
    };
    let view = deny_modal(&meta);
    assert_eq!(view["type"], "modal");
    assert_eq!(view["callback_id"], DENY_CALLBACK_ID);
    let back: DialogMetadata =
        serde_json::from_str(view["private_metadata"].as_str().unwrap()).unwrap();
    assert_eq!(back, meta);
    assert!(view["title"]["text"].as_str().unwrap().chars().count() <= 24);
    let input = &view["blocks"][1];
    assert_eq!(input["type"], "input");
    assert_eq!(input["optional"], true, "the reason is optional");
    assert_eq!(input["element"]["type"], "plain_text_input");
}

#[test]
fn text_messages_are_escaped_without_blocks() {
    let r = render(&Message::Text {
        text: "use <run> & wait".into(),
    });
    assert_eq!(r.text, "use &lt;run&gt; &amp; wait");
    assert!(r.blocks.is_none());
}

#[test]
fn mrkdwn_in_names_is_escaped() {
    let mut run = running();
    run.requester_account = None;
    run.requester = "<!channel>".into();
    let all = all_texts(&render(&Message::RunStatus { run }).blocks.unwrap()).join("\n");
    assert!(
        !all.contains("<!channel>"),
        "no @channel through a name: {all}"
    );
}

#[test]
fn durations_read_naturally() {
    assert_eq!(duration(850), "850 ms");
    assert_eq!(duration(1234), "1.2 s");
    assert_eq!(duration(185_000), "3 min 5 s");
    assert_eq!(duration(3_720_000), "1 h 2 min");
}

#[test]
fn output_txt_is_the_whole_log_when_the_core_sends_it_and_the_note_says_what_it_holds() {
    let whole: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    let tail: String = whole[whole.len() - 3000..].to_string();
    let mut run = succeeded();
    run.output_tail = Some(tail.clone());
    run.full_output = Some(whole.clone());
    let r = render(&Message::RunResult { run: run.clone() });
    assert_eq!(
        r.full_output.as_deref(),
        Some(whole.as_str()),
        "output.txt holds the whole stored log, not the tail"
    );
    let all = all_texts(&r.blocks.unwrap()).join("\n");
    let total = whole.trim_end().chars().count();
    assert!(
        all.contains(&format!(
            " of {total} characters; the whole output is in output.txt._"
        )),
        "the note counts the whole log: {all}"
    );

    run.full_output = None;
    let r = render(&Message::RunResult { run });
    assert_eq!(
        r.full_output.as_deref(),
        Some(tail.as_str()),
        "without the log, the tail"
    );
    let all = all_texts(&r.blocks.unwrap()).join("\n");
    assert!(
        !all.contains("the whole output is in output.txt"),
        "never claims output.txt holds what it does not: {all}"
    );
    assert!(
        all.contains("output.txt holds the last") && all.contains("behind the audit link"),
        "{all}"
    );
}
