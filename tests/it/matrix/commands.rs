//! Commands in rooms: `!run` answered in a thread rooted at the command, the
//! status message edited as the run moves, the result with its audit link and
//! the CSV as an `m.file` in the thread, in plain and in encrypted rooms; and
//! a private answer (a sign-in link) going to a direct room instead.

use super::World;
use super::user::{body, edit_of, in_thread};
use execgov::types::RunState;
use execgov_matrix::matrix_sdk::ruma::events::relation::Thread;
use execgov_matrix::matrix_sdk::ruma::events::room::message::{
    FileMessageEventContent, Relation, RoomMessageEventContent,
};

async fn report_export(encrypted: bool) {
    let w = World::new(encrypted).await;
    let cmd = w
        .alice
        .send(&w.ops, "!run report-export month=2026-10")
        .await;
    let cmd = cmd.as_str();

    let accepted = w
        .alice
        .wait_for("the bot's answer in the command's thread", |v| {
            w.by_bot(v) && in_thread(v, cmd) && v["type"] == "m.room.message"
        })
        .await;
    assert_eq!(
        accepted["content"]["msgtype"], "m.notice",
        "the bot answers with notices"
    );

    let result = w
        .alice
        .wait_for("the result in the thread", |v| {
            w.by_bot(v)
                && in_thread(v, cmd)
                && body(v).contains("succeeded")
                && body(v).contains("audit:")
        })
        .await;
    let html = result["content"]["formatted_body"].as_str().unwrap_or("");
    assert!(
        html.contains("<pre><code>"),
        "output tail in a code block: {html}"
    );
    assert!(
        html.contains("exported report-2026-10.csv"),
        "the output tail is shown: {html}"
    );
    assert!(
        body(&result).contains("audit: http://127.0.0.1:8080/runs/"),
        "the audit link is in the result: {}",
        body(&result)
    );

    // The status message is the answer: no separate "queued" reply before it.
    let replies: Vec<String> = w
        .alice
        .events()
        .iter()
        .filter(|v| w.by_bot(v) && in_thread(v, cmd) && v["type"] == "m.room.message")
        .map(|v| body(v).to_string())
        .collect();
    assert!(
        replies.iter().all(|b| !b.contains(" is queued")),
        "no reply besides the status message and the result: {replies:#?}"
    );

    // The status message was posted in the thread, then edited to the outcome.
    let status = w
        .alice
        .events()
        .into_iter()
        .find(|v| {
            w.by_bot(v)
                && in_thread(v, cmd)
                && body(v).contains("`report-export month=2026-10`:")
                && !body(v).contains("audit:")
        })
        .expect("a status message in the thread");
    assert!(
        !body(&status).contains("succeeded"),
        "the status was posted while the run was going: {}",
        body(&status)
    );
    let status_id = status["event_id"].as_str().unwrap().to_string();
    let edit = w
        .alice
        .wait_for("an edit of the status message to the outcome", |v| {
            w.by_bot(v) && edit_of(v, &status_id).is_some_and(|b| b.contains("succeeded"))
        })
        .await;
    assert!(
        edit["content"]["m.new_content"]["formatted_body"].is_string(),
        "the edit carries the new HTML too"
    );

    let file = w
        .alice
        .wait_for("the CSV as m.file in the thread", |v| {
            w.by_bot(v) && in_thread(v, cmd) && v["content"]["msgtype"] == "m.file"
        })
        .await;
    assert_eq!(body(&file), "report-2026-10.csv");
    assert_eq!(file["content"]["info"]["mimetype"], "text/csv");
    assert_eq!(
        file["content"]["file"].is_object(),
        encrypted,
        "an encrypted room gets an encrypted upload, a plain room a plain one: {file}"
    );
    let content: FileMessageEventContent = serde_json::from_value(file["content"].clone()).unwrap();
    let bytes = w
        .alice
        .client
        .media()
        .get_file(&content, false)
        .await
        .expect("the file downloads")
        .expect("the file has content");
    let csv = String::from_utf8(bytes).unwrap();
    assert!(
        csv.starts_with("month,region,total\n2026-10,emea,1200"),
        "the CSV itself: {csv}"
    );

    let run = w.final_run("report-export").await;
    assert_eq!(run.state, RunState::Succeeded);
    assert_eq!(
        run.requester_person.as_ref().map(|p| p.as_str()),
        Some("alice"),
        "the sender is mapped to the person"
    );
    let place = &run.place;
    assert_eq!(place.channel, w.ops.as_str());
    assert_eq!(
        place.thread.as_deref(),
        Some(cmd),
        "the run's place is the command's thread"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_in_a_plain_room_answers_in_its_thread() {
    report_export(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_in_an_encrypted_room_answers_in_its_thread() {
    report_export(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mention_and_thread_replies_are_commands_too() {
    let w = World::new(false).await;
    let first = w.alice.send(&w.ops, &format!("{}: list", w.bot_id)).await;
    let listed = w
        .alice
        .wait_for("the answer to a mention", |v| {
            w.by_bot(v) && in_thread(v, first.as_str())
        })
        .await;
    assert!(
        body(&listed).contains("report-export"),
        "list names the scripts: {}",
        body(&listed)
    );

    // A command inside an existing thread is answered in that thread.
    let room = w.alice.client.get_room(&w.ops).unwrap();
    let mut content = RoomMessageEventContent::text_plain("!run help");
    content.relates_to = Some(Relation::Thread(Thread::plain(
        first.clone(),
        first.clone(),
    )));
    let inner = room.send(content).await.unwrap().response.event_id;
    w.alice
        .wait_until("a second answer in the first thread", |events| {
            let answers = events
                .iter()
                .filter(|v| w.by_bot(v) && in_thread(v, first.as_str()))
                .count();
            (answers >= 2).then_some(())
        })
        .await;
    assert!(
        !w.alice
            .events()
            .iter()
            .any(|v| w.by_bot(v) && in_thread(v, inner.as_str())),
        "no thread is started under a message that is itself in a thread"
    );
    // Chat that is not a command gets no answer: the bot stays quiet.
    let chat = w.alice.send(&w.ops, "lunch at noon?").await;
    let marker = w.alice.send(&w.ops, "!run list").await;
    w.alice
        .wait_for("the answer to a later command", |v| {
            w.by_bot(v) && in_thread(v, marker.as_str())
        })
        .await;
    assert!(
        !w.alice
            .events()
            .iter()
            .any(|v| w.by_bot(v) && in_thread(v, chat.as_str())),
        "plain chat is not answered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_link_goes_to_a_direct_room() {
    let w = World::new(false).await;
    let cmd = w.alice.send(&w.ops, "!run login").await;
    let note = w
        .alice
        .wait_for("a note in the thread", |v| {
            w.by_bot(v) && in_thread(v, cmd.as_str())
        })
        .await;
    assert!(
        !body(&note).contains("/login/"),
        "the link is not shown in the shared room: {}",
        body(&note)
    );
    assert!(body(&note).contains("direct message"), "{}", body(&note));
    let dm = w.alice.accept_invite().await;
    let link = w
        .alice
        .wait_for("the sign-in link in the direct room", |v| {
            w.by_bot(v) && v["room_id"] == dm.as_str() && body(v).contains("/login/")
        })
        .await;
    assert!(
        body(&link).contains("http://127.0.0.1:8080/login/"),
        "{}",
        body(&link)
    );
    assert!(
        !w.bob.events().iter().any(|v| body(v).contains("/login/")),
        "bob, in the shared room, never sees the link"
    );
}
