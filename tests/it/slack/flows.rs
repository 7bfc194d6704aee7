//! The Slack happy paths over HTTP: `/run` answers at once (ephemeral), posts a
//! status message that is edited as the run moves, the result and the CSV in its
//! thread with the audit link; an `@mention` runs in its thread; the Events URL
//! answers Slack's `url_verification`; a long output's `output.txt` is the
//! whole log, as the result says; nothing unsigned, stale or forged is ever
//! acted upon; and a real CSV tool's output read with `output = "csv"` is a
//! table in the run's thread.

use super::payloads::{self, ALICE, ONCALL};
use super::sign::{Signing, SlackRequest};
use super::*;
use execgov::types::RunState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slash_command_runs_and_reports_back_in_its_thread() {
    let app = spawn_slack_app().await;

    let reply = app
        .command(ALICE, ONCALL, "slack-report month=2026-10")
        .await;
    assert_eq!(reply.status, 200, "the command is acked: {}", reply.body);
    let ack = reply.json();
    assert!(
        reply.content_type.starts_with("application/json"),
        "the ack is a message: {}",
        reply.content_type
    );
    assert_eq!(
        ack["response_type"], "ephemeral",
        "the ack is for the requester only: {}",
        reply.body
    );
    let run = app.only_run().await;
    assert_eq!(run.script, "slack-report");
    assert_eq!(
        run.args["month"].to_arg(),
        "2026-10",
        "typed arguments recorded: {:?}",
        run.args
    );
    assert!(
        ack["text"]
            .as_str()
            .unwrap_or_default()
            .contains(&run.id.to_string()),
        "the ack names the run: {ack}"
    );

    let status = app.status_message(run.id, ONCALL).await;
    let status_ts = status
        .answered_ts()
        .expect("a posted message has a ts")
        .to_string();
    let done = crate::helpers::wait_final(&app.engine, run.id).await;
    assert_eq!(
        done.state,
        RunState::Succeeded,
        "the script ran: {:?}",
        done.error
    );

    let edit = app
        .fake
        .wait_call("chat.update", |c| {
            c.ok() && c.field("ts") == Some(&status_ts) && c.shown().contains("succeeded")
        })
        .await;
    assert_eq!(
        edit.field("channel"),
        Some(ONCALL.id),
        "the status message is edited where it was posted"
    );

    let link = format!("/runs/{}?t=", run.id);
    let result = app
        .fake
        .wait_call("chat.postMessage", |c| {
            c.ok() && c.field("thread_ts") == Some(&status_ts) && c.shown().contains(&link)
        })
        .await;
    assert_eq!(
        result.field("channel"),
        Some(ONCALL.id),
        "the result goes to the request's channel"
    );

    let shared = app
        .fake
        .wait_file("the CSV shared in the run's thread", |f| {
            f.completed.is_some()
        })
        .await;
    let text = String::from_utf8_lossy(&shared.bytes).to_string();
    assert!(
        shared.filename.ends_with(".csv"),
        "the artifact keeps its name: {}",
        shared.filename
    );
    assert!(
        text.starts_with("month,region,total") && text.contains("2026-10,emea,1200"),
        "the CSV's bytes: {text}"
    );
    let completed = shared.completed.clone().expect("the upload was completed");
    assert_eq!(
        completed["channel_id"], ONCALL.id,
        "shared in the request's channel: {completed}"
    );
    assert_eq!(
        completed["thread_ts"],
        status_ts.as_str(),
        "shared in the run's thread: {completed}"
    );
    let csvs: Vec<_> = app
        .fake
        .uploaded_files()
        .into_iter()
        .filter(|f| f.filename.ends_with(".csv"))
        .collect();
    assert_eq!(csvs.len(), 1, "one artifact, one upload");
    let asked = app
        .fake
        .calls_of("files.getUploadURLExternal")
        .into_iter()
        .find(|c| c.field("filename") == Some(shared.filename.as_str()))
        .expect("an upload URL was asked for the CSV");
    assert_eq!(
        asked.field("length"),
        Some(shared.bytes.len().to_string().as_str()),
        "the announced length is the real one"
    );

    for c in app.fake.calls() {
        assert!(
            c.ok(),
            "every call succeeded: {}\n{}",
            c.method,
            app.fake.summary()
        );
        let bearer = if c.method == "apps.connections.open" {
            fake::APP_TOKEN
        } else {
            fake::BOT_TOKEN
        };
        assert_eq!(
            c.auth.as_deref(),
            Some(format!("Bearer {bearer}").as_str()),
            "{} carries the right token",
            c.method
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stale_or_unsigned_requests_get_401_and_change_nothing() {
    let app = spawn_slack_app().await;
    let command = SlackRequest::command(&payloads::slash_command(
        ALICE,
        ONCALL,
        "slack-report month=2026-10",
    ));
    let event = SlackRequest::event(&payloads::app_mention(
        "Ev0FORGED1",
        ALICE,
        ONCALL,
        "run slack-report month=2026-10",
        None,
    ));
    let click =
        SlackRequest::interaction(&serde_json::json!({"type": "block_actions", "actions": []}));
    for signing in [
        Signing::BadSignature,
        Signing::Stale,
        Signing::NoSignature,
        Signing::NoTimestamp,
    ] {
        for req in [&command, &event, &click] {
            let reply = app.send(&req.clone().signed(signing)).await;
            assert_eq!(
                reply.status, 401,
                "{signing:?} on {} is refused: {}",
                req.path, reply.body
            );
        }
    }
    assert!(app.runs().await.is_empty(), "no forged request made a run");

    // A good request after them: once its status message is out, nothing else was posted.
    let reply = app
        .command(ALICE, ONCALL, "slack-report month=2026-11")
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let run = app.only_run().await;
    app.status_message(run.id, ONCALL).await;
    let posted: Vec<_> = app
        .fake
        .calls()
        .into_iter()
        .filter(|c| c.method.starts_with("chat.") || c.method.starts_with("views."))
        .collect();
    assert!(
        posted.iter().all(|c| mentions_run(c, run.id)),
        "only the good request reached Slack:\n{}",
        app.fake.summary()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_events_url_answers_url_verification() {
    let app = spawn_slack_app().await;
    let challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P";
    let reply = app
        .send(&SlackRequest::event(&payloads::url_verification(challenge)))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answered = reply.body.trim() == challenge || reply.json()["challenge"] == challenge;
    assert!(
        answered,
        "the challenge comes back as text or {{\"challenge\":…}}: {}",
        reply.body
    );
    let forged = app
        .send(
            &SlackRequest::event(&payloads::url_verification(challenge))
                .signed(Signing::BadSignature),
        )
        .await;
    assert_eq!(
        forged.status, 401,
        "url_verification is signed too: {}",
        forged.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_mention_runs_and_answers_in_its_thread() {
    let app = spawn_slack_app().await;
    let thread = "1700000500.000100";
    let event = payloads::app_mention(
        "Ev0MENTION1",
        ALICE,
        ONCALL,
        "run slack-report month=2026-09",
        Some(thread),
    );
    let reply = app.send(&SlackRequest::event(&event)).await;
    assert_eq!(
        reply.status, 200,
        "events are acked at once: {}",
        reply.body
    );
    let run = app.wait_runs(1).await.remove(0);
    let done = crate::helpers::wait_final(&app.engine, run.id).await;
    assert_eq!(done.state, RunState::Succeeded, "{:?}", done.error);
    let status = app
        .fake
        .wait_call("chat.postMessage", |c| {
            c.ok() && c.field("thread_ts") == Some(thread) && mentions_run(c, run.id)
        })
        .await;
    assert_eq!(
        status.field("channel"),
        Some(ONCALL.id),
        "the status goes to the mention's thread"
    );
    let link = format!("/runs/{}?t=", run.id);
    app.fake
        .wait_call("chat.postMessage", |c| {
            c.ok() && c.field("thread_ts") == Some(thread) && c.shown().contains(&link)
        })
        .await;
}

#[test]
fn signs_slacks_documented_example() {
    // api.slack.com/authentication/verifying-requests-from-slack
    let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    assert_eq!(
        super::sign::sign("8f742231b10e8888abcd99yyyzzz85a5", 1531420618, body),
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        "the signature Slack documents for its example request"
    );
}

/// A result shows only the end of a long output; the `output.txt` shared with
/// it holds the whole log, as the message says (it used to be the 3,000
/// characters of the tail, under a note saying it was everything).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_outputs_file_is_the_whole_log() {
    let app = spawn_slack_app().await;
    let reply = app.command(ALICE, ONCALL, "slack-long").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let run = app.wait_runs(1).await.remove(0);
    let done = crate::helpers::wait_final(&app.engine, run.id).await;
    assert_eq!(done.state, RunState::Succeeded, "{:?}", done.error);

    let file = app
        .fake
        .wait_file("output.txt shared", |f| {
            f.filename == "output.txt" && f.completed.is_some()
        })
        .await;
    let whole: String = (1..=20_000).map(|i| format!("line {i}\n")).collect();
    let got = String::from_utf8_lossy(&file.bytes);
    assert!(
        got == whole,
        "output.txt is the whole log: {} bytes, starting {:?}, want {} bytes",
        file.bytes.len(),
        got.chars().take(40).collect::<String>(),
        whole.len()
    );
    let result = app
        .fake
        .wait_call("chat.postMessage", |c| {
            c.ok() && c.field("thread_ts").is_some() && c.shown().contains("Output cut")
        })
        .await;
    let total = whole.trim_end().chars().count();
    assert!(
        result.shown().contains(&format!(
            "of {total} characters; the whole output is in output.txt"
        )),
        "the note counts the whole log: {}",
        result.shown()
    );
}

/// `output = "csv"` on csvkit's csvstat: the printed CSV is the result, posted
/// in the run's thread as an aligned table in a code block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_output_of_a_real_tool_is_a_table_in_the_thread() {
    let app = spawn_slack_app().await;
    let m = app.env.path().join("manifests");
    let csvstat = crate::python_init::venv().join("bin/csvstat");
    std::fs::write(
        m.join("csv-stats.toml"),
        format!(
            "name = \"csv-stats\"\ncommand = [{:?}, {:?}, \"--csv\", \"{{file}}\"]\noutput = \"csv\"\n\
             [[param]]\nname = \"file\"\n[access]\nrun = [\"anyone\"]\n",
            crate::python_init::python(),
            csvstat.display().to_string()
        ),
    )
    .unwrap();
    let input = app.env.path().join("sales.csv");
    std::fs::write(&input, "region,amount\nnorth,10\nsouth,32\n").unwrap();
    let (catalog, problems) = execgov::manifest::load_catalog(&m, app.engine.config());
    assert!(problems.is_empty(), "{problems:?}");
    app.engine.replace_catalog(catalog);

    let reply = app
        .command(
            ALICE,
            ONCALL,
            &format!("csv-stats file={}", input.display()),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let run = app.only_run().await;
    let status = app.status_message(run.id, ONCALL).await;
    let status_ts = status.answered_ts().expect("ts").to_string();
    let done = crate::helpers::wait_final(&app.engine, run.id).await;
    assert_eq!(done.state, RunState::Succeeded, "{:?}", done.error);
    let result = app
        .fake
        .wait_call("chat.postMessage", |c| {
            c.ok() && c.field("thread_ts") == Some(&status_ts) && c.shown().contains("*Result*")
        })
        .await;
    let shown = result.shown();
    assert!(
        shown.contains("```\\ncolumn_id  column_name  type"),
        "the table's header, aligned in a code block: {shown}"
    );
    assert!(
        shown.contains("2          amount       Number"),
        "a row per input column: {shown}"
    );
}
