//! Policy: who may run what, where, who may approve, cancel and see a run.
//! Pure functions over the config and a manifest; the engine and the web ask,
//! adapters never decide. [`names`] is the one place a person is matched
//! against a manifest's `who` entries.

use crate::config::Config;
use crate::manifest::{Catalog, Manifest, Principal, ScheduledApproval};
use crate::store::web::Visibility;
use crate::types::{Actor, PersonId, Place, Platform, RunState};
use std::collections::BTreeSet;

/// The answer to "may this actor run this script here?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Allowed,
    Refused(String),
}

/// What a run needs before it may start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalNeed {
    /// Distinct approvals needed.
    pub quorum: u32,
    /// People who may approve this request (the requester left out unless
    /// `self_approval = true`).
    pub eligible: BTreeSet<PersonId>,
    /// The approver principals as the manifest writes them, for display.
    pub approvers: Vec<String>,
    pub expires_ms: i64,
    /// The channel name approval requests are posted to.
    pub channel: Option<String>,
}

/// Whether `actor` may ask for `manifest` at `place`.
pub fn may_run(config: &Config, manifest: &Manifest, actor: &Actor, place: &Place) -> Access {
    if let Actor::Schedule { .. } | Actor::System = actor {
        return Access::Allowed;
    }
    let who_ok = manifest
        .access
        .run
        .iter()
        .any(|p| names(config, p, actor.person()));
    if !who_ok {
        let who = match actor {
            Actor::Unknown { via } => format!(
                "{via} is not mapped to a configured person, and `{}` is not open to anyone",
                manifest.name
            ),
            _ => format!(
                "{actor} may not run `{}` (allowed: {})",
                manifest.name,
                principals_text(&manifest.access.run)
            ),
        };
        return Access::Refused(who);
    }
    if !manifest.access.channels.is_empty() {
        let here = place_names(config, place);
        if !manifest.access.channels.iter().any(|c| here.contains(c)) {
            return Access::Refused(format!(
                "`{}` may not be run from {} (allowed channels: {})",
                manifest.name,
                place_label(place, &here),
                manifest.access.channels.join(", ")
            ));
        }
    }
    Access::Allowed
}

/// The approval a request by `requester` needs, or `None` when the script may run at once.
pub fn approval_need(
    config: &Config,
    manifest: &Manifest,
    requester: Option<&PersonId>,
) -> Option<ApprovalNeed> {
    if !manifest.risk.needs_approval() {
        return None;
    }
    let approval = manifest.approval.as_ref()?;
    let mut eligible: BTreeSet<PersonId> = approval
        .approvers
        .iter()
        .flat_map(|p| people_named(config, p))
        .collect();
    if !approval.self_approval
        && let Some(r) = requester
    {
        eligible.remove(r);
    }
    Some(ApprovalNeed {
        quorum: approval.quorum.max(1),
        eligible,
        approvers: approval.approvers.iter().map(principal_text).collect(),
        expires_ms: approval.expires.as_millis() as i64,
        channel: approval.channel.clone(),
    })
}

/// The approval a request by `actor` needs. A schedule's fire needs none unless its
/// manifest says `[approval] scheduled = "required"` (the schedule was reviewed with
/// the manifest); then it needs what any request needs, with nobody as the requester.
pub fn approval_need_for(
    config: &Config,
    manifest: &Manifest,
    actor: &Actor,
) -> Option<ApprovalNeed> {
    if let Actor::Schedule { .. } = actor {
        let required = manifest
            .approval
            .as_ref()
            .is_some_and(|a| a.scheduled == ScheduledApproval::Required);
        if !required {
            return None;
        }
    }
    approval_need(config, manifest, actor.person())
}

/// Why `approver` may not decide on a run requested by `requester`, if so.
pub fn may_decide(
    config: &Config,
    manifest: &Manifest,
    approver: &Actor,
    requester: Option<&PersonId>,
) -> Result<PersonId, String> {
    let Some(person) = approver.person() else {
        return Err(format!(
            "{approver} is not a configured person and cannot approve"
        ));
    };
    let Some(approval) = manifest.approval.as_ref() else {
        return Err(format!("`{}` has no [approval] section", manifest.name));
    };
    if requester == Some(person) && !approval.self_approval {
        return Err(format!(
            "{person} requested this run and may not approve or deny it; approvers: {}",
            principals_text(&approval.approvers)
        ));
    }
    let listed = approval
        .approvers
        .iter()
        .any(|p| !matches!(p, Principal::Anyone) && names(config, p, Some(person)));
    if !listed {
        return Err(format!(
            "{person} is not an approver of `{}` (approvers: {})",
            manifest.name,
            principals_text(&approval.approvers)
        ));
    }
    Ok(person.clone())
}

/// Whether `actor` may start a run without waiting for its approval
/// (`[access] break_glass`): `Err` says why not.
pub fn may_break_glass(config: &Config, actor: &Actor) -> Result<(), String> {
    let named = config
        .access
        .break_glass
        .iter()
        .filter_map(|p| Principal::parse(p).ok())
        .any(|p| !matches!(p, Principal::Anyone) && names(config, &p, actor.person()));
    if named {
        return Ok(());
    }
    Err(if config.access.break_glass.is_empty() {
        "break-glass is not enabled here ([access] break_glass names nobody)".to_string()
    } else {
        format!(
            "{actor} may not break glass (allowed: {})",
            config.access.break_glass.join(", ")
        )
    })
}

/// Whether principal `p` names `person` (`None`: an actor that maps to no
/// configured person). `anyone` names everyone, unknown accounts included.
pub fn names(config: &Config, p: &Principal, person: Option<&PersonId>) -> bool {
    match (p, person) {
        (Principal::Anyone, _) => true,
        (Principal::Person(want), Some(have)) => want == have,
        (Principal::Group(g), Some(have)) => config.group(g).is_some_and(|m| m.contains(have)),
        _ => false,
    }
}

/// Whether `person` is named by one of `ps` as a person or through a group
/// (`anyone` does not count: it names nobody in particular).
fn names_in_person(config: &Config, ps: &[Principal], person: &PersonId) -> bool {
    ps.iter()
        .any(|p| !matches!(p, Principal::Anyone) && names(config, p, Some(person)))
}

/// The configured people `p` names (`anyone`: every configured person).
pub fn people_named(config: &Config, p: &Principal) -> Vec<PersonId> {
    match p {
        Principal::Anyone => config.people.keys().cloned().collect(),
        Principal::Person(x) => vec![x.clone()],
        Principal::Group(g) => config.group(g).map(|m| m.to_vec()).unwrap_or_default(),
    }
}

/// Whether `person` is a web admin, who sees every run.
pub fn is_admin(config: &Config, person: &PersonId) -> bool {
    config.web.admins.iter().any(|a| a == person.as_str())
}

/// The people who may see runs of `manifest`, besides their requesters and
/// the admins: whoever may run or approve it, named as a person or through a
/// group, at the top level or in any of its `[[rule]]`s.
fn sees_script(config: &Config, manifest: &Manifest, person: &PersonId) -> bool {
    let named =
        |ps: Option<&Vec<Principal>>| ps.is_some_and(|ps| names_in_person(config, ps, person));
    named(Some(&manifest.access.run))
        || named(manifest.approval.as_ref().map(|a| &a.approvers))
        || manifest
            .rules
            .iter()
            .any(|r| named(r.run.as_ref()) || named(r.approvers.as_ref()))
}

/// Whether `actor` may see a run of `manifest` (None: no longer registered)
/// requested by `requester`: its requester, anyone who may run or approve
/// that script, the web admins, and ExecGov itself.
pub fn may_view(
    config: &Config,
    manifest: Option<&Manifest>,
    actor: &Actor,
    requester: Option<&PersonId>,
) -> bool {
    let Some(person) = actor.person() else {
        return matches!(actor, Actor::System);
    };
    requester == Some(person)
        || is_admin(config, person)
        || manifest.is_some_and(|m| sees_script(config, m, person))
}

/// [`may_view`] for listings, as a filter the store applies in SQL.
pub fn visibility(config: &Config, catalog: &Catalog, actor: &Actor) -> Visibility {
    let person = match actor {
        Actor::System => return Visibility::All,
        Actor::Person { person, .. } if is_admin(config, person) => return Visibility::All,
        Actor::Person { person, .. } => person,
        // An unmapped account sees nothing: no run has it as a configured requester.
        _ => {
            return Visibility::Person {
                person: String::new(),
                scripts: Vec::new(),
            };
        }
    };
    let scripts = catalog
        .iter()
        .filter(|m| sees_script(config, m, person))
        .map(|m| m.name.to_string())
        .collect();
    Visibility::Person {
        person: person.to_string(),
        scripts,
    }
}

/// Whether `actor` may approve or deny a run in `state` now.
pub fn may_decide_now(
    config: &Config,
    manifest: Option<&Manifest>,
    actor: &Actor,
    requester: Option<&PersonId>,
    state: RunState,
) -> bool {
    state == RunState::AwaitingApproval
        && manifest.is_some_and(|m| may_decide(config, m, actor, requester).is_ok())
}

/// Whether `actor` may cancel a run: its requester or an approver of its
/// script (whether the run can still be cancelled is the store's answer).
pub fn may_cancel(
    config: &Config,
    manifest: Option<&Manifest>,
    actor: &Actor,
    requester: Option<&PersonId>,
) -> bool {
    let Some(person) = actor.person() else {
        return false;
    };
    requester == Some(person)
        || manifest.is_some_and(|m| may_decide(config, m, actor, None).is_ok())
}

/// Channel names for a place. The CLI and the web are the places `cli:local`
/// and `web:local`, which a `[channels]` entry may list like any other.
fn place_names(config: &Config, place: &Place) -> Vec<String> {
    config.channel_names_for(place)
}

fn place_label(place: &Place, names: &[String]) -> String {
    let base = match place.platform {
        Platform::Cli => "the command line".to_string(),
        Platform::Web => "the web UI".to_string(),
        _ => place.key(),
    };
    if names.is_empty() {
        base
    } else {
        format!("{base} ({})", names.join(", "))
    }
}

pub fn principal_text(p: &Principal) -> String {
    match p {
        Principal::Anyone => "anyone".into(),
        Principal::Person(x) => format!("person:{x}"),
        Principal::Group(g) => format!("group:{g}"),
    }
}

pub fn principals_text(ps: &[Principal]) -> String {
    if ps.is_empty() {
        "nobody".into()
    } else {
        ps.iter().map(principal_text).collect::<Vec<_>>().join(", ")
    }
}
