//! Every way the store changes the database: the closed set [`Write`].
//!
//! A write is a value. [`Store::write`](super::Store::write) hands it, with the
//! durability its caller needs, to the backend's one write path (on SQLite the
//! writer thread, which commits what arrives together in one transaction; on
//! PostgreSQL a plain transaction of its own), where [`apply`] runs it in a
//! [`Tx`] and appends its audit entries at its end. Nothing else in the store
//! writes: reads go through `Store::fetch_*`.

use super::answer::Answer;
use super::audit::NewEntry;
use super::break_glass;
use super::claim::Claim;
use super::model::{Artifact, DecisionInput};
use super::posts::ChatPost;
use super::reports::RunnerFinish;
use super::retention::Prune;
use super::runners::{Enrolment, RunnerIdentity};
use super::runs::Transition;
use super::schedules::ScheduleEvent;
use super::sql::Tx;
use super::{NewRun, StoreError};
use crate::types::RunId;

/// How a commit must reach the disk before its caller hears of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Durability {
    /// Someone is about to be told it happened (an ack, a decision, a cancel):
    /// on disk before the answer. SQLite: the WAL synced (`synchronous=FULL`);
    /// PostgreSQL: `synchronous_commit` as configured (on by default).
    Synced,
    /// Bookkeeping nobody waits for (claims, leases, progress, chat posts):
    /// it survives a crash of the process, and after a crash of the machine
    /// the database keeps a prefix of the commits (a lapsed lease recovers a
    /// run whose end was lost). SQLite: `synchronous=NORMAL`; PostgreSQL:
    /// `synchronous_commit = off` for that transaction.
    Relaxed,
}

impl Durability {
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Synced => "synced",
            Durability::Relaxed => "relaxed",
        }
    }
}

/// Every write the store makes. Each variant's doc says what it writes and audits.
#[derive(Debug)]
pub enum Write {
    /// Records a request in the state policy chose, with `run.requested` and
    /// `run.<state>` entries. Answers the run.
    CreateRun(Box<NewRun>),
    /// Moves a run along the lifecycle (refusing an arrow it lacks), applies
    /// its edit, audits the move. Answers the run.
    Transition(Transition),
    /// The next runnable queued run becomes `running` for a worker: a
    /// transition. Answers `Option<Run>`.
    Claim(Claim),
    /// One approver's decision, and the transition it causes. Answers a
    /// [`DecisionOutcome`].
    Decide {
        id: RunId,
        decision: DecisionInput,
    },
    /// Withdraws a run that has not started, or asks its worker to stop it.
    RequestCancel {
        id: RunId,
        actor: String,
        now: i64,
    },
    /// A live worker extends its lease. Answers whether it still holds the run.
    RenewLease {
        id: RunId,
        worker: String,
        until: i64,
    },
    /// A `::progress` line (not audited). Answers `()`.
    SetProgress {
        id: RunId,
        pct: Option<i64>,
        text: String,
    },
    /// An approver's review of a break-glass run (`policy.reviewed`). Answers the run.
    Review {
        id: RunId,
        reviewer: String,
        note: Option<String>,
        now: i64,
    },
    /// Marks break-glass runs unreviewed since before `due` as reminded
    /// (`policy.review_overdue`). Answers the runs.
    RemindUnreviewed {
        due: i64,
        now: i64,
    },
    /// Expires unanswered approval requests. Answers the runs.
    ExpireDue {
        now: i64,
    },
    /// Interrupts running runs whose worker stopped renewing. Answers the runs.
    LapseLeases {
        now: i64,
    },
    /// A standalone audit entry (a refusal, a reload).
    Audit(NewEntry),
    AddArtifact(Artifact),
    Heartbeat {
        worker: String,
        now: i64,
    },
    /// Answers true the first time an inbound event id is seen.
    FirstTime {
        event_id: String,
        now: i64,
    },
    /// Forgets inbound event ids older than `before`. Answers how many.
    ForgetEventsBefore {
        before: i64,
    },
    EnsurePost {
        run: RunId,
        role: String,
        place_key: String,
        place: String,
    },
    SavePost(ChatPost),
    InitSchedule {
        id: String,
        spec: String,
        start_at: i64,
        now: i64,
    },
    AdvanceSchedule {
        id: String,
        fire_at: i64,
        now: i64,
    },
    ScheduleEvent(ScheduleEvent),
    RequestReload {
        by: String,
        now: i64,
    },
    CreateLoginToken {
        hash: String,
        person: String,
        now: i64,
        expires_at: i64,
    },
    ConsumeLoginToken {
        hash: String,
        now: i64,
    },
    CreateSession {
        hash: String,
        person: String,
        now: i64,
        expires_at: i64,
    },
    DeleteSession {
        hash: String,
    },
    CreateApiToken {
        hash: String,
        person: String,
        name: String,
        now: i64,
    },
    RevokeApiToken {
        id: i64,
        person: String,
        now: i64,
    },
    TouchApiToken {
        hash: String,
        now: i64,
    },
    /// A one-time enrolment token for a new runner, audited.
    IssueEnrolment(Enrolment),
    /// Trades an enrolment token for a credential. Answers the runner, if any.
    Enrol {
        token_hash: String,
        credential_hash: String,
        hostname: String,
        now: i64,
    },
    /// A service's own local runner, with a fresh credential.
    RegisterLocalRunner {
        runner: RunnerIdentity,
        credential_hash: String,
        hostname: String,
        now: i64,
    },
    /// Refuses a runner from now on and interrupts its runs. Answers them.
    RevokeRunner {
        name: String,
        actor: String,
        now: i64,
    },
    /// A runner is alive; renews the leases of the runs it holds. Answers the lost.
    RunnerPoll {
        runner: String,
        holding: Vec<(RunId, bool)>,
        slots: i64,
        lease_until: i64,
        now: i64,
    },
    /// The next bytes of a run's log. Answers the bytes stored.
    AppendLog {
        run: RunId,
        runner: String,
        at: u64,
        data: Vec<u8>,
        cap: u64,
    },
    /// A file of a run and its bytes.
    SaveArtifact {
        runner: String,
        artifact: Artifact,
        data: Vec<u8>,
    },
    /// A runner's report of a run's end: a transition.
    RunnerFinish(RunnerFinish),
    /// Retention: removes the payloads a batch of finished runs has past
    /// their retention (log chunks, file bytes, output tail and result),
    /// records when and the removed log's sha256 on each run, and audits the
    /// batch in one `retention.pruned` entry. Answers what was removed.
    Prune {
        batch: Vec<Prune>,
        now: i64,
    },
    /// A person's second factor: enrol, confirm, a refused code, a reset.
    SecondFactor(super::second_factor::FactorWrite),
    /// Raw SQL that bypasses every rule: tests and tools only (tampering).
    Raw(String),
}

impl Write {
    /// A short name for logs and the per-operation commit counts.
    pub fn name(&self) -> &'static str {
        match self {
            Write::CreateRun(_) => "create_run",
            Write::Transition(_) => "transition",
            Write::Claim(_) => "claim",
            Write::Decide { .. } => "decide",
            Write::RequestCancel { .. } => "cancel",
            Write::RenewLease { .. } => "renew_lease",
            Write::SetProgress { .. } => "progress",
            Write::Review { .. } => "review",
            Write::RemindUnreviewed { .. } => "remind_unreviewed",
            Write::ExpireDue { .. } => "expire_due",
            Write::LapseLeases { .. } => "lapse_leases",
            Write::Audit(_) => "audit",
            Write::AddArtifact(_) => "add_artifact",
            Write::Heartbeat { .. } => "heartbeat",
            Write::FirstTime { .. } => "first_time",
            Write::ForgetEventsBefore { .. } => "forget_events",
            Write::EnsurePost { .. } => "ensure_post",
            Write::SavePost(_) => "save_post",
            Write::InitSchedule { .. } => "init_schedule",
            Write::AdvanceSchedule { .. } => "advance_schedule",
            Write::ScheduleEvent(_) => "schedule_event",
            Write::RequestReload { .. } => "request_reload",
            Write::CreateLoginToken { .. } => "create_login_token",
            Write::ConsumeLoginToken { .. } => "consume_login_token",
            Write::CreateSession { .. } => "create_session",
            Write::DeleteSession { .. } => "delete_session",
            Write::CreateApiToken { .. } => "create_api_token",
            Write::RevokeApiToken { .. } => "revoke_api_token",
            Write::TouchApiToken { .. } => "touch_api_token",
            Write::IssueEnrolment(_) => "issue_enrolment",
            Write::Enrol { .. } => "enrol",
            Write::RegisterLocalRunner { .. } => "register_local_runner",
            Write::RevokeRunner { .. } => "revoke_runner",
            Write::RunnerPoll { .. } => "runner_poll",
            Write::AppendLog { .. } => "append_log",
            Write::SaveArtifact { .. } => "save_artifact",
            Write::RunnerFinish(_) => "runner_finish",
            Write::Prune { .. } => "prune",
            Write::SecondFactor(_) => "second_factor",
            Write::Raw(_) => "raw",
        }
    }
}

/// Runs `write` in `tx`, then appends the audit entries it queued.
pub(super) async fn apply(tx: &mut Tx<'_>, write: Write) -> Result<Answer, StoreError> {
    use super::{approvals, claim, misc, posts, reports, runners, runs, schedules, web};
    let answer: Answer = match write {
        Write::CreateRun(new) => runs::create(tx, *new).await?.into(),
        Write::Transition(t) => runs::transition(tx, t).await?.into(),
        Write::Claim(c) => claim::claim(tx, c).await?.into(),
        Write::Decide { id, decision } => approvals::decide(tx, id, decision).await?.into(),
        Write::RequestCancel { id, actor, now } => {
            runs::request_cancel(tx, id, &actor, now).await?.into()
        }
        Write::RenewLease { id, worker, until } => {
            claim::renew_lease(tx, id, &worker, until).await?.into()
        }
        Write::SetProgress { id, pct, text } => {
            claim::set_progress(tx, id, pct, &text).await?.into()
        }
        Write::ExpireDue { now } => runs::expire_due(tx, now).await?.into(),
        Write::LapseLeases { now } => runs::lapse_leases(tx, now).await?.into(),
        Write::Audit(e) => {
            tx.audit(e.at, &e.actor, &e.action, e.run, e.details);
            Answer::Done
        }
        Write::AddArtifact(a) => misc::add_artifact(tx, &a).await?.into(),
        Write::Review {
            id,
            reviewer,
            note,
            now,
        } => break_glass::review(tx, id, &reviewer, note, now)
            .await?
            .into(),
        Write::RemindUnreviewed { due, now } => break_glass::remind_due(tx, due, now).await?.into(),
        Write::Heartbeat { worker, now } => misc::heartbeat(tx, &worker, now).await?.into(),
        Write::FirstTime { event_id, now } => misc::first_time(tx, &event_id, now).await?.into(),
        Write::ForgetEventsBefore { before } => misc::forget_events(tx, before).await?.into(),
        Write::EnsurePost {
            run,
            role,
            place_key,
            place,
        } => posts::ensure(tx, run, &role, &place_key, &place)
            .await?
            .into(),
        Write::SavePost(p) => posts::save(tx, &p).await?.into(),
        Write::InitSchedule {
            id,
            spec,
            start_at,
            now,
        } => schedules::init(tx, &id, &spec, start_at, now).await?.into(),
        Write::AdvanceSchedule { id, fire_at, now } => {
            schedules::advance(tx, &id, fire_at, now).await?.into()
        }
        Write::ScheduleEvent(ev) => schedules::record_event(tx, ev).await?.into(),
        Write::RequestReload { by, now } => schedules::request_reload(tx, &by, now).await?.into(),
        Write::CreateLoginToken {
            hash,
            person,
            now,
            expires_at,
        } => web::create_login_token(tx, &hash, &person, now, expires_at)
            .await?
            .into(),
        Write::ConsumeLoginToken { hash, now } => {
            web::consume_login_token(tx, &hash, now).await?.into()
        }
        Write::CreateSession {
            hash,
            person,
            now,
            expires_at,
        } => web::create_session(tx, &hash, &person, now, expires_at)
            .await?
            .into(),
        Write::DeleteSession { hash } => web::delete_session(tx, &hash).await?.into(),
        Write::CreateApiToken {
            hash,
            person,
            name,
            now,
        } => web::create_api_token(tx, &hash, &person, &name, now)
            .await?
            .into(),
        Write::RevokeApiToken { id, person, now } => {
            web::revoke_api_token(tx, id, &person, now).await?.into()
        }
        Write::TouchApiToken { hash, now } => web::touch_api_token(tx, &hash, now).await?.into(),
        Write::IssueEnrolment(e) => runners::issue_enrolment(tx, e).await?.into(),
        Write::Enrol {
            token_hash,
            credential_hash,
            hostname,
            now,
        } => runners::enrol(tx, &token_hash, &credential_hash, &hostname, now)
            .await?
            .into(),
        Write::RegisterLocalRunner {
            runner,
            credential_hash,
            hostname,
            now,
        } => runners::register_local(tx, &runner, &credential_hash, &hostname, now)
            .await?
            .into(),
        Write::RevokeRunner { name, actor, now } => {
            runners::revoke(tx, &name, &actor, now).await?.into()
        }
        Write::RunnerPoll {
            runner,
            holding,
            slots,
            lease_until,
            now,
        } => reports::poll(tx, &runner, &holding, slots, lease_until, now)
            .await?
            .into(),
        Write::AppendLog {
            run,
            runner,
            at,
            data,
            cap,
        } => reports::append_log(tx, run, &runner, at, data, cap)
            .await?
            .into(),
        Write::SaveArtifact {
            runner,
            artifact,
            data,
        } => reports::save_artifact(tx, &runner, &artifact, data)
            .await?
            .into(),
        Write::RunnerFinish(f) => reports::finish(tx, f).await?.into(),
        Write::Prune { batch, now } => super::retention::prune(tx, batch, now).await?.into(),
        Write::SecondFactor(w) => super::second_factor::apply(tx, w).await?,
        Write::Raw(sql) => {
            tx.execute_script(&sql).await?;
            Answer::Done
        }
    };
    tx.flush_audit().await?;
    Ok(answer)
}
