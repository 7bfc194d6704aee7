//! axe-core, injected through the DevTools protocol (the pages run no script of
//! their own and their CSP allows none), finds no WCAG 2.1 AA violation on the
//! run list, a run awaiting approval (with its confirmation page), a finished run,
//! the scripts, one script's page with a refused form, and the audit log, at
//! laptop and phone widths.

use super::*;
use crate::helpers::*;
use crate::web_support::*;

/// Where `tests/run` installs the pinned axe-core.
pub(super) fn axe_js() -> String {
    let path = std::env::var("EXECGOV_AXE_JS").unwrap_or_else(|_| {
        format!(
            "{}/.cache/execgov-axe/axe-core-4.14.1/package/axe.min.js",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "axe-core is missing at {path} ({e}): `./tests/run` installs it (npm pack axe-core@4.14.1 \
             into ~/.cache/execgov-axe), or set EXECGOV_AXE_JS to an axe.min.js"
        )
    })
}

impl Page<'_> {
    /// axe-core's WCAG 2.0/2.1 A and AA violations on the current page, one line
    /// per failing element.
    pub(super) async fn axe_violations(&self, axe: &str) -> Vec<String> {
        self.cmd(
            "Runtime.evaluate",
            json!({ "expression": axe, "returnByValue": true }),
        )
        .await;
        let found = self
            .eval_async(
                "axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })
                   .then(r => r.violations.flatMap(v => v.nodes.map(n =>
                     `${v.id} (${v.impact}): ${v.help} at ${n.target.join(' ')}: ${n.failureSummary}`)))",
            )
            .await;
        found
            .as_array()
            .unwrap_or_else(|| panic!("axe answered: {found}"))
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axe_finds_no_wcag_21_aa_violation() {
    let axe = axe_js();
    let browser = Browser::launch().await;
    let app = WebApp::start(Backend::Sqlite, "").await;
    let finished = say(
        &app.engine,
        &person("alice"),
        "run echo-args note=\"quarterly export\"",
    )
    .await
    .run
    .unwrap();
    wait_final(&app.engine, finished.id).await;
    let waiting = say(&app.engine, &person("alice"), "run risky marker=/dev/null")
        .await
        .run
        .unwrap();
    let base = format!("http://{}", app.addr);
    let page = browser.page().await;
    // dave is an admin (sees every run) and a lead (may approve `risky`).
    page.goto(&app.login_link("dave").await).await;
    page.submit("#sign-in", "/runs").await;

    let mut found = Vec::new();
    for (width, height, mobile) in [(1280, 900, false), (390, 844, true)] {
        page.viewport(width, height, mobile).await;
        for path in [
            "/runs".to_string(),
            format!("/runs/{}", waiting.id),
            format!("/runs/{}/approve", waiting.id),
            format!("/runs/{}", finished.id),
            "/scripts".to_string(),
            "/scripts/echo-args".to_string(),
            "/audit".to_string(),
        ] {
            page.goto(&format!("{base}{path}")).await;
            for v in page.axe_violations(&axe).await {
                found.push(format!("{path} at {width} px: {v}"));
            }
        }
        // A refused form, its field marked.
        page.goto(&format!("{base}/scripts/serial")).await;
        page.type_into("#param-trace", " ").await;
        page.submit("#start-run", "/scripts/serial/run").await;
        assert!(
            page.text().await.contains("Required: fill this in."),
            "the form came back refused: {}",
            page.text().await
        );
        for v in page.axe_violations(&axe).await {
            found.push(format!("the refused run form at {width} px: {v}"));
        }
    }
    // The check itself sees a violation when there is one.
    page.goto(&format!("{base}/runs")).await;
    page.eval(
        "document.querySelector('main').insertAdjacentHTML('beforeend', '<input type=\"text\">')",
    )
    .await;
    let planted = page.axe_violations(&axe).await;
    assert!(
        planted.iter().any(|v| v.starts_with("label ")),
        "axe reports an unlabelled field planted in the page: {planted:?}"
    );
    assert!(
        found.is_empty(),
        "axe-core found {} WCAG 2.1 AA violations:\n{}",
        found.len(),
        found.join("\n")
    );
}
