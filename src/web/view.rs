//! What a person may see and do from the web, shared by pages and the API. The
//! answers come from the engine and policy, never from rules of the web's own.

use super::WebError;
use crate::engine::Engine;
use crate::manifest::{Manifest, Principal};
use crate::policy;
use crate::store::web::Visibility;
use crate::store::{Run, StoreError};
use crate::types::{Actor, PersonId, Place, Platform, RunId, RunState};

/// Where web requests come from, for policy and `[channels]`: `web:local`.
pub fn web_place() -> Place {
    Place::new(Platform::Web, "local")
}

/// The SQL form of `Engine::may_view` for listings: everything for admins, else the
/// person's own runs and every run of a script they may run or approve (named as a
/// person or through a group; `anyone` does not count, as in `may_view`).
pub(super) fn visibility(engine: &Engine, person: &PersonId, admin: bool) -> Visibility {
    if admin {
        return Visibility::All;
    }
    let config = engine.config();
    let scripts = engine
        .catalog()
        .iter()
        .filter(|m| {
            m.access
                .run
                .iter()
                .chain(m.approval.iter().flat_map(|a| a.approvers.iter()))
                .any(|p| !matches!(p, Principal::Anyone) && p.includes(Some(person), config))
        })
        .map(|m| m.name.to_string())
        .collect();
    Visibility::Person {
        person: person.to_string(),
        scripts,
    }
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
    if run.state != RunState::AwaitingApproval {
        return false;
    }
    let requester = run.requester_person.clone().map(PersonId);
    engine
        .manifest(&run.script)
        .is_some_and(|m| policy::may_decide(engine.config(), &m, actor, requester.as_ref()).is_ok())
}

/// Whether `actor` may cancel `run`: its requester or an approver of its script,
/// while it has not finished (the engine checks again).
pub(super) fn may_cancel(engine: &Engine, actor: &Actor, run: &Run) -> bool {
    if run.state.is_final() {
        return false;
    }
    let Some(person) = actor.person() else {
        return false;
    };
    run.requester_person.as_deref() == Some(person.as_str())
        || engine
            .manifest(&run.script)
            .is_some_and(|m| policy::may_decide(engine.config(), &m, actor, None).is_ok())
}

/// Whether `actor` may ask for `manifest` from the web.
pub(super) fn may_run(engine: &Engine, actor: &Actor, manifest: &Manifest) -> policy::Access {
    policy::may_run(engine.config(), manifest, actor, &web_place())
}

/// The next `n` firings of each schedule of `manifest`, formatted in the schedule's
/// own time zone.
pub(super) fn next_fires(s: &crate::manifest::Schedule, n: usize) -> Vec<String> {
    match s.cron_schedule() {
        Ok(c) => c
            .upcoming(s.timezone)
            .take(n)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S %Z").to_string())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// `key=value` pairs as a person would type them.
pub(super) fn args_text(args: &crate::manifest::Args) -> String {
    args.iter()
        .map(|(k, v)| format!("{k}={}", crate::command::quote_if_needed(&v.to_arg())))
        .collect::<Vec<_>>()
        .join(" ")
}
