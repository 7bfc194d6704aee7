//! Deciding from the web: Deny is a form of its own (its reason cannot approve),
//! approving goes through a confirmation page that repeats what is being approved,
//! and a POST that approves without that page's confirmation never approves.

use super::*;

impl Client {
    /// Opens run `id`'s confirmation page and returns its (CSRF, confirmation).
    pub async fn confirmation(&mut self, id: RunId) -> (String, String) {
        let page = self.get(&format!("/runs/{id}/approve")).await;
        assert_eq!(
            page.status, 200,
            "the confirmation page opens: {}",
            page.body
        );
        (
            page.input("csrf")
                .expect("the confirmation form's CSRF token"),
            page.input("confirm")
                .unwrap_or_else(|| panic!("the confirmation form: {}", page.body)),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_without_the_confirmation_page_never_approves() {
    let app = WebApp::start(Backend::Sqlite, "").await;
    let marker = app.env.path().join("must-not-exist");
    let risky = say(
        &app.engine,
        &person("alice"),
        &format!("run risky marker={}", marker.display()),
    )
    .await
    .run
    .unwrap();
    let other = say(&app.engine, &person("alice"), "run risky marker=/dev/null")
        .await
        .run
        .unwrap();
    let mut bob = app.sign_in("bob").await;
    let csrf = bob.csrf().await;
    let decide = format!("/runs/{}/decision", risky.id);
    let (_, other_confirmation) = bob.confirmation(other.id).await;

    for (what, form) in [
        (
            "the old form's fields: approve with a reason",
            vec![
                ("csrf", csrf.as_str()),
                ("decision", "approve"),
                ("reason", "meant to deny"),
            ],
        ),
        (
            "an empty confirmation",
            vec![
                ("csrf", csrf.as_str()),
                ("decision", "approve"),
                ("confirm", ""),
            ],
        ),
        (
            "another run's confirmation",
            vec![
                ("csrf", csrf.as_str()),
                ("decision", "approve"),
                ("confirm", other_confirmation.as_str()),
            ],
        ),
    ] {
        let r = bob.post_form(&decide, &form).await;
        assert_eq!(r.status, 303, "{what}: {}", r.body);
        assert_eq!(
            r.header("location"),
            Some(format!("/runs/{}/approve", risky.id).as_str()),
            "{what} leads to the confirmation page"
        );
        let page = bob.get(r.header("location").unwrap()).await;
        assert!(
            page.body.contains("Nothing was approved"),
            "{what}: the page says so: {}",
            page.body
        );
    }
    assert_eq!(
        app.engine.store().get_run(risky.id).await.unwrap().state,
        RunState::AwaitingApproval,
        "no approval without the confirmation"
    );
    assert!(
        app.engine
            .store()
            .approvals(risky.id)
            .await
            .unwrap()
            .is_empty(),
        "no approval recorded"
    );
    let acts = actions(&app.engine, risky.id).await;
    assert!(
        !acts.iter().any(|a| a.starts_with("approval.")),
        "nothing was decided, so nothing was audited as a decision: {acts:?}"
    );

    // With the confirmation page's token, the approval goes through.
    let (csrf, confirmation) = bob.confirmation(risky.id).await;
    let r = bob
        .post_form(
            &decide,
            &[
                ("csrf", &csrf),
                ("decision", "approve"),
                ("confirm", &confirmation),
            ],
        )
        .await;
    assert_eq!(
        r.header("location"),
        Some(format!("/runs/{}", risky.id).as_str())
    );
    let run = wait_final(&app.engine, risky.id).await;
    assert_eq!(
        run.state,
        RunState::Succeeded,
        "the confirmed approval ran it"
    );
    assert!(marker.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panel_and_the_confirmation_page_repeat_what_is_being_approved() {
    let app = WebApp::start(Backend::Sqlite, "").await;
    // A value with two spaces, quotes and a right-to-left override in it.
    let value = "/tmp/a  \"b\"\u{202E}gpj.exe";
    let risky = app
        .engine
        .handle(execgov::engine::Request {
            actor: person("alice"),
            place: oncall(),
            command: execgov::command::Command::Run {
                script: "risky".into(),
                args: vec![("marker".into(), value.into())],
            },
            private: true,
            files: Vec::new(),
        })
        .await
        .run
        .expect("the request is recorded");
    assert_eq!(risky.state, RunState::AwaitingApproval);
    let mut bob = app.sign_in("bob").await;

    let run_page = bob.get(&format!("/runs/{}", risky.id)).await;
    let confirm_page = bob.get(&format!("/runs/{}/approve", risky.id)).await;
    assert_eq!(confirm_page.status, 200, "{}", confirm_page.body);
    for (name, page) in [("panel", &run_page), ("confirmation page", &confirm_page)] {
        let panel = if name == "panel" {
            let start = page.body.find("Your decision").expect("the decision panel");
            &page.body[start..]
        } else {
            page.body.as_str()
        };
        for want in [
            "<code>risky</code>",
            "<code>marker</code>",
            "/tmp/a  &quot;b&quot;<span class=\"esc\"",
            "\\u{202e}",
            "gpj.exe",
            "person:alice",
            "slack:CONCALL",
            "0 of 1 approval needed",
            "Expires",
        ] {
            assert!(panel.contains(want), "the {name} shows {want}: {panel}");
        }
    }
    assert!(
        !confirm_page.body.contains("type=\"text\""),
        "no one-line text field on the confirmation page (Enter there would submit)"
    );
    assert_eq!(
        app.engine.store().get_run(risky.id).await.unwrap().state,
        RunState::AwaitingApproval,
        "opening the confirmation page decides nothing"
    );

    // The requester sees the same facts but no form that approves.
    let mut alice = app.sign_in("alice").await;
    let page = alice.get(&format!("/runs/{}/approve", risky.id)).await;
    assert!(
        page.body.contains("You may not approve") && page.input("confirm").is_none(),
        "{}",
        page.body
    );
}
