//! The engine: one entry point for every channel. It parses nothing
//! platform-specific and imports no platform crate: adapters hand it a
//! verified actor, a place and a parsed [`Command`], and render its [`Reply`].
//!
//! - `request.rs`: `run` and `explain` (arguments, policy, approval needs).
//! - `explain.rs`: what `explain` answers, as one struct its text and JSON come from.
//! - `decide.rs`: `approve`, `deny`, `cancel`.
//! - `render.rs`: the plain-text shapes of runs, lists and help.
//! - `step_up.rs`: second factors (TOTP) and the check a critical approval goes through.

mod break_glass;
mod decide;
mod explain;
mod login;
pub mod render;
mod request;
pub mod step_up;

pub use explain::{ApprovalExplained, Explanation, RunnersExplained};
pub use login::LOGIN_LINK_TTL_MS;
pub use render::{help_text, run_summary};
pub use request::rule_note;

use crate::clock::Clock;
use crate::command::Command;
use crate::config::Config;
use crate::links::LinkSigner;
use crate::manifest::{Catalog, Manifest};
use crate::policy;
use crate::store::{Run, Store};
use crate::types::{Actor, Place, PlatformUser, RunId, RunState};

use std::sync::{Arc, RwLock};
use tokio::sync::{Notify, broadcast};

/// A command with who sent it and where.
#[derive(Debug, Clone)]
pub struct Request {
    pub actor: Actor,
    pub place: Place,
    pub command: Command,
    /// Only ExecGov saw what was typed (the CLI, the web, a direct chat room,
    /// a Slack slash command or dialog), rather than everyone in a shared room:
    /// a step-up code is accepted only so.
    pub private: bool,
    /// Files sent with the request, for the script's file parameters.
    pub files: Vec<execgov_chat::Attachment>,
}

pub use execgov_chat::ReplyKind;

/// What the engine answers. `text` is complete on its own; `run` lets an
/// adapter render richer (status messages, buttons).
#[derive(Debug, Clone)]
pub struct Reply {
    pub kind: ReplyKind,
    pub text: String,
    pub run: Option<Run>,
}

impl Reply {
    pub fn info(text: impl Into<String>) -> Reply {
        Reply {
            kind: ReplyKind::Info,
            text: text.into(),
            run: None,
        }
    }

    /// An error answer; what it repeats of the input is cut short
    /// ([`execgov_chat::cap_echoes`]).
    pub fn error(text: impl Into<String>) -> Reply {
        Reply {
            kind: ReplyKind::Error,
            text: execgov_chat::cap_echoes(&text.into()),
            run: None,
        }
    }

    pub fn is_error(&self) -> bool {
        self.kind == ReplyKind::Error
    }
}

/// A change to a run that adapters and waiters may want to show.
#[derive(Debug, Clone)]
pub struct RunEvent {
    pub run: RunId,
    pub state: RunState,
    /// Set for progress updates from `::progress` lines.
    pub progress: Option<(Option<u8>, String)>,
}

/// The governed chain's core, shared by the pool, the web server, the CLI and adapters.
#[derive(Debug)]
pub struct Engine {
    config: Arc<Config>,
    catalog: RwLock<Arc<Catalog>>,
    store: Store,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    events: broadcast::Sender<RunEvent>,
    links: LinkSigner,
}

impl Engine {
    pub fn new(
        config: Arc<Config>,
        catalog: Catalog,
        store: Store,
        clock: Arc<dyn Clock>,
        links: LinkSigner,
    ) -> Engine {
        let (events, _) = broadcast::channel(1024);
        // The audit key is held outside the database; every entry the engine's
        // store appends is keyed with it (see crate::audit).
        match crate::audit::audit_key(&config) {
            Ok(key) => store.set_audit_key(key),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "the audit key is unusable; every write will fail");
                store.set_audit_key_unusable(format!("the audit key is unusable: {e:#}"));
            }
        }
        Engine {
            config,
            catalog: RwLock::new(Arc::new(catalog)),
            store,
            clock,
            wake: Arc::new(Notify::new()),
            events,
            links,
        }
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn links(&self) -> &LinkSigner {
        &self.links
    }

    /// The manifests as loaded now.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().expect("catalog lock").clone()
    }

    /// Replaces the manifests (reload); runs already requested keep their digest.
    pub fn replace_catalog(&self, catalog: Catalog) {
        *self.catalog.write().expect("catalog lock") = Arc::new(catalog);
    }

    pub fn manifest(&self, script: &str) -> Option<Manifest> {
        self.catalog().get(script).cloned()
    }

    /// The manifest of `run`'s script as it governs `run`'s arguments (its
    /// `[[rule]]` applied): who may decide on or cancel it.
    pub fn governing(&self, run: &Run) -> Option<Manifest> {
        self.catalog()
            .get(&run.script)
            .map(|m| m.governed(&run.args).0)
    }

    /// Wakes whoever waits for work (the pool, runners' polls): a run may have
    /// become claimable, or a running run was asked to stop.
    pub fn wake_handle(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<RunEvent> {
        self.events.subscribe()
    }

    pub(crate) fn emit(&self, run: &Run) {
        let _ = self.events.send(RunEvent {
            run: run.id,
            state: run.state,
            progress: None,
        });
        if run.state == RunState::Queued || run.cancel_requested {
            self.wake.notify_waiters();
            self.wake.notify_one();
        }
    }

    pub(crate) fn emit_progress(&self, run: RunId, pct: Option<u8>, text: String) {
        let _ = self.events.send(RunEvent {
            run,
            state: RunState::Running,
            progress: Some((pct, text)),
        });
    }

    /// Maps a verified platform user to an actor through `people.*`.
    pub fn actor_for(&self, user: &PlatformUser) -> Actor {
        match self.config.person_for(user) {
            Some(person) => Actor::Person {
                person,
                via: user.clone(),
                impersonated_by: None,
            },
            None => Actor::Unknown { via: user.clone() },
        }
    }

    /// The audit link of a run: `{public_url}/runs/{id}?t={token}`. It is the
    /// same link every time until the run finishes (so chat messages that show
    /// it stay unchanged), and valid for 30 days after the run's end.
    pub fn audit_link(&self, run: &Run) -> String {
        let base = run
            .finished_at
            .unwrap_or(run.created_at)
            .max(run.created_at);
        self.links.link(&self.config.web.public_url, run.id, base)
    }

    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Handles one command from any channel.
    #[tracing::instrument(skip_all, fields(actor = %req.actor, verb = req.command.verb()))]
    pub async fn handle(&self, req: Request) -> Reply {
        let result = match req.command.clone() {
            Command::Run { script, args } => self
                .request_run_checked(&req.actor, &req.place, &script, &args, &req.files, None)
                .await
                .map(|a| a.reply),
            Command::Explain { script, args } => {
                self.explain(&req.actor, &req.place, &script, &args).await
            }
            Command::Approve { run, code } => {
                let proof = code.map(|code| step_up::Proof {
                    code,
                    seen_by_others: !req.private,
                });
                self.decide(&req.actor, run, true, None, proof).await
            }
            Command::Deny { run, reason } => {
                self.decide(&req.actor, run, false, reason, None).await
            }
            Command::Cancel { run } => self.cancel(&req.actor, run).await,
            Command::Status { run } => self.status(&req.actor, run).await,
            Command::List => Ok(self.list(&req.actor, &req.place)),
            Command::Help { script } => Ok(self.help(script.as_deref())),
            Command::Login => self.login_link(&req.actor).await,
            Command::BreakGlass {
                script,
                args,
                reason,
            } => self
                .request_run_checked(
                    &req.actor,
                    &req.place,
                    &script,
                    &args,
                    &req.files,
                    Some(&reason),
                )
                .await
                .map(|a| a.reply),
            Command::Review { run, note } => self.review(&req.actor, run, note).await,
        };
        let mut reply = result.unwrap_or_else(|e| {
            tracing::error!(error = format!("{e:#}"), "command failed");
            Reply::error(format!(
                "ExecGov could not do that ({e}); try again, and tell an admin if it persists"
            ))
        });
        if reply.is_error() {
            // Every channel's error answers repeat at most a short piece of the input.
            reply.text = execgov_chat::cap_echoes(&reply.text);
        }
        reply
    }

    async fn status(&self, actor: &Actor, id: RunId) -> anyhow::Result<Reply> {
        let run = match self.store.get_run(id).await {
            Ok(r) => r,
            Err(crate::store::StoreError::NotFound(_)) => {
                return Ok(Reply::error(format!("no run {id}")));
            }
            Err(e) => return Err(e.into()),
        };
        if !self.may_view(actor, &run) {
            // The same answer as a missing run: no hint that it exists.
            return Ok(Reply::error(format!("no run {id}")));
        }
        let approvals = self.store.approvals(id).await?;
        let has_files = !self.store.artifacts(id).await?.is_empty();
        let text = run_summary(&run, &approvals, has_files, Some(&self.audit_link(&run)));
        Ok(Reply {
            kind: ReplyKind::Info,
            text,
            run: Some(run),
        })
    }

    /// Whether `actor` may see a run (see [`policy::may_view`]).
    pub fn may_view(&self, actor: &Actor, run: &Run) -> bool {
        let manifest = self.manifest(&run.script);
        policy::may_view(
            &self.config,
            manifest.as_ref(),
            actor,
            run.requester_person.as_ref(),
        )
    }

    fn list(&self, actor: &Actor, place: &Place) -> Reply {
        let catalog = self.catalog();
        if catalog.is_empty() {
            return Reply::info("no scripts are registered; add manifests to the manifests folder");
        }
        let mut out = String::from("Scripts:\n");
        for m in catalog.iter() {
            let ok = matches!(
                policy::may_run(&self.config, m, actor, place),
                policy::Access::Allowed
            );
            let risk = if m.risk.needs_approval() {
                " [needs approval]"
            } else {
                ""
            };
            let mark = if ok { "" } else { " (not for you here)" };
            out.push_str(&format!("  {} — {}{risk}{mark}\n", m.name, m.description));
        }
        out.push_str("Use `help <script>` for its parameters.");
        Reply::info(out)
    }

    fn help(&self, script: Option<&str>) -> Reply {
        match script {
            None => Reply::info(help_text()),
            Some(name) => match self.catalog().get(name) {
                Some(m) => Reply::info(m.usage()),
                None => Reply::error(self.unknown_script(name)),
            },
        }
    }

    pub(crate) fn unknown_script(&self, name: &str) -> String {
        let close = self.catalog().closest(name);
        if close.is_empty() {
            format!("unknown script `{name}`; `list` shows the scripts")
        } else {
            format!(
                "unknown script `{name}`; did you mean {}?",
                close.join(", ")
            )
        }
    }
}
