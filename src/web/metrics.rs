//! Prometheus metrics, served at `/metrics` in the text format, from one
//! process-wide registry (the `prometheus` crate).
//!
//! Where each comes from:
//! - run state changes: this process's engine events (`record_engine_events`),
//!   as `execgov_run_transitions_total{state}`, and approval waits;
//! - run duration and queue wait: [`run_finished`], called by the pool as it
//!   records a run's end;
//! - runs waiting or running now, live workers: the store, read at each scrape;
//! - adapter errors: [`adapter_error`], called by the chat notifier;
//! - HTTP requests: a middleware on the router;
//! - the process (CPU, memory, fds, start time) and the build: `process_metrics`.
//!
//! With `web.metrics_token` set, a scrape needs `Authorization: Bearer <token>`.

use crate::engine::Engine;
use crate::store::Run;
use crate::types::{RunId, RunState};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Instant;
use tokio::sync::broadcast::error::RecvError;

struct Metrics {
    registry: Registry,
    transitions: IntCounterVec,
    run_duration: HistogramVec,
    queue_wait: HistogramVec,
    approval_wait: HistogramVec,
    runs_active: IntGaugeVec,
    pool_busy: IntGauge,
    pool_size: IntGauge,
    workers_live: IntGauge,
    adapter_errors: IntCounterVec,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    events_dropped: IntCounter,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// States shown by `execgov_runs_active`: the ones a run waits or works in.
const ACTIVE: [RunState; 3] = [
    RunState::AwaitingApproval,
    RunState::Queued,
    RunState::Running,
];

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("registered once");
            c
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: &[f64]| {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                labels,
            )
            .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("registered once");
            h
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("registered once");
            g
        };
        let m = Metrics {
            transitions: counter(
                "execgov_run_transitions_total",
                "Runs entering each state, as seen by this process's engine.",
                &["state"],
            ),
            run_duration: histogram(
                "execgov_run_duration_seconds",
                "Wall time of finished runs, from start to end.",
                &["script", "state"],
                &[
                    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
                ],
            ),
            queue_wait: histogram(
                "execgov_run_queue_wait_seconds",
                "Time runs spent queued before a worker started them.",
                &["script"],
                &[
                    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
                ],
            ),
            approval_wait: histogram(
                "execgov_approval_wait_seconds",
                "Time from a request to its approval, denial or expiry.",
                &["outcome"],
                &[
                    1.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0, 86400.0,
                ],
            ),
            runs_active: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        "execgov_runs_active",
                        "Runs awaiting approval, queued or running now (all workers).",
                    ),
                    &["state"],
                )
                .expect("valid metric");
                registry
                    .register(Box::new(g.clone()))
                    .expect("registered once");
                g
            },
            pool_busy: gauge(
                "execgov_pool_busy",
                "Runs this process's worker pool is executing now.",
            ),
            pool_size: gauge(
                "execgov_pool_size",
                "Slots of this process's worker pool (runner.pool_size).",
            ),
            workers_live: gauge(
                "execgov_workers_live",
                "Workers that sent a heartbeat in the last 90 seconds.",
            ),
            adapter_errors: counter(
                "execgov_adapter_errors_total",
                "Errors chat adapters returned when posting or updating messages.",
                &["platform"],
            ),
            http_requests: counter(
                "execgov_http_requests_total",
                "HTTP requests served, by route, method and status.",
                &["route", "method", "status"],
            ),
            http_duration: histogram(
                "execgov_http_request_duration_seconds",
                "Time to answer HTTP requests, by route.",
                &["route"],
                &[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ],
            ),
            events_dropped: {
                let c = IntCounter::new(
                    "execgov_metrics_events_dropped_total",
                    "Run events the metrics recorder missed because it fell behind.",
                )
                .expect("valid metric");
                registry
                    .register(Box::new(c.clone()))
                    .expect("registered once");
                c
            },
            registry,
        };
        // Series that exist from the start, so rates work from the first scrape.
        for s in RunState::ALL {
            m.transitions.with_label_values(&[s.as_str()]);
        }
        for p in ["slack", "matrix"] {
            m.adapter_errors.with_label_values(&[p]);
        }
        m
    }
}

/// Counts an error a chat adapter returned (the notifier calls this), by platform.
pub fn adapter_error(platform: impl std::fmt::Display) {
    METRICS
        .adapter_errors
        .with_label_values(&[&platform.to_string()])
        .inc();
}

/// Records a finished run's duration and queue wait, when its final state's
/// event comes by (see `record_engine_events`).
fn run_finished(run: &Run) {
    let m = &*METRICS;
    if let (Some(start), Some(end)) = (run.started_at, run.finished_at) {
        m.run_duration
            .with_label_values(&[run.script.as_str(), run.state.as_str()])
            .observe(seconds(end - start));
    }
    if let (Some(queued), Some(start)) = (run.queued_at, run.started_at) {
        m.queue_wait
            .with_label_values(&[run.script.as_str()])
            .observe(seconds(start - queued));
    }
}

fn seconds(ms: i64) -> f64 {
    ms.max(0) as f64 / 1000.0
}

/// Follows the engine's run events until the engine is gone: counts state changes,
/// keeps `execgov_pool_busy`, and observes approval waits.
pub(super) fn record_engine_events(engine: &Arc<Engine>) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no async runtime: run metrics are not recorded");
        return;
    };
    METRICS
        .pool_size
        .set(engine.config().runner.pool_size as i64);
    let mut events = engine.subscribe();
    let store = engine.store().clone();
    let clock = engine.clock().clone();
    rt.spawn(async move {
        // The last state seen per unfinished run, to ignore repeated events.
        let mut last: HashMap<RunId, RunState> = HashMap::new();
        loop {
            let ev = match events.recv().await {
                Ok(ev) => ev,
                Err(RecvError::Lagged(n)) => {
                    METRICS.events_dropped.inc_by(n);
                    continue;
                }
                Err(RecvError::Closed) => break,
            };
            if ev.progress.is_some() {
                continue;
            }
            let prev = last.get(&ev.run).copied();
            if prev == Some(ev.state) {
                continue;
            }
            METRICS
                .transitions
                .with_label_values(&[ev.state.as_str()])
                .inc();
            if ev.state == RunState::Running {
                METRICS.pool_busy.inc();
            } else if prev == Some(RunState::Running) {
                METRICS.pool_busy.dec();
            }
            let decided = matches!(
                ev.state,
                RunState::Queued | RunState::Rejected | RunState::Expired
            );
            if decided && matches!(prev, None | Some(RunState::AwaitingApproval)) {
                observe_approval_wait(&store, ev.run, ev.state, clock.now_ms()).await;
            }
            if ev.state.is_final() {
                if let Ok(run) = store.get_run(ev.run).await {
                    run_finished(&run);
                }
                last.remove(&ev.run);
            } else {
                if last.len() >= 100_000 {
                    last.clear();
                }
                last.insert(ev.run, ev.state);
            }
        }
    });
}

async fn observe_approval_wait(store: &crate::store::Store, id: RunId, state: RunState, now: i64) {
    let Ok(run) = store.get_run(id).await else {
        return;
    };
    if run.quorum == 0 {
        return;
    }
    let outcome = match state {
        RunState::Queued => "approved",
        RunState::Rejected => "rejected",
        _ => "expired",
    };
    let at = if state == RunState::Queued {
        run.queued_at.unwrap_or(now)
    } else {
        now
    };
    METRICS
        .approval_wait
        .with_label_values(&[outcome])
        .observe(seconds(at - run.created_at));
}

/// Counts and times every request by its route pattern (not its path, so run ids
/// do not make new series).
pub(super) async fn track_http(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().as_str().to_string();
    let start = Instant::now();
    let resp = next.run(req).await;
    let m = &*METRICS;
    m.http_requests
        .with_label_values(&[route.as_str(), method.as_str(), resp.status().as_str()])
        .inc();
    m.http_duration
        .with_label_values(&[route.as_str()])
        .observe(start.elapsed().as_secs_f64());
    resp
}

/// `GET /metrics`: reads the store's gauges, then the whole registry as text.
/// 401 without the bearer token when `web.metrics_token` is set.
pub(super) async fn metrics_page(
    State(state): State<super::WebState>,
    headers: HeaderMap,
) -> Result<Response, super::WebError> {
    if let Some(want) = state.metrics_token() {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if !given.is_some_and(|g| super::auth::ct_eq(g, want)) {
            return Ok((
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer realm=\"metrics\"")],
                "/metrics needs Authorization: Bearer <web.metrics_token>\n",
            )
                .into_response());
        }
    }
    let engine = state.engine();
    let store = engine.store();
    let counts = store.active_run_counts().await?;
    for s in ACTIVE {
        let n = counts
            .iter()
            .find(|(k, _)| k == s.as_str())
            .map(|(_, n)| *n)
            .unwrap_or(0);
        METRICS.runs_active.with_label_values(&[s.as_str()]).set(n);
    }
    METRICS
        .workers_live
        .set(store.live_workers(engine.now() - 90_000).await?);
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    encoder
        .encode(&METRICS.registry.gather(), &mut body)
        .map_err(|e| anyhow::anyhow!("encoding metrics: {e}"))?;
    body.extend_from_slice(store_commits(store).as_bytes());
    let due = engine.now() - engine.config().access.review_within.as_millis() as i64;
    let (unreviewed, overdue) = store.unreviewed_counts(due).await?;
    body.extend_from_slice(
        format!(
            "# HELP execgov_break_glass_unreviewed Break-glass runs no approver has reviewed yet.\n\
             # TYPE execgov_break_glass_unreviewed gauge\n\
             execgov_break_glass_unreviewed {unreviewed}\n\
             # HELP execgov_break_glass_overdue Of those, the ones past [access] review_within.\n\
             # TYPE execgov_break_glass_overdue gauge\n\
             execgov_break_glass_overdue {overdue}\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(super::process_metrics::render().as_bytes());
    Ok((
        [(header::CONTENT_TYPE, encoder.format_type().to_string())],
        body,
    )
        .into_response())
}

/// `execgov_store_commits_total`: what this process's store committed, by
/// write and durability (kept by the store itself, per store).
fn store_commits(store: &crate::store::Store) -> String {
    let mut out = String::from(
        "# HELP execgov_store_commits_total Writes committed by this process's store, by write and durability.\n\
         # TYPE execgov_store_commits_total counter\n",
    );
    for (op, durability, n) in store.commit_counts() {
        out.push_str(&format!(
            "execgov_store_commits_total{{op=\"{op}\",durability=\"{}\"}} {n}\n",
            durability.as_str()
        ));
    }
    out
}
