//! The HTTP side, on one listener: the audit UI (server-rendered with maud, no
//! script), the JSON API under `/api/v1`, sign-in, `/metrics`, `/healthz` and
//! `/readyz`. The Slack endpoints join this router in their own module.
//!
//! Access: an audit link (`/runs/{id}?t=…`) opens its one run and nothing else.
//! Everything else needs sign-in: `login` in chat answers privately with a one-time
//! link (the engine's `login` answer); opening it and pressing the button sets a
//! session cookie. A signed-in person sees the runs they requested, may run or may
//! approve (`Engine::may_view`; `web.admins` see all) and acts through the same
//! engine calls as chat, as `web:local`. Every form carries a CSRF token.
//!
//! # Layout
//! - `auth.rs`: sessions, API tokens, CSRF, the `Viewer`/`ApiCaller` extractors.
//! - `login.rs`: chat-issued sign-in links, dev login, sign-out.
//! - `layout.rs`: the page frame, CSS and small rendering helpers.
//! - `run_page.rs`: one run (audit link or signed in), Cancel; `run_files.rs`: its log and files; `timeline.rs`: its timeline worded.
//! - `decision.rs`: Approve (through a confirmation page) and Deny.
//! - `runs_list.rs`: `/runs`, filtered and paged by id.
//! - `scripts.rs`: the catalogue and one script's page.
//! - `run_form.rs`: the form that asks for a run, and its POST.
//! - `audit_page.rs`: the audit log and the chain's verification status.
//! - `tokens.rs`: a person's API tokens.
//! - `two_factor.rs`: a person's second factor (`/account/2fa`) for critical approvals.
//! - `api.rs`, `openapi.rs`: `/api/v1` and its OpenAPI document.
//! - [`metrics`]: Prometheus metrics and the hooks other modules call; `/metrics`
//!   behind `web.metrics_token` when set.
//! - `process_metrics.rs`: the process's CPU, memory, fds, start time; build info.
//! - `readiness.rs`: what `/readyz` waits for.
//! - `view.rs`: what a person may see and do, shared by pages and API.

mod api;
mod audit_page;
pub mod auth;
mod decision;
mod error;
mod layout;
pub mod login;
pub mod metrics;
mod openapi;
mod process_metrics;
mod readiness;
mod run_files;
mod run_form;
mod run_page;
mod runs_list;
mod scripts;
mod timeline;
mod tokens;
mod two_factor;
mod view;

pub(crate) use api::{run_document, run_json};
pub use error::{ApiError, WebError};
pub use readiness::Readiness;
pub use run_page::strip_ansi;

use crate::config::Config;
use crate::engine::Engine;
use crate::store::ChainCheck;
use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use std::sync::{Arc, Mutex};

/// What every handler shares: the engine, the readiness registry, and a cache of
/// the audit chain's last verification (a full walk is too slow for every view).
#[derive(Debug, Clone)]
pub struct WebState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    engine: Arc<Engine>,
    readiness: Readiness,
    chain: Mutex<Option<(i64, ChainCheck)>>,
    /// `web.metrics_token`, resolved once at start.
    metrics_token: Option<String>,
}

impl WebState {
    /// Refuses `web.dev_login = true` unless the listener is on a loopback
    /// address, and a `web.metrics_token` that does not resolve (an unset
    /// variable must not leave `/metrics` open); starts the metrics recorder
    /// for this engine's run events.
    pub fn new(engine: Arc<Engine>, readiness: Readiness) -> anyhow::Result<WebState> {
        check_dev_login(engine.config())?;
        let metrics_token = match &engine.config().web.metrics_token {
            Some(secret) => {
                let token = secret.resolve().context("web.metrics_token")?;
                let token = token.trim().to_string();
                anyhow::ensure!(!token.is_empty(), "web.metrics_token: the token is empty");
                Some(token)
            }
            None => None,
        };
        metrics::record_engine_events(&engine);
        Ok(WebState {
            inner: Arc::new(Inner {
                engine,
                readiness,
                chain: Mutex::new(None),
                metrics_token,
            }),
        })
    }

    /// The bearer token `/metrics` asks for, if any.
    pub(crate) fn metrics_token(&self) -> Option<&str> {
        self.inner.metrics_token.as_deref()
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.inner.engine
    }

    /// The registry `/readyz` reports; adapters mark themselves in it.
    pub fn readiness(&self) -> &Readiness {
        &self.inner.readiness
    }

    /// Cookies get `Secure` when the public URL is https.
    pub(crate) fn secure_cookies(&self) -> bool {
        self.engine()
            .config()
            .web
            .public_url
            .starts_with("https://")
    }

    /// The chain's verification, redone at most every `max_age_ms`.
    pub(crate) async fn chain_status(
        &self,
        max_age_ms: i64,
    ) -> Result<(i64, ChainCheck), WebError> {
        let now = self.engine().now();
        if let Some((at, check)) = self.inner.chain.lock().expect("chain cache").clone()
            && now - at < max_age_ms
        {
            return Ok((at, check));
        }
        let check = self.engine().store().verify_chain().await?;
        *self.inner.chain.lock().expect("chain cache") = Some((now, check.clone()));
        Ok((now, check))
    }
}

/// Lets `router(engine)` keep working while callers move to [`WebState::new`].
/// Panics where `WebState::new` would refuse (dev login on a public address).
impl From<Arc<Engine>> for WebState {
    fn from(engine: Arc<Engine>) -> WebState {
        WebState::new(engine, Readiness::default()).unwrap_or_else(|e| panic!("{e:#}"))
    }
}

/// `web.dev_login` lets anyone pick a person at `/login`: only on loopback.
pub fn check_dev_login(config: &Config) -> anyhow::Result<()> {
    if config.web.dev_login && !config.web.listen.ip().is_loopback() {
        anyhow::bail!(
            "web.dev_login = true lets anyone sign in as anyone; it is refused while web.listen ({}) \
             is not a loopback address. Use it for the local demo only, on 127.0.0.1",
            config.web.listen
        );
    }
    Ok(())
}

/// The router with every route this build serves.
pub fn router(state: impl Into<WebState>) -> Router {
    let state = state.into();
    Router::new()
        .route("/", get(|| async { Redirect::to("/runs") }))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::metrics_page))
        .route("/login", get(login::login_page).post(login::sign_in))
        .route("/login/dev", post(login::dev_sign_in))
        .route("/login/{token}", get(login::link_page))
        .route("/logout", post(login::sign_out))
        .route("/runs", get(runs_list::runs_page))
        .route("/runs/{id}", get(run_page::run_page))
        .route("/runs/{id}/log", get(run_files::run_log))
        .route("/runs/{id}/artifacts/{name}", get(run_files::artifact))
        .route("/runs/{id}/approve", get(decision::confirm_page))
        .route("/runs/{id}/decision", post(decision::decide))
        .route("/runs/{id}/review", post(decision::review))
        .route("/runs/{id}/cancel", post(run_page::cancel))
        .route("/scripts", get(scripts::scripts_page))
        .route("/scripts/{name}", get(scripts::script_page))
        .route(
            "/scripts/{name}/run",
            // Room for a file parameter's largest file, and the form around it.
            post(run_form::start_run).layer(axum::extract::DefaultBodyLimit::max(
                crate::manifest::MAX_FILE_SIZE as usize + 1024 * 1024,
            )),
        )
        .route("/audit", get(audit_page::audit_page))
        .route(
            "/account/tokens",
            get(tokens::tokens_page).post(tokens::create_token),
        )
        .route("/account/tokens/{id}/revoke", post(tokens::revoke_token))
        .route("/account/2fa", get(two_factor::page_2fa))
        .route("/account/2fa/enrol", post(two_factor::enrol))
        .route("/account/2fa/confirm", post(two_factor::confirm))
        .nest("/api/v1", api::routes())
        .with_state(state.clone())
        .merge(crate::runners::router(state.engine().clone()))
        .layer(axum::middleware::map_response(security_headers))
        .layer(axum::middleware::map_response(error::log_server_errors))
        .layer(axum::middleware::from_fn(metrics::track_http))
}

/// No framing, no referrer (audit-link and sign-in tokens live in URLs), no
/// script at all, and nothing cached.
async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

/// Alive, and the database answers.
async fn healthz(State(state): State<WebState>) -> (StatusCode, &'static str) {
    match state.engine().store().ping().await {
        Ok(_) => (StatusCode::OK, "ok\n"),
        Err(e) => {
            tracing::error!(error = %e, "health check: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n")
        }
    }
}

/// Ready to serve: the database answers and every registered part (adapters)
/// says it is connected. 503 with the list otherwise.
async fn readyz(State(state): State<WebState>) -> impl IntoResponse {
    let db = state.engine().store().ping().await;
    let parts = state.readiness().snapshot();
    let mut ready = db.is_ok();
    let mut body = format!(
        "database {}\n",
        if db.is_ok() { "ok" } else { "unreachable" }
    );
    for (name, ok) in &parts {
        ready &= *ok;
        body.push_str(&format!(
            "{name} {}\n",
            if *ok { "ok" } else { "not ready" }
        ));
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        format!("{}\n{body}", if ready { "ready" } else { "not ready" }),
    )
}
