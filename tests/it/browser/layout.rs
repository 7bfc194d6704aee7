//! Readable at a laptop's 1280 px and a phone's 390 px: the audit page's table
//! fits a laptop with each timestamp on one line; `/runs`, `/scripts` and
//! `/audit` fold their rows into cards on a phone with no column hidden or cut
//! off; and the log box wraps long lines at spaces, never inside a word.

use super::*;
use crate::helpers::*;
use crate::web_support::*;

/// What sticks out sideways on the current page: the page itself, a scroll box
/// wider than its frame, or a table cell with content that lies (partly) outside
/// the window, as a column scrolled out of sight does.
const OVERFLOW: &str = r#"(() => {
  const out = [];
  const vw = document.documentElement.clientWidth;
  const page = document.documentElement.scrollWidth;
  if (page > vw + 1) out.push(`the page is ${page} px wide in a ${vw} px window`);
  for (const el of document.querySelectorAll('.scroll')) {
    if (el.scrollWidth > el.clientWidth + 1)
      out.push(`a scroll box holds ${el.scrollWidth} px in ${el.clientWidth} px`);
  }
  for (const td of document.querySelectorAll('td')) {
    if (!td.textContent.trim()) continue;
    const r = td.getBoundingClientRect();
    if (r.width < 1 || r.height < 1 || r.left < -1 || r.right > vw + 1)
      out.push(`cell "${td.textContent.trim().slice(0, 40)}" at x ${Math.round(r.left)}..${Math.round(r.right)}`);
  }
  return out;
})()"#;

/// Timestamps in table cells that take more than one line.
const WRAPPED_TIMES: &str = r#"[...document.querySelectorAll('td time')]
  .filter(t => t.getClientRects().length !== 1 || t.getBoundingClientRect().height > 2 * parseFloat(getComputedStyle(t).lineHeight || 20))
  .map(t => `${t.textContent} takes ${t.getClientRects().length} line boxes`)"#;

/// Words in the log box (shorter than a line) that wrap across two lines.
const BROKEN_WORDS: &str = r#"(() => {
  const pre = document.querySelector('pre.log');
  const bad = [];
  const walker = document.createTreeWalker(pre, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const re = /\S+/g;
    let m;
    while ((m = re.exec(node.textContent))) {
      if (m[0].length > 30) continue;
      const r = document.createRange();
      r.setStart(node, m.index);
      r.setEnd(node, m.index + m[0].length);
      const tops = new Set([...r.getClientRects()].filter(x => x.width > 0).map(x => Math.round(x.top)));
      if (tops.size > 1) bad.push(m[0]);
    }
  }
  return bad;
})()"#;

async fn problems(page: &Page<'_>, js: &str) -> Vec<String> {
    let v = page.eval(js).await;
    v.as_array()
        .unwrap_or_else(|| panic!("the check answered {v}"))
        .iter()
        .map(|x| x.as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lists_and_the_audit_page_fit_a_laptop_and_a_phone() {
    let browser = Browser::launch().await;
    let app = WebApp::start(Backend::Sqlite, "").await;
    // Long arguments make long audit details and a log of many lines.
    let words: Vec<String> = (0..40)
        .map(|i| format!("batch-{i} wrote {} rows", 1_000_000 + i * 7919))
        .collect();
    let note = words.join(" ");
    let long = say(
        &app.engine,
        &person("alice"),
        &format!("run echo-args note=\"{note}\" who=someone-with-a-rather-long-name"),
    )
    .await
    .run
    .unwrap();
    wait_final(&app.engine, long.id).await;
    for i in 0..3 {
        say(
            &app.engine,
            &person("alice"),
            &format!("run risky marker=/tmp/execgov-browser-layout-{i}"),
        )
        .await;
    }
    let base = format!("http://{}", app.addr);
    let page = browser.page().await;
    page.goto(&app.login_link("dave").await).await;
    page.submit("#sign-in", "/runs").await;
    let dir = screenshot_dir();
    let mut found = Vec::new();

    page.viewport(1280, 900, false).await;
    page.goto(&format!("{base}/audit")).await;
    page.screenshot(&dir.join("browser-audit-laptop.png")).await;
    for p in problems(&page, OVERFLOW).await {
        found.push(format!("/audit at 1280 px: {p}"));
    }
    for p in problems(&page, WRAPPED_TIMES).await {
        found.push(format!("/audit at 1280 px: {p}"));
    }

    page.viewport(390, 844, true).await;
    for path in ["/runs", "/scripts", "/audit", "/scripts/risky"] {
        page.goto(&format!("{base}{path}")).await;
        let name = path.trim_start_matches('/').replace('/', "-");
        page.screenshot(&dir.join(format!("browser-{name}-phone.png")))
            .await;
        for p in problems(&page, OVERFLOW).await {
            found.push(format!("{path} at 390 px: {p}"));
        }
        for p in problems(&page, WRAPPED_TIMES).await {
            found.push(format!("{path} at 390 px: {p}"));
        }
    }
    page.goto(&format!("{base}/runs/{}", long.id)).await;
    let text = page.text().await;
    assert!(
        text.contains("wrote 1007919 rows"),
        "the log is shown: {text}"
    );
    for w in problems(&page, BROKEN_WORDS).await {
        found.push(format!("the log at 390 px breaks `{w}` across lines"));
    }
    // The check itself sees broken words where a box breaks anywhere.
    page.eval("document.querySelector('pre.log').style.wordBreak = 'break-all'")
        .await;
    let planted = problems(&page, BROKEN_WORDS).await;
    assert!(
        !planted.is_empty(),
        "with word-break:break-all some word of the log breaks across lines"
    );
    assert!(
        found.is_empty(),
        "{} layout problems:\n{}",
        found.len(),
        found.join("\n")
    );
}
