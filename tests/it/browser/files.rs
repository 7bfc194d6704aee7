//! A file chosen in the web form (a real file input in Chromium, set through
//! the DevTools protocol as a person's file picker would) reaches the script.

use super::*;
use crate::helpers::*;
use crate::web_support::*;
use execgov::types::{RunId, RunState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_chosen_in_the_web_form_reaches_the_script() {
    let browser = Browser::launch().await;
    let env = TestEnv::new(Backend::Sqlite).await;
    crate::files::write_import(env.path(), "low");
    let upload = env.path().join("from-browser.csv");
    std::fs::write(&upload, crate::files::csv(1234)).unwrap();
    let app = WebApp::start_in(env, "", std::sync::Arc::new(execgov::clock::SystemClock)).await;
    let base = format!("http://{}", app.addr);
    let page = browser.page().await;
    page.goto(&app.login_link("alice").await).await;
    page.submit("#sign-in", "/runs").await;
    page.goto(&format!("{base}/scripts/import-csv")).await;
    assert!(
        page.text().await.contains("a file (.csv)"),
        "{}",
        page.text().await
    );

    let doc = page.cmd("DOM.getDocument", json!({})).await;
    let input = page
        .cmd(
            "DOM.querySelector",
            json!({ "nodeId": doc["root"]["nodeId"], "selector": "#param-data" }),
        )
        .await;
    page.cmd(
        "DOM.setFileInputFiles",
        json!({ "nodeId": input["nodeId"], "files": [upload.display().to_string()] }),
    )
    .await;
    page.mark().await;
    page.click("#start-run").await;
    let deadline = tokio::time::Instant::now() + STEP;
    let id = loop {
        let path = page.eval("location.pathname").await;
        if let Some(id) = path.as_str().and_then(|p| p.strip_prefix("/runs/")) {
            break RunId::parse(id).unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no run page: {}",
            page.text().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let done = wait_final(&app.engine, id).await;
    assert_eq!(done.state, RunState::Succeeded, "{:?}", done.error);
    let out = done.output_tail.unwrap_or_default();
    assert!(
        out.contains("name: from-browser.csv") && out.contains("bytes: 1234"),
        "{out}"
    );
}
