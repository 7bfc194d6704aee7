//! A file for a file parameter in Matrix: alice shares a CSV in the room
//! (encrypted), then replies to it with `!run import-csv`; the bot downloads
//! and decrypts it and the script gets it. A command that needs a file and
//! replies to none is told how to send one.

use super::World;
use super::user::{body, in_thread};
use execgov::types::RunState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_replied_to_with_the_command_reaches_the_script() {
    let mut w = World::new(true).await;
    w.stop_bot().await;
    crate::files::write_import(w.env.path(), "low");
    w.start_bot().await;

    let lonely = w.alice.send(&w.ops, "!run import-csv").await;
    let told = w
        .alice
        .wait_for("the answer to a command without its file", |v| {
            w.by_bot(v) && in_thread(v, lonely.as_str())
        })
        .await;
    assert!(
        body(&told).contains("reply to it with the command"),
        "says how: {}",
        body(&told)
    );

    let file = w
        .alice
        .send_file(&w.ops, "from-matrix.csv", crate::files::csv(2345))
        .await;
    let cmd = w.alice.reply(&w.ops, &file, "!run import-csv").await;
    let answer = w
        .alice
        .wait_for("the answer to the command", |v| {
            w.by_bot(v) && in_thread(v, cmd.as_str())
        })
        .await;
    assert!(
        !w.runs("import-csv").await.is_empty(),
        "a run was asked for: {}",
        body(&answer)
    );
    let done = w.final_run("import-csv").await;
    assert_eq!(done.state, RunState::Succeeded, "{:?}", done.error);
    let out = done.output_tail.unwrap_or_default();
    assert!(
        out.contains("name: from-matrix.csv") && out.contains("bytes: 2345"),
        "{out}"
    );
}
