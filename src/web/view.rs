//! What a person may see and do from the web, shared by pages and the API. The
//! answers come from the engine and policy, never from rules of the web's own.

use super::WebError;
use crate::engine::Engine;
use crate::manifest::Manifest;
use crate::policy;
use crate::store::web::Visibility;
use crate::store::{Run, StoreError};
use crate::types::{Actor, Place, Platform, RunId};

/// Where web requests come from, for policy and `[channels]`: `web:local`.
pub fn web_place() -> Place {
    Place::new(Platform::Web, "local")
}

/// The SQL form of `Engine::may_view` for listings (see [`policy::visibility`]).
pub(super) fn visibility(engine: &Engine, actor: &Actor) -> Visibility {
    policy::visibility(engine.config(), &engine.catalog(), actor)
}

/// The run, if it exists and `actor` may see it. Otherwise the same 404 either way,
/// so a person learns nothing about runs they may not see.
pub(super) async fn visible_run(
    engine: &Engine,
    actor: &Actor,
    id: RunId,
) -> Result<Run, WebError> {
    let missing = || WebError::NotFound(format!("no run {id}"));
    match engine.store().get_run(id).await {
        Ok(run) if engine.may_view(actor, &run) => Ok(run),
        Ok(_) | Err(StoreError::NotFound(_)) => Err(missing()),
        Err(e) => Err(e.into()),
    }
}

/// Whether `actor` may approve or deny `run` now (the engine checks again).
pub(super) fn may_decide(engine: &Engine, actor: &Actor, run: &Run) -> bool {
    let manifest = engine.governing(run);
    policy::may_decide_now(
        engine.config(),
        manifest.as_ref(),
        actor,
        run.requester_person.as_ref(),
        run.state,
    )
}

/// Whether `actor` may cancel `run`: its requester or an approver of its script,
/// while it has not finished (the engine checks again).
pub(super) fn may_cancel(engine: &Engine, actor: &Actor, run: &Run) -> bool {
    let manifest = engine.governing(run);
    !run.state.is_final()
        && policy::may_cancel(
            engine.config(),
            manifest.as_ref(),
            actor,
            run.requester_person.as_ref(),
        )
}

/// Whether `actor` may ask for `manifest` from the web.
pub(super) fn may_run(engine: &Engine, actor: &Actor, manifest: &Manifest) -> policy::Access {
    policy::may_run(engine.config(), manifest, actor, &web_place())
}

/// The next `n` firings of each schedule of `manifest`, formatted in the schedule's
/// own time zone.
pub(super) fn next_fires(s: &crate::manifest::Schedule, n: usize) -> Vec<String> {
    use crate::clock::Clock;
    crate::scheduler::FireTimes::of(s)
        .upcoming(crate::clock::SystemClock.now_ms(), n)
        .into_iter()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S %Z").to_string())
        .collect()
}

/// `key=value` pairs as a person would type them.
pub(super) fn args_text(args: &crate::manifest::Args) -> String {
    args.iter()
        .map(|(k, v)| format!("{k}={}", crate::command::quote_if_needed(&v.to_string())))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `actor` may review break-glass `run` now: it bypassed approval, is
/// not reviewed yet, and `actor` is one of its approvers other than its
/// requester (the engine checks again).
pub(super) fn may_review(engine: &Engine, actor: &Actor, run: &Run) -> bool {
    run.break_glass.is_some()
        && run.reviewed_by.is_none()
        && engine.governing(run).is_some_and(|m| {
            policy::may_decide(engine.config(), &m, actor, run.requester_person.as_ref()).is_ok()
        })
}
