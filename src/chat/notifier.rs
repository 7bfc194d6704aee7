//! Keeps each run's chat messages in step with the run: the status message
//! where it was asked (edited as it moves, the result in its thread), the
//! approval request in each approver channel (edited as decisions arrive), and
//! a note in the requester's thread for each decision.
//!
//! It is level-triggered: a pass renders what each message should show now and
//! posts or edits only where that differs from what `chat_posts` says is shown.
//! Engine events trigger passes at once; a sweep every few seconds catches runs
//! moved by other processes and retries failed posts with a doubling delay.
//! The run never waits on chat: a platform that is down delays messages only.

mod targets;

use super::quick::QuickHold;
use super::views::{approval_view, preview_view, run_view};
use crate::engine::Engine;
use crate::store::{ChatPost, Run};
use crate::types::{Place, Platform, RunId, RunState};
use execgov_chat::{ChatAdapter, ChatError, Message, MessageRef, Outbound};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::TryRecvError;
use tokio_util::sync::CancellationToken;

/// A message edited for progress alone waits at least this long after its last edit
/// (Slack allows about one update per second per channel).
const PROGRESS_EDIT_GAP: Duration = Duration::from_secs(1);
const SWEEP_EVERY: Duration = Duration::from_secs(2);
/// Runs finished this recently are checked by the sweep (another process may have run them).
const RECENT_MS: i64 = 5 * 60 * 1000;
/// After this many failures a post is given up (and the failure kept in `chat_posts`).
const MAX_ATTEMPTS: i64 = 8;
/// The most of a run's log a result carries for adapters to attach
/// (`RunView::full_output`); a longer log is cut to its end, with a line
/// saying so. Slack takes files of up to 50 MiB.
const FULL_OUTPUT_MAX: u64 = 32 * 1024 * 1024;
/// How long an approval request waits for its preview run to end before it
/// is posted anyway (it is edited when the preview ends).
const PREVIEW_WAIT_MS: i64 = 60_000;

/// Posts and edits runs' chat messages through the configured adapters.
pub struct Notifier {
    engine: Arc<Engine>,
    adapters: HashMap<Platform, Arc<dyn ChatAdapter>>,
    last_edit: HashMap<RunId, Instant>,
    /// Quick scripts' status posts held back (see [`QuickHold`]).
    hold: QuickHold,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("platforms", &self.adapters.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Why a pass over one post stopped early.
enum Step {
    Done,
    /// Try again later without counting a failure (progress throttling, waiting for a thread).
    Later,
}

impl Notifier {
    pub fn new(engine: Arc<Engine>, adapters: Vec<Arc<dyn ChatAdapter>>) -> Notifier {
        let adapters = adapters.into_iter().map(|a| (a.platform(), a)).collect();
        Notifier {
            engine,
            adapters,
            last_edit: HashMap::new(),
            hold: QuickHold::default(),
        }
    }

    /// How long a script's runs may take and still count as quick (default 500 ms).
    pub fn quick_within(mut self, d: Duration) -> Notifier {
        self.hold = QuickHold::within(d);
        self
    }

    pub async fn run_until_stopped(mut self, shutdown: CancellationToken) {
        let mut events = self.engine.subscribe();
        let mut dirty: BTreeSet<RunId> = BTreeSet::new();
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let release = self.hold.next_release(self.engine.now());
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                ev = events.recv() => match ev {
                    Ok(e) => { dirty.insert(e.run); }
                    Err(_) => self.sweep_into(&mut dirty).await,
                },
                _ = tokio::time::sleep(release) => self.hold.release_into(self.engine.now(), &mut dirty),
                _ = sweep.tick() => self.sweep_into(&mut dirty).await,
            }
            loop {
                match events.try_recv() {
                    Ok(e) => {
                        dirty.insert(e.run);
                    }
                    Err(TryRecvError::Lagged(_)) => self.sweep_into(&mut dirty).await,
                    Err(_) => break,
                }
            }
            for id in std::mem::take(&mut dirty) {
                if shutdown.is_cancelled() {
                    return;
                }
                if let Err(e) = self.reconcile(id).await {
                    tracing::warn!(run_id = %id, error = format!("{e:#}"), "updating chat messages failed; will retry");
                }
            }
        }
    }

    async fn sweep_into(&self, dirty: &mut BTreeSet<RunId>) {
        let now = self.engine.now();
        match self
            .engine
            .store()
            .runs_to_notify(now, now - RECENT_MS, 500)
            .await
        {
            Ok(ids) => dirty.extend(ids),
            Err(e) => tracing::warn!(error = %e, "listing runs to notify failed"),
        }
    }

    /// Brings every chat message of one run up to date.
    #[tracing::instrument(skip_all, fields(run_id = %id))]
    pub async fn reconcile(&mut self, id: RunId) -> anyhow::Result<()> {
        let engine = self.engine.clone();
        let store = engine.store();
        let run = store.get_run(id).await?;
        let approvals = store.approvals(id).await?;
        let artifacts = if run.state.is_final() {
            crate::runs_data::artifacts_on_disk(&engine, id).await?
        } else {
            Vec::new()
        };
        let preview = if run.quorum > 0 {
            store.preview_for(id).await?
        } else {
            None
        };
        let now = self.engine.now();
        for (role, place) in self.targets(&run) {
            let Some(adapter) = self.adapters.get(&place.platform).cloned() else {
                continue;
            };
            let place_json = serde_json::to_string(&place)?;
            let mut post = store
                .ensure_post(id, &role, &place_key(&place), &place_json)
                .await?;
            if post.done || post.next_at > now {
                continue;
            }
            let before = post.clone();
            let mut view = run_view(&self.engine, &run, &approvals, &artifacts, place.platform);
            view.mentions = self.failure_mentions(&run, place.platform);
            let outcome = match role.as_str() {
                "status" => {
                    self.sync_status(&*adapter, &run, &place, view, &mut post)
                        .await
                }
                "approval" | "review-overdue" => {
                    // The request waits (a while) for its preview's outcome,
                    // so approvers see it when they are first asked.
                    if post.message_id.is_none()
                        && run.state == RunState::AwaitingApproval
                        && preview.as_ref().is_some_and(|p| {
                            !p.state.is_final() && now - run.created_at < PREVIEW_WAIT_MS
                        })
                    {
                        continue;
                    }
                    let mut approval = approval_view(view, &run, &approvals);
                    approval.preview = preview
                        .as_ref()
                        .map(|p| Box::new(preview_view(&self.engine, p, place.platform)));
                    if role == "review-overdue" && run.reviewed_by.is_none() {
                        approval.needed = format!("OVERDUE for review: {}", approval.needed);
                    }
                    let message = Message::ApprovalRequest { approval };
                    // A break-glass run's request is edited until it is reviewed.
                    let settled = run.state.is_final()
                        && (run.break_glass.is_none() || run.reviewed_by.is_some());
                    self.sync_message(&*adapter, &place, message, settled, &mut post)
                        .await
                }
                _ => Ok(Step::Done),
            };
            match outcome {
                Ok(Step::Done) => {
                    post.attempts = 0;
                    post.last_error = None;
                }
                Ok(Step::Later) => {}
                Err(e) => self.failed(&mut post, &e, now),
            }
            if post != before {
                store.save_post(&post).await?;
            }
        }
        self.notes(&run, &approvals).await?;
        // A preview's outcome is shown on the request it previews.
        if let Some(of) = run.preview_of {
            Box::pin(self.reconcile(of)).await?;
        }
        Ok(())
    }

    async fn sync_status(
        &mut self,
        adapter: &dyn ChatAdapter,
        run: &Run,
        place: &Place,
        view: execgov_chat::RunView,
        post: &mut ChatPost,
    ) -> Result<Step, ChatError> {
        let finished = run.state.is_final();
        if post.message_id.is_none() && !finished && self.hold.holds(run, self.engine.now()) {
            return Ok(Step::Later);
        }
        let message = Message::RunStatus { run: view.clone() };
        let progress_only = post.message_id.is_some() && run.state == RunState::Running;
        if progress_only
            && self
                .last_edit
                .get(&run.id)
                .is_some_and(|t| t.elapsed() < PROGRESS_EDIT_GAP)
            && digest(&message) != post.shown.clone().unwrap_or_default()
        {
            return Ok(Step::Later);
        }
        // The result first where its thread is already known: it is what the
        // requester waits for; the status edit can follow.
        if finished && !post.result_posted {
            let thread = place.thread.clone().or_else(|| post.message_id.clone());
            if thread.is_some() {
                self.post_result(adapter, run, place, thread, view.clone(), post)
                    .await?;
                self.hold.remember(run);
            }
        }
        if let Step::Later = self
            .sync_message(adapter, place, message, false, post)
            .await?
        {
            return Ok(Step::Later);
        }
        self.last_edit.insert(run.id, Instant::now());
        if finished && !post.result_posted {
            let thread = place.thread.clone().or_else(|| post.message_id.clone());
            self.post_result(adapter, run, place, thread, view, post)
                .await?;
            self.hold.remember(run);
        }
        post.done = finished && post.result_posted;
        if post.done {
            self.last_edit.remove(&run.id);
        }
        Ok(Step::Done)
    }

    /// Posts a finished run's result in its thread, with its whole stored log
    /// for the adapter to attach where it shows only the output's end.
    async fn post_result(
        &self,
        adapter: &dyn ChatAdapter,
        run: &Run,
        place: &Place,
        thread: Option<String>,
        mut view: execgov_chat::RunView,
        post: &mut ChatPost,
    ) -> Result<(), ChatError> {
        view.full_output = self.full_output(run).await;
        let in_thread = Place {
            thread,
            ..place.clone()
        };
        adapter
            .post(&Outbound {
                place: in_thread,
                message: Message::RunResult { run: view },
                only_to: None,
            })
            .await?;
        post.result_posted = true;
        Ok(())
    }

    /// The run's stored log as text, up to [`FULL_OUTPUT_MAX`] (its end, with a
    /// first line saying what was left out); `None` when there is none or it
    /// cannot be read now (the adapter then attaches the tail and says so).
    async fn full_output(&self, run: &Run) -> Option<String> {
        match crate::runs_data::log_tail(&self.engine, run, FULL_OUTPUT_MAX).await {
            Ok(Some((bytes, cut))) => {
                let text = String::from_utf8_lossy(&bytes);
                Some(if cut {
                    format!(
                        "[only the last {} of the log; the whole log is behind the audit link: {}]\n{text}",
                        bytesize::ByteSize::b(FULL_OUTPUT_MAX),
                        self.engine.audit_link(run)
                    )
                } else {
                    text.into_owned()
                })
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(run_id = %run.id, error = %e, "reading the run's log for its result failed");
                None
            }
        }
    }

    /// Posts `message` once, then edits it whenever what it shows changes.
    async fn sync_message(
        &self,
        adapter: &dyn ChatAdapter,
        place: &Place,
        message: Message,
        finished: bool,
        post: &mut ChatPost,
    ) -> Result<Step, ChatError> {
        let d = digest(&message);
        let out = Outbound {
            place: place.clone(),
            message,
            only_to: None,
        };
        match post.message_id.clone() {
            None => {
                let posted = adapter.post(&out).await?;
                post.message_id = Some(posted.id);
            }
            Some(id) if post.shown.as_deref() != Some(d.as_str()) => {
                adapter
                    .edit(
                        &MessageRef {
                            place: place.clone(),
                            id,
                        },
                        &out,
                    )
                    .await?;
            }
            Some(_) => {}
        }
        post.shown = Some(d);
        if finished {
            post.done = true;
        }
        Ok(Step::Done)
    }

    /// One note per decision in the run's thread where it was asked.
    async fn notes(&self, run: &Run, approvals: &[crate::store::Approval]) -> anyhow::Result<()> {
        if approvals.is_empty() {
            return Ok(());
        }
        let store = self.engine.store();
        let posts = store.posts(run.id).await?;
        let Some(status) = posts
            .iter()
            .find(|p| p.role == "status" && p.message_id.is_some())
        else {
            return Ok(());
        };
        let place: Place = serde_json::from_str(&status.place)?;
        let Some(adapter) = self.adapters.get(&place.platform) else {
            return Ok(());
        };
        let thread = place.thread.clone().or_else(|| status.message_id.clone());
        let now = self.engine.now();
        for a in approvals {
            let role = format!("note:decision:{}", a.approver);
            let mut post = store
                .ensure_post(run.id, &role, &place_key(&place), &status.place)
                .await?;
            if post.done || post.next_at > now {
                continue;
            }
            let text = format!(
                "Run {}: {}",
                run.id,
                crate::engine::render::decision_text(a)
            );
            let out = Outbound {
                place: Place {
                    thread: thread.clone(),
                    ..place.clone()
                },
                message: Message::Text { text },
                only_to: None,
            };
            match adapter.post(&out).await {
                Ok(r) => {
                    post.message_id = Some(r.id);
                    post.done = true;
                    post.last_error = None;
                }
                Err(e) => self.failed(&mut post, &e, now),
            }
            store.save_post(&post).await?;
        }
        Ok(())
    }

    fn failed(&self, post: &mut ChatPost, e: &ChatError, now: i64) {
        post.attempts += 1;
        post.last_error = Some(e.to_string());
        let wait = match e {
            ChatError::Transient {
                retry_after_ms: Some(ms),
                ..
            } => *ms as i64,
            _ => 1000i64 << post.attempts.clamp(0, 8),
        };
        post.next_at = now + wait.min(5 * 60 * 1000);
        if post.attempts >= MAX_ATTEMPTS || !e.is_transient() && post.attempts >= 3 {
            post.done = true;
            tracing::error!(run_id = %post.run_id, role = %post.role, place = %post.place_key, error = %e, attempts = post.attempts, "giving up on a chat message");
        } else {
            tracing::warn!(run_id = %post.run_id, role = %post.role, place = %post.place_key, error = %e, attempts = post.attempts, "posting to chat failed; will retry");
        }
    }
}

fn digest(m: &Message) -> String {
    hex::encode(Sha256::digest(serde_json::to_vec(m).unwrap_or_default()))
}

/// The store key of a place: channel plus thread, so one run can have a status
/// message in a thread and another at the top of the same channel.
fn place_key(p: &Place) -> String {
    match &p.thread {
        Some(t) => format!("{}#{t}", p.key()),
        None => p.key(),
    }
}

/// `slack:C0123` / `matrix:!room:server` from the config's `[channels]`.
pub fn parse_place(key: &str) -> Option<Place> {
    let (platform, channel) = key.split_once(':')?;
    Some(Place::new(Platform::parse(platform)?, channel))
}
