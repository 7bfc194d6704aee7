//! `run` and `explain`: find the manifest, type the arguments, ask policy, and
//! record the run in the state policy decided (refused, awaiting approval, queued).

use super::break_glass::Glass;
use super::{Engine, Reply, ReplyKind};
use crate::manifest::{ArgError, Args, FileInput, Manifest};
use crate::policy::{self, Access, ApprovalNeed};
use crate::store::{Durability, NewRun};
use crate::types::{Actor, Approvers, Place, RunState};
use execgov_chat::Attachment;
use serde_json::json;

/// Arguments and policy for a request, worked out without writing anything.
pub(super) struct Assessment {
    /// The manifest as it governs these arguments (see [`Manifest::governed`]).
    pub(super) manifest: Manifest,
    /// The `[[rule]]` that held, if any.
    pub(super) rule: Option<String>,
    pub(super) args: Args,
    /// Files sent with the request, bound to its file parameters.
    pub(super) inputs: Vec<FileInput>,
    /// Start without waiting for the approval: the reason (checked by
    /// `Engine::break_glass`).
    pub(super) break_glass: Option<String>,
    pub(super) access: Access,
    pub(super) approval: Option<ApprovalNeed>,
}

/// What [`Engine::request_run_checked`] answers: the reply, and when the
/// arguments were why it refused, their error itself, so that a form can mark the
/// field it is about.
#[derive(Debug)]
pub struct RequestAnswer {
    pub reply: Reply,
    pub arg_error: Option<ArgError>,
    /// Refused before a run was recorded for who is asking (a break-glass
    /// they may not use, or without a reason): HTTP 403, not 404.
    pub forbidden: bool,
}

impl Engine {
    /// Types the arguments and asks policy. `Err((text, arg_error))` is a usage error
    /// for the requester: an unknown script, or arguments that do not fit.
    pub(super) fn assess(
        &self,
        actor: &Actor,
        place: &Place,
        script: &str,
        raw: &[(String, String)],
        files: &[Attachment],
        explain: bool,
    ) -> Result<Assessment, (String, Option<ArgError>)> {
        let Some(mut manifest) = self.manifest(script) else {
            return Err((self.unknown_script(script), None));
        };
        if explain {
            // `explain` sends no file: a file parameter is not missing there.
            for p in manifest.params.iter_mut() {
                if matches!(p.kind, crate::manifest::ParamKind::File { .. }) {
                    p.required = false;
                }
            }
        }
        let (args, inputs) = manifest.validate_with_files(raw, files).map_err(|e| {
            let text = format!("{e}\nusage: {}", short_usage(&manifest));
            (text, Some(e))
        })?;
        let mut a = self.assess_typed(actor, place, &manifest, args);
        a.inputs = inputs;
        Ok(a)
    }

    /// Policy for typed arguments: the rule that holds for them, who may ask,
    /// and what approval the request needs.
    fn assess_typed(
        &self,
        actor: &Actor,
        place: &Place,
        manifest: &Manifest,
        args: Args,
    ) -> Assessment {
        let (manifest, rule) = manifest.governed(&args);
        Assessment {
            access: policy::may_run(&self.config, &manifest, actor, place),
            approval: policy::approval_need_for(&self.config, &manifest, actor),
            manifest,
            rule,
            args,
            inputs: Vec::new(),
            break_glass: None,
        }
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
        Ok(self
            .request_run_checked(actor, place, script, raw, &[], None)
            .await?
            .reply)
    }

    /// [`Engine::request_run`], also handing back the argument error when that is
    /// why it refused (the web form marks the field). Every channel's request,
    /// refused or not, leaves its audit entry here. `break_glass`: the reason
    /// to start without waiting for the approval the run needs (`run!`; see
    /// `docs/break-glass.md`). `files`: what came with the request, for its
    /// file parameters (`docs/files.md`).
    pub async fn request_run_checked(
        &self,
        actor: &Actor,
        place: &Place,
        script: &str,
        raw: &[(String, String)],
        files: &[Attachment],
        break_glass: Option<&str>,
    ) -> anyhow::Result<RequestAnswer> {
        let now = self.now();
        let a = match self.assess(actor, place, script, raw, files, false) {
            Ok(a) => a,
            Err((message, arg_error)) => {
                let sent: Vec<serde_json::Value> = files
                    .iter()
                    .map(|f| json!({ "name": f.name, "bytes": f.data.len() }))
                    .collect();
                let details = json!({ "script": script, "args": raw_args_json(raw), "files": sent, "place": place, "reason": message });
                self.store
                    .audit(&actor.audit_name(), "run.refused", None, details, now)
                    .await?;
                return Ok(RequestAnswer {
                    reply: Reply::error(message),
                    arg_error,
                    forbidden: false,
                });
            }
        };
        let mut a = a;
        let mut note = None;
        if let Some(reason) = break_glass {
            match self.break_glass(actor, script, raw, &a, reason).await? {
                Glass::Bypass(reason) => a.break_glass = Some(reason),
                Glass::Plain => {}
                Glass::NotNeeded => {
                    note =
                        Some("it needs no approval, so it was asked for as usual (not break-glass)")
                }
                Glass::Refused(reply) => {
                    return Ok(RequestAnswer {
                        reply: *reply,
                        arg_error: None,
                        forbidden: true,
                    });
                }
            }
        }
        let mut reply = self
            .record_run(actor, place, a, None, Durability::Synced)
            .await?;
        if let Some(note) = note {
            reply.text = format!("{}; {note}", reply.text);
        }
        Ok(RequestAnswer {
            reply,
            arg_error: None,
            forbidden: false,
        })
    }

    /// Records a run from already-typed arguments (schedules, web forms). A
    /// schedule's fire (actor `Actor::Schedule`) passes its `schedule_key`, unique
    /// in the store, and needs approval only where its manifest says
    /// `scheduled = "required"`. `durability`: `Synced` when someone is told the
    /// answer, `Relaxed` for a schedule's fire.
    pub async fn request_typed(
        &self,
        actor: &Actor,
        place: &Place,
        manifest: &Manifest,
        args: Args,
        schedule_key: Option<String>,
        durability: Durability,
    ) -> anyhow::Result<Reply> {
        let a = self.assess_typed(actor, place, manifest, args);
        self.record_run(actor, place, a, schedule_key, durability)
            .await
    }

    async fn record_run(
        &self,
        actor: &Actor,
        place: &Place,
        a: Assessment,
        schedule_key: Option<String>,
        durability: Durability,
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
            (Access::Allowed, Some(_)) if a.break_glass.is_some() => (RunState::Queued, None),
            (Access::Allowed, Some(_)) => (RunState::AwaitingApproval, None),
            (Access::Allowed, None) => (RunState::Queued, None),
        };
        let need = a.approval.as_ref();
        let new = NewRun {
            script: m.name.to_string(),
            args: a.args.clone(),
            requester: actor.audit_name(),
            requester_person: actor.person().cloned(),
            place: place.clone(),
            manifest_digest: digest,
            max_concurrent: m.max_concurrent as i64,
            timeout_ms: m.timeout.as_millis() as i64,
            risk: m.risk,
            quorum: need.map(|n| n.quorum as i64).unwrap_or(0),
            approvers: Approvers {
                principals: need.map(|n| n.approvers.clone()).unwrap_or_default(),
                eligible: need
                    .map(|n| n.eligible.iter().cloned().collect())
                    .unwrap_or_default(),
                channel: need.and_then(|n| n.channel.clone()),
            },
            expires_at: need.map(|n| now + n.expires_ms),
            schedule_key,
            created_at: now,
            runs_on: m.runs_on.clone(),
            rule: a.rule.clone(),
            break_glass: a.break_glass.clone().filter(|_| state == RunState::Queued),
            preview_of: None,
            state,
            reason: reason.clone(),
            inputs: a.inputs.clone(),
        };
        let preview = (state == RunState::AwaitingApproval)
            .then(|| m.approval.as_ref().map(|ap| &ap.preview))
            .flatten()
            .filter(|p| !p.is_empty())
            .map(|_| new.clone());
        let run = self.store.create_run(new, durability).await?;
        self.emit(&run);
        let preview = match preview {
            Some(new) => Some(self.record_preview(new, run.id).await?),
            None => None,
        };
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
                    "run {} ({}) awaits approval{}: {} of {} (expires {}){}",
                    run.id,
                    cmdline.trim(),
                    rule_note(run.rule.as_deref()),
                    need.quorum,
                    need.eligible
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    crate::clock::format_ms(run.expires_at.unwrap_or(now)),
                    preview
                        .map(|p| format!("; preview run {p} shows its approvers what it will do"))
                        .unwrap_or_default(),
                )
            }
            _ if run.break_glass.is_some() => format!(
                "run {} ({}) is queued WITHOUT its approval (break-glass); its approvers are told, \
                 and it stays marked until one reviews it: `review {} [note]`",
                run.id,
                cmdline.trim(),
                run.id
            ),
            _ => format!("run {} ({}) is queued", run.id, cmdline.trim()),
        };
        Ok(Reply {
            kind: ReplyKind::Accepted,
            text,
            run: Some(run),
        })
    }

    /// Records the preview of run `of` (`[approval] preview`): the same
    /// request, queued at once with no approval (it runs with the preview's
    /// extra arguments and changes nothing, which is what the manifest's
    /// author vouches for by naming them). Its outcome is shown on `of`'s
    /// approval request, which waits for it (see `chat::notifier`).
    async fn record_preview(
        &self,
        mut new: NewRun,
        of: crate::types::RunId,
    ) -> anyhow::Result<crate::types::RunId> {
        new.preview_of = Some(of);
        new.state = RunState::Queued;
        new.reason = None;
        new.quorum = 0;
        new.approvers = Approvers::default();
        new.expires_at = None;
        new.schedule_key = None;
        new.break_glass = None;
        let run = self.store.create_run(new, Durability::Relaxed).await?;
        self.emit(&run);
        Ok(run.id)
    }

    /// `explain <script> …`: what would happen, without running or recording a
    /// run (see [`Engine::explanation`]).
    pub async fn explain(
        &self,
        actor: &Actor,
        place: &Place,
        script: &str,
        raw: &[(String, String)],
    ) -> anyhow::Result<Reply> {
        Ok(match self.explanation(actor, place, script, raw).await? {
            Ok(e) => Reply::info(e.text()),
            Err(message) => Reply::error(message),
        })
    }
}

impl Engine {
    /// Enrolled runners seen in the last minute that have every tag of `runs_on`.
    pub(super) async fn live_runners_for(&self, runs_on: &[String]) -> anyhow::Result<Vec<String>> {
        let since = self.now() - 60_000;
        Ok(self
            .store
            .runners()
            .await?
            .into_iter()
            .filter(|r| r.revoked_at.is_none() && r.last_seen.is_some_and(|t| t >= since))
            .filter(|r| runs_on.iter().all(|t| r.tags.contains(t)))
            .map(|r| r.name)
            .collect())
    }
}

/// ` under rule `NAME``, or nothing when no rule held.
pub fn rule_note(rule: Option<&str>) -> String {
    rule.map(|r| format!(" under rule `{r}`"))
        .unwrap_or_default()
}

fn raw_args_json(raw: &[(String, String)]) -> serde_json::Value {
    serde_json::Value::Object(raw.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

/// `key=value` pairs as a person would type them back.
pub fn args_text(args: &Args) -> String {
    args.iter()
        .map(|(k, v)| format!("{k}={}", crate::command::quote_if_needed(&v.to_string())))
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
