//! For operators: `/readyz` waits for registered parts, `/metrics` is
//! Prometheus text whose counters move when runs happen.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_waits_for_registered_parts() {
    let app = WebApp::start(Backend::Sqlite, "").await;
    app.readiness.set("slack", false);
    let (status, body) = http_get(app.addr, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("slack not ready") && body.contains("database ok"),
        "{body}"
    );
    app.readiness.set("slack", true);
    assert_eq!(http_get(app.addr, "/readyz").await.0, 200);
    assert_eq!(http_get(app.addr, "/healthz").await.0, 200);
}

/// Checks Prometheus text exposition line by line and returns every sample by its
/// `name{labels}`.
pub fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    for (i, line) in text.lines().enumerate() {
        let at = |what: &str| format!("line {}: {what}: {line}", i + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap();
            let name = parts.next().unwrap_or_default();
            assert!(name_ok(name), "{}", at("metric name"));
            match kind {
                "HELP" => assert!(
                    parts.next().is_some_and(|h| !h.is_empty()),
                    "{}",
                    at("HELP text")
                ),
                "TYPE" => {
                    let t = parts.next().unwrap_or_default();
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t),
                        "{}",
                        at("TYPE")
                    );
                    typed.insert(name.to_string(), t.to_string());
                }
                _ => panic!("{}", at("a comment that is neither HELP nor TYPE")),
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("{}", at("sample without value")));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("{}", at("value"))),
        };
        let name = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("{}", at("unclosed labels")));
                for pair in split_labels(labels) {
                    let (k, v) = pair
                        .split_once('=')
                        .unwrap_or_else(|| panic!("{}", at("label")));
                    assert!(name_ok(k), "{}", at("label name"));
                    assert!(
                        v.starts_with('"') && v.ends_with('"') && v.len() >= 2,
                        "{}",
                        at("label value")
                    );
                }
                name
            }
            None => series,
        };
        assert!(name_ok(name), "{}", at("sample name"));
        let family = ["_bucket", "_sum", "_count", "_total"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains_key(*f)))
            .unwrap_or(name);
        assert!(
            typed.contains_key(family) || typed.contains_key(name),
            "{}",
            at("a sample before its TYPE")
        );
        samples.insert(series.to_string(), value);
    }
    samples
}

/// Splits `a="x",b="y, z"` at the commas between labels.
fn split_labels(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted, mut escaped) = (Vec::new(), String::new(), false, false);
    for c in s.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_prometheus_text_and_move_when_runs_happen() {
    let app = WebApp::start(Backend::Sqlite, "").await;
    let scrape = || async {
        let (status, body) = http_get(app.addr, "/metrics").await;
        assert_eq!(status, 200, "{body}");
        parse_prometheus(&body)
    };
    let before = scrape().await;
    for name in [
        "execgov_run_transitions_total{state=\"succeeded\"}",
        "execgov_adapter_errors_total{platform=\"slack\"}",
        "execgov_pool_size",
        "execgov_pool_busy",
        "execgov_workers_live",
        "execgov_runs_active{state=\"queued\"}",
    ] {
        assert!(
            before.contains_key(name),
            "{name} is exported: {:?}",
            before.keys().collect::<Vec<_>>()
        );
    }
    let get = |m: &BTreeMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);

    let run = say(&app.engine, &person("alice"), "run echo-args")
        .await
        .run
        .unwrap();
    wait_final(&app.engine, run.id).await;
    let waiting = say(&app.engine, &person("alice"), "run risky marker=/dev/null")
        .await
        .run
        .unwrap();
    say(&app.engine, &person("bob"), &format!("deny {}", waiting.id)).await;
    execgov::web::metrics::adapter_error("slack");
    let moved = [
        (
            "execgov_run_transitions_total{state=\"succeeded\"}",
            "a run succeeded",
        ),
        (
            "execgov_run_transitions_total{state=\"rejected\"}",
            "a run was denied",
        ),
        (
            "execgov_run_duration_seconds_count{script=\"echo-args\",state=\"succeeded\"}",
            "its duration was observed",
        ),
        (
            "execgov_run_queue_wait_seconds_count{script=\"echo-args\"}",
            "and its queue wait",
        ),
        (
            "execgov_approval_wait_seconds_count{outcome=\"rejected\"}",
            "the approval wait of the denied run",
        ),
        (
            "execgov_adapter_errors_total{platform=\"slack\"}",
            "the adapter error hook counts",
        ),
        (
            "execgov_http_requests_total{method=\"GET\",route=\"/metrics\",status=\"200\"}",
            "and HTTP requests",
        ),
    ];
    // The recorder follows engine events asynchronously: give it a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let after = loop {
        let m = scrape().await;
        if moved.iter().all(|(s, _)| get(&m, s) > get(&before, s))
            || std::time::Instant::now() > deadline
        {
            break m;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    for (series, why) in moved {
        assert!(
            get(&after, series) > get(&before, series),
            "{series} moved: {why}"
        );
    }
    let mut c = app.sign_in("dave").await;
    c.get("/runs").await;
    c.get(&format!("/runs/{}", run.id)).await;
    let last = scrape().await;
    assert!(
        get(
            &last,
            "execgov_http_requests_total{method=\"GET\",route=\"/runs/{id}\",status=\"200\"}"
        ) >= 1.0,
        "routes are labelled by pattern, not by id"
    );
}
