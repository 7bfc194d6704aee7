//! Signed checkpoints of the audit chain reach `[audit] channel`, as `serve`
//! or `execgov audit checkpoint` write them: each once, with the JSON line a
//! verifier reads, again after Slack failed a post, and never a line that
//! does not verify.

use super::fake::{Call, Fault};
use super::payloads::APPROVALS;
use super::*;
use crate::helpers::execgov;
use execgov::audit::checkpoints::SignedCheckpoint;

/// The checkpoints posted to the approvals channel among `calls`, as posted.
fn posted(calls: &[Call]) -> Vec<SignedCheckpoint> {
    calls
        .iter()
        .filter(|c| c.method == "chat.postMessage" && c.ok())
        .filter(|c| c.field("channel") == Some(APPROVALS.id))
        .filter_map(|c| {
            let text = c.field("text")?;
            text.contains("Audit checkpoint")
                .then(|| serde_json::from_str(text.lines().last()?).ok())?
        })
        .collect()
}

/// `execgov audit checkpoint` on the app's config, as an operator runs it.
fn checkpoint_now(app: &SlackApp) {
    let out = execgov(&app.env.config_path(), &["audit", "checkpoint"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("serve posts it to the `approvals` channel"),
        "the CLI says where it goes: {stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_are_posted_to_the_audit_channel_once_each() {
    let app = spawn_slack_app_with(Options {
        audit_channel: true,
        ..Options::default()
    })
    .await;
    // Slack is down for the first try: the checkpoint comes at a later look.
    app.fake
        .fail_next("chat.postMessage", 1, Fault::Error("fatal_error".into()));
    checkpoint_now(&app);
    let first = app
        .fake
        .wait_for("the first checkpoint posted", |calls| {
            posted(calls).first().cloned()
        })
        .await;
    let key = execgov::audit::keys::signing_key(&app.env.config())
        .unwrap()
        .verifying_key();
    first
        .verify(&key)
        .expect("the posted line is the signed checkpoint");

    // A line that is not a signed checkpoint is left out; the next one is posted.
    let file = app.env.config().checkpoint_file();
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str(
        "{\"v\":1,\"seq\":999,\"hash\":\"forged\",\"at\":1,\"key\":\"x\",\"sig\":\"x\"}\n",
    );
    std::fs::write(&file, text).unwrap();
    checkpoint_now(&app);
    let both = app
        .fake
        .wait_for("the second checkpoint posted", |calls| {
            let p = posted(calls);
            (p.len() >= 2).then_some(p)
        })
        .await;
    assert_ne!(both[0].at, both[1].at, "two checkpoints: {both:?}");
    assert!(
        both.iter().all(|c| c.hash != "forged"),
        "a forged line is never posted: {both:?}"
    );

    // Nothing is posted twice: two more looks later, still two.
    tokio::time::sleep(std::time::Duration::from_millis(4500)).await;
    assert_eq!(
        posted(&app.fake.calls()).len(),
        2,
        "each checkpoint once: {}",
        app.fake.summary()
    );
}
