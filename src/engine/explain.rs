//! `explain`: what a request would do, worked out once as an [`Explanation`];
//! the text answer (chat, CLI) and `explain --json` are both made from it, so
//! they cannot say different things.

use super::Engine;
use super::request::argv_text;
use crate::policy::Access;
use crate::types::{Actor, Place};
use serde::Serialize;
use std::time::Duration;

/// What would happen to `script` with these arguments, asked by this actor here.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub script: String,
    /// Who asks, as the answer names them.
    pub actor: String,
    /// Where it is asked from (`cli:local`, `slack:C0123`).
    pub place: String,
    pub may_run: bool,
    /// Why not, when `may_run` is false.
    pub why_not: Option<String>,
    /// None: it runs without approval.
    pub approval: Option<ApprovalExplained>,
    /// The argv the runner would start, one element per entry.
    pub argv: Vec<String>,
    pub runners: RunnersExplained,
    pub timeout_ms: u64,
    pub max_concurrent: u32,
    /// The manifest `[[rule]]` whose conditions held for these arguments, by
    /// name; null when none did (the top level governs).
    pub rule: Option<String>,
}

/// The approval a request would wait for.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalExplained {
    pub quorum: u32,
    /// The approvers as the manifest writes them (`group:sre-leads`).
    pub approvers: Vec<String>,
    /// The people who could approve this request (never the requester, unless
    /// `self_approval`).
    pub eligible: Vec<String>,
    /// How long the request waits before it expires.
    pub expires_ms: i64,
    /// The channel name approval requests go to.
    pub channel: Option<String>,
    /// Each approval needs the approver's second-factor code (`risk = "critical"`).
    pub step_up: bool,
}

/// Where the run would go.
#[derive(Debug, Clone, Serialize)]
pub struct RunnersExplained {
    /// The manifest's `runs_on` tags; empty: the service's own local runner.
    pub tags: Vec<String>,
    /// Enrolled runners with every tag, seen in the last minute (empty for local runs).
    pub live: Vec<String>,
}

impl Engine {
    /// Works out what `explain` answers, without running or recording
    /// anything. `Ok(Err(text))` is a usage error for the asker (an unknown
    /// script, arguments that do not fit).
    pub async fn explanation(
        &self,
        actor: &Actor,
        place: &Place,
        script: &str,
        raw: &[(String, String)],
    ) -> anyhow::Result<Result<Explanation, String>> {
        let a = match self.assess(actor, place, script, raw, &[], true) {
            Ok(a) => a,
            Err((message, _)) => return Ok(Err(message)),
        };
        let m = &a.manifest;
        let (may_run, why_not) = match &a.access {
            Access::Allowed => (true, None),
            Access::Refused(why) => (false, Some(why.clone())),
        };
        let approval = a.approval.as_ref().map(|need| ApprovalExplained {
            quorum: need.quorum,
            approvers: need.approvers.clone(),
            eligible: need.eligible.iter().map(|p| p.to_string()).collect(),
            expires_ms: need.expires_ms,
            channel: need.channel.clone(),
            step_up: m.risk.needs_step_up(),
        });
        let live = if m.runs_on.is_empty() {
            Vec::new()
        } else {
            self.live_runners_for(&m.runs_on).await?
        };
        Ok(Ok(Explanation {
            script: m.name.to_string(),
            actor: actor.to_string(),
            place: place.to_string(),
            may_run,
            why_not,
            approval,
            argv: m.argv(&a.args),
            runners: RunnersExplained {
                tags: m.runs_on.clone(),
                live,
            },
            timeout_ms: m.timeout.as_millis() as u64,
            max_concurrent: m.max_concurrent,
            rule: a.rule.clone(),
        }))
    }
}

impl Explanation {
    /// The answer as chat and the CLI show it.
    pub fn text(&self) -> String {
        let mut out = format!("`{}` for {} at {}:\n", self.script, self.actor, self.place);
        if let Some(rule) = &self.rule {
            out.push_str(&format!("- rule `{rule}` applies to these arguments\n"));
        }
        match &self.why_not {
            None => out.push_str("- you may ask for it here\n"),
            Some(why) => out.push_str(&format!("- you may not: {why}\n")),
        }
        match &self.approval {
            None => out.push_str("- it runs without approval\n"),
            Some(need) => {
                out.push_str(&format!(
                    "- it needs {} approval(s) from {} ({}), expiring after {}\n",
                    need.quorum,
                    need.approvers.join(", "),
                    if need.eligible.is_empty() {
                        "nobody else can approve".to_string()
                    } else {
                        need.eligible.join(", ")
                    },
                    humantime::format_duration(Duration::from_millis(need.expires_ms as u64)),
                ));
                if need.step_up {
                    out.push_str(
                        "- it is critical: each approver types a 2FA code when approving\n",
                    );
                }
                if let Some(ch) = &need.channel {
                    out.push_str(&format!("- the request goes to the `{ch}` channel\n"));
                }
            }
        }
        out.push_str(&format!("- it would run: {}\n", argv_text(&self.argv)));
        if self.runners.tags.is_empty() {
            out.push_str("- on the service's own local runner\n");
        } else {
            out.push_str(&format!(
                "- on a runner with tags {} ({})\n",
                self.runners.tags.join(", "),
                if self.runners.live.is_empty() {
                    "none is live now: it would wait for one".to_string()
                } else {
                    format!("live now: {}", self.runners.live.join(", "))
                }
            ));
        }
        out.push_str(&format!(
            "- timeout {}, at most {} at once",
            humantime::format_duration(Duration::from_millis(self.timeout_ms)),
            self.max_concurrent
        ));
        out
    }
}
