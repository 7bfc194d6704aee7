//! Step-up on the web in a real browser: bob enrols at `/account/2fa` (the QR
//! code and the secret in text; the test reads the secret from the page as a
//! person would type it into an app), confirms with the first code, then
//! approves a critical run with the code field: a wrong code sends him back to
//! the form saying so, the next right code approves. The enrolment page passes
//! axe-core's WCAG 2.1 AA checks.

use super::axe::axe_js;
use super::*;
use crate::helpers::*;
use crate::web_support::*;
use execgov::clock::{Clock, SystemClock};
use execgov::totp::{code_at, from_base32, step_at};
use execgov::types::RunState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrol_on_the_web_and_approve_a_critical_run_with_a_code_in_chromium() {
    let browser = Browser::launch().await;
    let env = TestEnv::new(Backend::Sqlite).await;
    crate::step_up::write_critical(env.path());
    let app = WebApp::start_in(env, "", std::sync::Arc::new(SystemClock)).await;
    let marker = app.env.path().join("critical-in-browser");
    let asked = say(
        &app.engine,
        &person("alice"),
        &format!("run vault-rotate marker={}", marker.display()),
    )
    .await;
    let run = asked.run.expect("the request is recorded");
    let base = format!("http://{}", app.addr);

    let page = browser.page().await;
    page.goto(&app.login_link("bob").await).await;
    page.submit("#sign-in", "/runs").await;

    page.goto(&format!("{base}/account/2fa")).await;
    assert!(
        page.text().await.contains("Not set up"),
        "{}",
        page.text().await
    );
    page.submit("#enrol", "/account/2fa/enrol").await;
    let shown = page
        .eval("[document.querySelector('#totp-secret').innerText, !!document.querySelector('figure.qr svg')]")
        .await;
    assert_eq!(shown[1], true, "a QR code is drawn: {}", page.text().await);
    let secret = from_base32(shown[0].as_str().expect("the secret in text")).expect("base32");
    page.screenshot(&screenshot_dir().join("browser-2fa-enrol.png"))
        .await;
    let violations = page.axe_violations(&axe_js()).await;
    assert!(violations.is_empty(), "the enrolment page: {violations:#?}");

    let now = || step_at(SystemClock.now_ms());
    page.type_into("#code", &code_at(&secret, now())).await;
    page.submit("#confirm", "/account/2fa").await;
    let on = page.text().await;
    assert!(
        on.contains("Two-factor authentication is on") && on.contains("Enabled since"),
        "{on}"
    );

    // Approve: the code field; a wrong code leads back to it, saying so.
    page.goto(&format!("{base}/runs/{}/approve", run.id)).await;
    assert!(
        page.text().await.contains("critical"),
        "{}",
        page.text().await
    );
    let right = code_at(&secret, now() + 1);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    page.type_into("#code", wrong).await;
    page.submit("#confirm-approve", &format!("/runs/{}/approve", run.id))
        .await;
    assert!(
        page.text().await.contains("wrong code"),
        "{}",
        page.text().await
    );
    assert_eq!(
        app.engine.store().get_run(run.id).await.unwrap().state,
        RunState::AwaitingApproval
    );
    page.type_into("#code", &right).await;
    page.submit("#confirm-approve", &format!("/runs/{}", run.id))
        .await;
    assert!(
        page.text().await.contains("with a second factor"),
        "{}",
        page.text().await
    );
    let done = wait_final(&app.engine, run.id).await;
    assert_eq!(done.state, RunState::Succeeded, "{:?}", done.error);
    assert!(marker.exists());
}
