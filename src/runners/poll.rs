//! `POST /runner/v1/poll`: the call a runner always keeps open. It renews the
//! leases of the runs the runner holds (answering those it lost), and waits
//! until there is a run for it and a free slot, or a cancel for a run it holds,
//! or the wait is over. Claims are the store's transition `queued → running`,
//! so no run is handed out twice.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde_json::json;

use super::RunnerApi;
use super::auth::RunnerCaller;
use super::error::{JsonBody, RunnerApiError};
use crate::store::{Durability, Edit, Note, RunnerIdentity, Transition};
use crate::types::{RunId, RunState};
use execgov_runner::protocol::{Job, PollRequest, PollResponse};

/// How often a waiting poll looks at the database when nothing woke it (runs
/// queued and cancels asked through another server).
const LOOK_EVERY: Duration = Duration::from_millis(250);
/// The longest a poll is held, whatever the runner asks.
const MAX_WAIT: Duration = Duration::from_secs(25);

pub(super) async fn poll(
    State(api): State<RunnerApi>,
    RunnerCaller(runner): RunnerCaller,
    JsonBody(req): JsonBody<PollRequest>,
) -> Result<Json<PollResponse>, RunnerApiError> {
    let engine = &api.engine;
    if !req.tags.is_empty() && !same_tags(&req.tags, &runner.tags) {
        return Err(RunnerApiError::Forbidden(format!(
            "runner {} is enrolled with tags [{}], but says [{}]: fix --tags, or enrol it again \
             with the tags it should have",
            runner.name,
            runner.tags.join(", "),
            req.tags.join(", ")
        )));
    }
    let lease = api.lease();
    let lease_ms = lease.as_millis() as i64;
    let now = engine.now();
    let holding: Vec<(RunId, bool)> = req
        .holding
        .iter()
        .map(|h| (RunId(h.run), h.started))
        .collect();
    let lost = engine
        .store()
        .runner_poll(
            &runner.name,
            holding.clone(),
            i64::from(req.free_slots),
            now + lease_ms,
            now,
        )
        .await?;
    let held: Vec<RunId> = holding
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !lost.contains(id))
        .collect();
    let wait = Duration::from_millis(req.wait_ms)
        .min(lease / 3)
        .min(MAX_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    let wake = engine.wake_handle();
    loop {
        let woken = wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let cancel = engine.store().cancel_requested(&held).await?;
        let jobs = claim(&api, &runner, req.free_slots, lease_ms).await?;
        let now_t = tokio::time::Instant::now();
        if !cancel.is_empty() || !jobs.is_empty() || !lost.is_empty() || now_t >= deadline {
            return Ok(Json(PollResponse {
                jobs,
                cancel: cancel.into_iter().map(|r| r.0).collect(),
                lost: lost.into_iter().map(|r| r.0).collect(),
                lease_ms: lease_ms as u64,
            }));
        }
        tokio::select! {
            _ = &mut woken => {}
            _ = tokio::time::sleep(LOOK_EVERY.min(deadline - now_t)) => {}
        }
    }
}

fn same_tags(a: &[String], b: &[String]) -> bool {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort();
    a.dedup();
    b.sort();
    b.dedup();
    a == b
}

/// Up to `slots` runs for `runner`, claimed together and each turned into a
/// job. A run whose manifest changed since it was requested fails instead
/// (audited); its slot waits for the next poll.
async fn claim(
    api: &RunnerApi,
    runner: &RunnerIdentity,
    slots: u32,
    lease_ms: i64,
) -> Result<Vec<Job>, RunnerApiError> {
    let engine = &api.engine;
    let mut jobs = Vec::new();
    let claimed = engine
        .store()
        .claim_runs(runner, slots as usize, lease_ms, engine.now())
        .await?;
    for run in claimed {
        engine.emit(&run);
        match super::job::build(engine, &run) {
            Ok(mut job) => {
                job.inputs = super::job::inputs(engine, &run).await?;
                jobs.push(job)
            }
            Err(why) => {
                tracing::warn!(run_id = %run.id, %why, "a claimed run cannot run");
                let note = Note::moved(
                    &format!("runner:{}", runner.name),
                    RunState::Failed,
                    json!({ "error": why }),
                    engine.now(),
                );
                let failed = engine
                    .store()
                    .transition(
                        Transition {
                            id: run.id,
                            to: RunState::Failed,
                            note,
                            edit: Edit::new(move |r| r.error = Some(why)),
                        },
                        Durability::Relaxed,
                    )
                    .await?;
                engine.emit(&failed);
            }
        }
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::same_tags;

    #[test]
    fn tags_compare_as_sets() {
        let s = |v: &[&str]| v.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        assert!(same_tags(&s(&["eu", "db"]), &s(&["db", "eu"])));
        assert!(!same_tags(&s(&["db"]), &s(&["db", "eu"])));
    }
}
