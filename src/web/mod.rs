//! The HTTP side, on one listener: `/healthz` and the audit-link pages
//! (`/runs/{id}?t=…`, its full log and artifacts). The full audit UI, the JSON
//! API and the Slack endpoints join this router in their own modules.

mod error;
mod run_page;

pub use error::WebError;

use crate::engine::Engine;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use std::sync::Arc;

/// The router with every route this build serves.
pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/runs/{id}", get(run_page::run_page))
        .route("/runs/{id}/log", get(run_page::run_log))
        .route("/runs/{id}/artifacts/{name}", get(run_page::artifact))
        .layer(axum::middleware::map_response(error::log_server_errors))
        .with_state(engine)
}

/// Alive, and the database answers.
async fn healthz(State(engine): State<Arc<Engine>>) -> (StatusCode, &'static str) {
    match engine.store().live_workers(0).await {
        Ok(_) => (StatusCode::OK, "ok\n"),
        Err(e) => {
            tracing::error!(error = %e, "health check: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n")
        }
    }
}
