//! The service's side of runners (see `docs/runners.md`): the `/runner/v1/`
//! routes through which runners enrol, claim runs, renew their leases, and
//! send logs, progress, files and outcomes. Runners never touch the database:
//! everything they say goes through here, and through the store's writes,
//! which check that a runner reports only on runs it holds.
//!
//! # Layout
//! - `auth.rs`: the runner behind a credential, or a refused (audited) call.
//! - `enrol.rs`: trading a one-time enrolment token for a credential.
//! - `poll.rs`: the long poll: leases, claims, cancels.
//! - `job.rs`: what a runner is told to run.
//! - `reports.rs`: log chunks, progress, files, the finish.
//! - `admin.rs`: enrol, list and revoke from the command line.
//! - `maintain.rs`: expiring approval requests and lapsed leases.
//! - `error.rs`: what a refused call answers.

mod admin;
mod auth;
mod enrol;
mod error;
mod job;
mod maintain;
mod output;
mod poll;
mod reports;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};

use crate::engine::Engine;

pub use admin::{enrolment_token, list_runners, revoke_runner};
pub use maintain::maintain_until_stopped;

/// The largest log chunk a runner may send in one call.
pub const MAX_LOG_CHUNK: usize = 1 << 20;

/// What the runner routes share.
#[derive(Debug, Clone)]
pub struct RunnerApi {
    engine: Arc<Engine>,
}

impl RunnerApi {
    fn lease(&self) -> Duration {
        self.engine.config().runner.lease
    }
}

/// The `/runner/v1/` routes, to merge into the service's router.
pub fn router(engine: Arc<Engine>) -> Router {
    let artifact_cap = engine.config().runner.artifact_cap as usize;
    let api = RunnerApi { engine };
    Router::new()
        .route("/runner/v1/enrol", post(enrol::enrol))
        .route("/runner/v1/poll", post(poll::poll))
        .route(
            "/runner/v1/runs/{id}/log",
            post(reports::log).layer(DefaultBodyLimit::max(MAX_LOG_CHUNK)),
        )
        .route("/runner/v1/runs/{id}/progress", post(reports::progress))
        .route(
            "/runner/v1/runs/{id}/artifacts/{name}",
            put(reports::artifact).layer(DefaultBodyLimit::max(artifact_cap)),
        )
        .route("/runner/v1/runs/{id}/finish", post(reports::finish))
        .route("/runner/v1/runs/{id}/inputs/{n}", get(reports::input))
        .with_state(api)
}
