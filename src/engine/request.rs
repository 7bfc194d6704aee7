//! `run` and `explain`: find the manifest, type the arguments, ask policy, and
//! record the run in the state policy decided (refused, awaiting approval, queued).

use super::{Engine, Reply, ReplyKind};
use crate::manifest::{Args, Manifest};
use crate::policy::{self, Access, ApprovalNeed};
use crate::store::NewRun;
use crate::types::{Actor, Place, RunState};
use serde_json::json;

/// Arguments and policy for a request, worked out without writing anything.
struct Assessment {
    manifest: Manifest,
    args: Args,
    access: Access,
    approval: Option<ApprovalNeed>,
}

impl Engine {
    /// Types the arguments and asks policy. `Err(text)` is a usage error for the requester.
    fn assess(
        &self,
        actor: &Actor,
        place: &Place,
        script: &str,
        raw: &[(String, String)],
    ) -> Result<Assessment, String> {
        let Some(manifest) = self.manifest(script) else {
            return Err(self.unknown_script(script));
        };
        let args = manifest
            .validate_args(raw)
            .map_err(|e| format!("{e}\nusage: {}", short_usage(&manifest)))?;
        let access = policy::may_run(&self.config, &manifest, actor, place);
        let approval = policy::approval_need_for(&self.config, &manifest, actor);
        Ok(Assessment {
            manifest,
            args,
            access,
            approval,
        })
    }

    /// `run <script> key=value …`: records the run and answers at once.
    #[tracing::instrument(skip_all, fields(script = script))]
    pub async fn request_run(
        &self,
        actor: &Actor,
        place: &Place,
        script: &str,
        raw: &[(String, String)],
    ) -> anyhow::Result<Reply> {
        let now = self.now();
        let a = match self.assess(actor, place, script, raw) {
            Ok(a) => a,
            Err(message) => {
                let details = json!({ "script": script, "args": raw_args_json(raw), "place": place, "reason": message });
                self.store
                    .audit(&actor.audit_name(), "run.refused", None, details, now)
                    .await?;
                return Ok(Reply::error(message));
            }
        };
        self.record_run(actor, place, a, None).await
    }

    /// Records a run from already-typed arguments (schedules, web forms). A
    /// schedule's fire (actor `Actor::Schedule`) passes its `schedule_key`, unique in
    /// the store, and needs approval only where its manifest says `scheduled = "required"`.
    pub async fn request_typed(
        &self,
        actor: &Actor,
        place: &Place,
        manifest: &Manifest,
        args: Args,
        schedule_key: Option<String>,
    ) -> anyhow::Result<Reply> {
        let a = Assessment {
            access: policy::may_run(&self.config, manifest, actor, place),
            approval: policy::approval_need_for(&self.config, manifest, actor),
            manifest: manifest.clone(),
            args,
        };
        self.record_run(actor, place, a, schedule_key).await
    }

    async fn record_run(
        &self,
        actor: &Actor,
        place: &Place,
        a: Assessment,
        schedule_key: Option<String>,
    ) -> anyhow::Result<Reply> {
        let now = self.now();
        let m = &a.manifest;
        // The digest of the manifest and its script as they are now: an approval
        // is bound to it, and the worker refuses to run anything else.
        let digest = m.current_digest()?;
        let (state, reason) = match (&a.access, &a.approval) {
            (Access::Refused(why), _) => (RunState::Refused, Some(why.clone())),
            (Access::Allowed, Some(need)) if need.eligible.len() < need.quorum as usize => (
                RunState::Refused,
                Some(format!(
                    "`{}` needs {} approval(s) but only {} person(s) other than the requester can give them ({})",
                    m.name,
                    need.quorum,
                    need.eligible.len(),
                    need.approvers.join(", ")
                )),
            ),
            (Access::Allowed, Some(_)) => (RunState::AwaitingApproval, None),
            (Access::Allowed, None) => (RunState::Queued, None),
        };
        let need = a.approval.as_ref();
        let new = NewRun {
            script: m.name.to_string(),
            args: serde_json::to_value(&a.args)?,
            requester: actor.audit_name(),
            requester_person: actor.person().map(|p| p.to_string()),
            place: serde_json::to_value(place)?,
            manifest_digest: digest,
            max_concurrent: m.max_concurrent as i64,
            timeout_ms: m.timeout.as_millis() as i64,
            risk: if m.risk == crate::manifest::Risk::High {
                "high"
            } else {
                "low"
            }
            .into(),
            state,
            reason: reason.clone(),
            quorum: need.map(|n| n.quorum as i64).unwrap_or(0),
            approvers: json!({
                "principals": need.map(|n| n.approvers.clone()).unwrap_or_default(),
                "eligible": need.map(|n| n.eligible.iter().map(|p| p.to_string()).collect::<Vec<_>>()).unwrap_or_default(),
                "channel": need.and_then(|n| n.channel.clone()),
            }),
            expires_at: need.map(|n| now + n.expires_ms),
            schedule_key,
        };
        let run = self.store.create_run(new, now).await?;
        self.emit(&run);
        let cmdline = format!("{} {}", run.script, args_text(&a.args));
        let text = match state {
            RunState::Refused => {
                return Ok(Reply {
                    kind: ReplyKind::Error,
                    text: format!(
                        "refused: {} (recorded as run {})",
                        reason.unwrap_or_default(),
                        run.id
                    ),
                    run: Some(run),
                });
            }
            RunState::AwaitingApproval => {
                let need = need.expect("awaiting approval has a need");
                format!(
                    "run {} ({}) awaits approval: {} of {} (expires {})",
                    run.id,
                    cmdline.trim(),
                    need.quorum,
                    need.eligible
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    crate::clock::format_ms(run.expires_at.unwrap_or(now)),
                )
            }
            _ => format!("run {} ({}) is queued", run.id, cmdline.trim()),
        };
        Ok(Reply {
            kind: ReplyKind::Accepted,
            text,
            run: Some(run),
        })
    }

    /// `explain <script> …`: what would happen, without running or recording a run.
    pub async fn explain(
        &self,
        actor: &Actor,
        place: &Place,
        script: &str,
        raw: &[(String, String)],
    ) -> anyhow::Result<Reply> {
        let a = match self.assess(actor, place, script, raw) {
            Ok(a) => a,
            Err(message) => return Ok(Reply::error(message)),
        };
        let m = &a.manifest;
        let mut out = format!("`{}` for {actor} at {place}:\n", m.name);
        match &a.access {
            Access::Allowed => out.push_str("- you may ask for it here\n"),
            Access::Refused(why) => out.push_str(&format!("- you may not: {why}\n")),
        }
        match &a.approval {
            None => out.push_str("- it runs without approval\n"),
            Some(need) => {
                let who: Vec<String> = need.eligible.iter().map(|p| p.to_string()).collect();
                out.push_str(&format!(
                    "- it needs {} approval(s) from {} ({}), expiring after {}\n",
                    need.quorum,
                    need.approvers.join(", "),
                    if who.is_empty() {
                        "nobody else can approve".to_string()
                    } else {
                        who.join(", ")
                    },
                    crate::clock::format_duration_ms(need.expires_ms),
                ));
                if let Some(ch) = &need.channel {
                    out.push_str(&format!("- the request goes to the `{ch}` channel\n"));
                }
            }
        }
        let argv = m.argv(&a.args);
        out.push_str(&format!("- it would run: {}\n", argv_text(&argv)));
        out.push_str(&format!(
            "- timeout {}, at most {} at once",
            humantime::format_duration(m.timeout),
            m.max_concurrent
        ));
        Ok(Reply::info(out))
    }
}

fn raw_args_json(raw: &[(String, String)]) -> serde_json::Value {
    serde_json::Value::Object(raw.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

/// `key=value` pairs as a person would type them back.
pub fn args_text(args: &Args) -> String {
    args.iter()
        .map(|(k, v)| format!("{k}={}", crate::command::quote_if_needed(&v.to_arg())))
        .collect::<Vec<_>>()
        .join(" ")
}

/// An argv shown with each element quoted where needed, so one element reads as one.
pub fn argv_text(argv: &[String]) -> String {
    argv.iter()
        .map(|a| crate::command::quote_if_needed(a))
        .collect::<Vec<_>>()
        .join(" ")
}

fn short_usage(m: &Manifest) -> String {
    let params: Vec<String> = m.params.iter().map(|p| format!("{}=…", p.name)).collect();
    format!("run {} {}", m.name, params.join(" "))
        .trim_end()
        .to_string()
}
