//! Deciding in a real browser: bob signs in through a link from chat and approves
//! with two real clicks (Approve, then the confirmation page's button); a deny
//! reason typed and sent with Enter denies the run and never approves it.

use super::*;
use crate::helpers::*;
use crate::web_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_from_chat_and_approves_a_run_in_chromium() {
    let browser = Browser::launch().await;
    let app = WebApp::start(Backend::Sqlite, "").await;
    let marker = app.env.path().join("approved-in-browser");
    let asked = say(
        &app.engine,
        &person("alice"),
        &format!("run risky marker={}", marker.display()),
    )
    .await;
    let run = asked.run.expect("the request is recorded");
    assert_eq!(run.state, execgov::types::RunState::AwaitingApproval);
    let base = format!("http://{}", app.addr);

    // bob types `login` in chat and opens the link he gets.
    let link = app.login_link("bob").await;
    let page = browser.page().await;
    page.goto(&link).await;
    assert!(
        page.text().await.contains("Sign in as bob"),
        "{}",
        page.text().await
    );
    page.submit("#sign-in", "/runs").await;
    let list = page.text().await;
    assert!(
        list.contains("bob") && list.contains("risky"),
        "signed in, the run list: {list}"
    );
    page.screenshot(&screenshot_dir().join("browser-runs-list.png"))
        .await;
    let cookie = page.eval("document.cookie").await;
    assert!(
        !cookie
            .as_str()
            .unwrap_or_default()
            .contains("execgov_session"),
        "the session cookie is HttpOnly"
    );

    // The run, waiting for him. Approve leads to a confirmation page that
    // repeats what is being approved and decides nothing yet.
    page.goto(&format!("{base}/runs/{}", run.id)).await;
    assert!(page.text().await.contains("awaiting approval"));
    page.submit("#approve", &format!("/runs/{}/approve", run.id))
        .await;
    let confirm = page.text().await;
    for want in [
        "Approve run",
        "risky",
        marker.to_str().unwrap(),
        "person:alice",
        "0 of 1 approval needed",
    ] {
        assert!(
            confirm.contains(want),
            "the confirmation page shows {want}: {confirm}"
        );
    }
    assert_eq!(
        app.engine.store().get_run(run.id).await.unwrap().state,
        execgov::types::RunState::AwaitingApproval,
        "the first click alone approves nothing"
    );
    page.type_into("textarea[name=reason]", "checked in the browser")
        .await;
    page.submit("#confirm-approve", &format!("/runs/{}", run.id))
        .await;
    assert!(
        page.text().await.contains("bob approved run"),
        "the engine's answer: {}",
        page.text().await
    );

    let done = wait_final(&app.engine, run.id).await;
    assert_eq!(
        done.state,
        execgov::types::RunState::Succeeded,
        "the approved run ran"
    );
    assert!(marker.exists());
    page.goto(&format!("{base}/runs/{}", run.id)).await;
    let text = page.text().await;
    assert!(text.contains("succeeded"), "{text}");
    assert!(
        text.contains("Approved by bob: checked in the browser"),
        "the timeline: {text}"
    );
    let badge = page
        .eval("document.querySelector('header .state').textContent")
        .await;
    assert_eq!(badge, "succeeded");

    let dir = screenshot_dir();
    let laptop = dir.join("browser-run-page.png");
    page.screenshot(&laptop).await;
    page.viewport(390, 844, true).await;
    page.goto(&format!("{base}/runs/{}", run.id)).await;
    let overflow = page
        .eval("document.documentElement.scrollWidth <= window.innerWidth + 1")
        .await;
    assert_eq!(
        overflow, true,
        "the run page fits a phone's width without sideways scrolling"
    );
    let phone = dir.join("browser-run-page-phone.png");
    page.screenshot(&phone).await;
    println!("screenshots: {} and {}", laptop.display(), phone.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enter_in_the_deny_reason_denies_and_never_approves() {
    let browser = Browser::launch().await;
    let app = WebApp::start(Backend::Sqlite, "").await;
    let marker = app.env.path().join("must-not-exist");
    let run = say(
        &app.engine,
        &person("alice"),
        &format!("run risky marker={}", marker.display()),
    )
    .await
    .run
    .expect("the request is recorded");
    let base = format!("http://{}", app.addr);
    let page = browser.page().await;
    page.goto(&app.login_link("bob").await).await;
    page.submit("#sign-in", "/runs").await;
    page.goto(&format!("{base}/runs/{}", run.id)).await;

    // bob types why he says no and presses Enter, as people do.
    page.type_into("input[name=reason]", "wrong host").await;
    page.mark().await;
    page.press_enter().await;
    page.wait_loaded(&format!("/runs/{}", run.id)).await;

    let after = app.engine.store().get_run(run.id).await.unwrap();
    assert_eq!(
        (after.state, after.reason.as_deref()),
        (execgov::types::RunState::Rejected, Some("wrong host")),
        "Enter in the deny reason denied the run: {}",
        page.text().await
    );
    let acts = actions(&app.engine, run.id).await;
    assert!(
        acts.contains(&"approval.denied".to_string())
            && !acts.contains(&"approval.approved".to_string()),
        "the audit has the denial and no approval: {acts:?}"
    );
    assert!(
        page.text().await.contains("bob denied run"),
        "the engine's answer is shown: {}",
        page.text().await
    );
    assert!(!marker.exists(), "nothing ran");
}
