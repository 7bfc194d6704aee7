//! Policy: who may run what, where, and who may approve. Pure functions over
//! the config and a manifest; the engine asks, adapters never decide.

use crate::config::Config;
use crate::manifest::{Manifest, Principal, Risk, ScheduledApproval};
use crate::types::{Actor, PersonId, Place, Platform};
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
        .any(|p| principal_matches(config, p, actor.person()));
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
    if manifest.risk != Risk::High {
        return None;
    }
    let approval = manifest.approval.as_ref()?;
    let mut eligible: BTreeSet<PersonId> = approval
        .approvers
        .iter()
        .flat_map(|p| expand(config, p))
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
        .any(|p| !matches!(p, Principal::Anyone) && principal_matches(config, p, Some(person)));
    if !listed {
        return Err(format!(
            "{person} is not an approver of `{}` (approvers: {})",
            manifest.name,
            principals_text(&approval.approvers)
        ));
    }
    Ok(person.clone())
}

fn principal_matches(config: &Config, p: &Principal, person: Option<&PersonId>) -> bool {
    match (p, person) {
        (Principal::Anyone, _) => true,
        (Principal::Person(want), Some(have)) => want == have,
        (Principal::Group(g), Some(have)) => config.group(g).is_some_and(|m| m.contains(have)),
        _ => false,
    }
}

fn expand(config: &Config, p: &Principal) -> Vec<PersonId> {
    match p {
        Principal::Anyone => config.people.keys().cloned().collect(),
        Principal::Person(x) => vec![x.clone()],
        Principal::Group(g) => config.group(g).map(|m| m.to_vec()).unwrap_or_default(),
    }
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
