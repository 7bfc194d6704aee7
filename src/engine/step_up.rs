//! Step-up approval (`risk = "critical"`): every approver proves a second
//! factor, a TOTP code (RFC 6238), at the moment of approving. Enrolment (web
//! `/account/2fa`, `execgov 2fa enrol|confirm`), an admin's reset, and the check
//! an approval goes through. Secrets are sealed under a key derived from the
//! server secret before the store sees them (`crate::totp::seal`).
//!
//! Every refused code is audited (`2fa.refused`) and decides nothing; five wrong
//! codes in a row lock a person's approvals for 15 minutes; a code is accepted
//! once; a right code sent where others could read it (a shared chat room) is
//! refused and burned.

use super::Engine;
use crate::policy;
use crate::store::{FactorWrite, MAX_FAILURES, SecondFactor};
use crate::totp::{self, Check, Code};
use crate::types::{Actor, PersonId, RunId};
use execgov_chat::Platform;

/// The label authenticator apps show beside the codes.
const ISSUER: &str = "ExecGov";

/// A new enrolment, to show once: the secret as text and as an `otpauth://` URI.
#[derive(Debug, Clone)]
pub struct Enrolment {
    pub person: PersonId,
    /// Base32, as people type it into an app.
    pub secret: String,
    pub uri: String,
}

/// Where a person stands with their second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactorState {
    None,
    /// Enrolment started, waiting for its first code.
    Pending,
    Enrolled {
        since: i64,
        locked_until: Option<i64>,
    },
}

/// A code offered with an approval, and whether others may have read it.
#[derive(Debug, Clone)]
pub struct Proof {
    pub code: String,
    /// Sent in a shared chat room rather than to ExecGov alone.
    pub seen_by_others: bool,
}

impl Engine {
    fn factor_key(&self) -> [u8; 32] {
        self.links.derive_key("2fa-secrets")
    }

    /// The person an enrolment or confirmation is for: the caller's own.
    fn own_person(actor: &Actor) -> Result<&PersonId, String> {
        actor.person().ok_or_else(|| {
            "only a configured person has a second factor; ask an admin to map your account in the ExecGov config".to_string()
        })
    }

    pub async fn factor_state(&self, person: &PersonId) -> anyhow::Result<FactorState> {
        let now = self.now();
        Ok(match self.store.second_factor(person.as_str()).await? {
            None => FactorState::None,
            Some(f) => match f.confirmed_at {
                None => FactorState::Pending,
                Some(since) => FactorState::Enrolled {
                    since,
                    locked_until: f.locked_at(now),
                },
            },
        })
    }

    /// Starts (or restarts) the caller's enrolment: a new secret, unconfirmed
    /// until its first code. Refused while a confirmed one exists.
    pub async fn enrol_factor(&self, actor: &Actor) -> anyhow::Result<Result<Enrolment, String>> {
        let person = match Self::own_person(actor) {
            Ok(p) => p.clone(),
            Err(e) => return Ok(Err(e)),
        };
        let secret = totp::new_secret();
        let sealed = totp::seal(&self.factor_key(), person.as_str(), &secret);
        let started: bool = self
            .store
            .factor_write(FactorWrite::Start {
                person: person.as_str().into(),
                sealed,
                actor: actor.audit_name(),
                now: self.now(),
            })
            .await?;
        if !started {
            return Ok(Err(format!(
                "{person} already has a second factor; to replace it, an admin runs `execgov 2fa reset {person}`"
            )));
        }
        Ok(Ok(Enrolment {
            uri: totp::otpauth_uri(ISSUER, person.as_str(), &secret),
            secret: totp::base32(&secret),
            person,
        }))
    }

    /// The secret of `person`'s enrolment while it waits for its first code
    /// (shown again to that person only, until confirmed).
    pub async fn pending_enrolment(&self, person: &PersonId) -> anyhow::Result<Option<Enrolment>> {
        let Some(f) = self.store.second_factor(person.as_str()).await? else {
            return Ok(None);
        };
        if f.confirmed_at.is_some() {
            return Ok(None);
        }
        Ok(
            totp::open(&self.factor_key(), person.as_str(), &f.sealed).map(|secret| Enrolment {
                uri: totp::otpauth_uri(ISSUER, person.as_str(), &secret),
                secret: totp::base32(&secret),
                person: person.clone(),
            }),
        )
    }

    /// Confirms the caller's pending enrolment with the first code their app shows.
    pub async fn confirm_factor(
        &self,
        actor: &Actor,
        code: &str,
    ) -> anyhow::Result<Result<(), String>> {
        let person = match Self::own_person(actor) {
            Ok(p) => p.clone(),
            Err(e) => return Ok(Err(e)),
        };
        let factor = match self.store.second_factor(person.as_str()).await? {
            Some(f) if f.confirmed_at.is_none() => f,
            Some(_) => {
                return Ok(Err(format!(
                    "{person}'s second factor is already confirmed"
                )));
            }
            None => {
                return Ok(Err(
                    "no enrolment to confirm; start one with `execgov 2fa enrol` or at /account/2fa"
                        .into(),
                ));
            }
        };
        match self.check_code(actor, &factor, None, code, false).await? {
            Ok(step) => {
                let confirmed: bool = self
                    .store
                    .factor_write(FactorWrite::Confirm {
                        person: person.as_str().into(),
                        step,
                        actor: actor.audit_name(),
                        now: self.now(),
                    })
                    .await?;
                Ok(if confirmed {
                    Ok(())
                } else {
                    Err("that enrolment was replaced or confirmed meanwhile; look again".into())
                })
            }
            Err(why) => Ok(Err(why)),
        }
    }

    /// An admin removes `person`'s second factor (they enrol again). Audited,
    /// refusals too.
    pub async fn reset_factor(
        &self,
        actor: &Actor,
        person: &PersonId,
    ) -> anyhow::Result<Result<bool, String>> {
        let admin = matches!(actor, Actor::System)
            || actor
                .person()
                .is_some_and(|p| policy::is_admin(&self.config, p));
        if !admin {
            let why = "only an admin ([web] admins) may reset a second factor";
            self.store
                .audit(
                    &actor.audit_name(),
                    "2fa.reset_refused",
                    None,
                    serde_json::json!({ "person": person, "reason": why }),
                    self.now(),
                )
                .await?;
            return Ok(Err(why.into()));
        }
        let had: bool = self
            .store
            .factor_write(FactorWrite::Reset {
                person: person.as_str().into(),
                actor: actor.audit_name(),
                now: self.now(),
            })
            .await?;
        Ok(Ok(had))
    }

    /// The step-up check of an approval of `run` by `approver`: the time step
    /// of an accepted code (consumed with the decision), or why not (audited).
    pub(super) async fn prove_step_up(
        &self,
        actor: &Actor,
        approver: &PersonId,
        run: RunId,
        proof: Option<&Proof>,
    ) -> anyhow::Result<Result<i64, String>> {
        let factor = match self.store.second_factor(approver.as_str()).await? {
            Some(f) if f.confirmed_at.is_some() => f,
            _ => {
                let why = format!(
                    "run {run} is critical: approving it needs a second factor, and {approver} has none yet; \
                     enrol at {}/account/2fa or with `execgov 2fa enrol`, then approve with a code",
                    self.config.web.public_url.trim_end_matches('/')
                );
                self.refuse_code(actor, approver, Some(run), &why, false, None)
                    .await?;
                return Ok(Err(why));
            }
        };
        let Some(proof) = proof else {
            let why = format!(
                "run {run} is critical: approve it with the 6-digit code of your authenticator app: {}",
                code_hint(actor, run)
            );
            self.refuse_code(actor, approver, Some(run), &why, false, None)
                .await?;
            return Ok(Err(why));
        };
        self.check_code(actor, &factor, Some(run), &proof.code, proof.seen_by_others)
            .await
    }

    /// Checks `code` against `factor` at now; every refusal is audited.
    async fn check_code(
        &self,
        actor: &Actor,
        factor: &SecondFactor,
        run: Option<RunId>,
        code: &str,
        seen_by_others: bool,
    ) -> anyhow::Result<Result<i64, String>> {
        let person = PersonId(factor.person.clone());
        let now = self.now();
        let refuse = |why: String, wrong: bool, burn: Option<i64>| async move {
            let locked = self
                .refuse_code(actor, &person, run, &why, wrong, burn)
                .await?;
            anyhow::Ok(Err(match locked {
                Some(until) => format!(
                    "{why}; that was {MAX_FAILURES} wrong codes in a row, so approvals by {person} are locked until {}",
                    hhmm(until)
                ),
                None => why,
            }))
        };
        if let Some(until) = factor.locked_at(now) {
            let why = format!(
                "approvals by {} are locked until {} after {MAX_FAILURES} wrong codes; try again then",
                factor.person,
                hhmm(until)
            );
            return refuse(why, false, None).await;
        }
        let code = match Code::parse(code) {
            Ok(c) => c,
            Err(why) => return refuse(why, false, None).await,
        };
        let Some(secret) = totp::open(&self.factor_key(), &factor.person, &factor.sealed) else {
            let why = format!(
                "{}'s second factor cannot be read with this server's secret (was the web secret changed?); \
                 an admin runs `execgov 2fa reset {}` and it is enrolled again",
                factor.person, factor.person
            );
            return refuse(why, false, None).await;
        };
        let left = MAX_FAILURES - factor.failures - 1;
        let checked = totp::check(&secret, &code, now, factor.last_step);
        if seen_by_others {
            // Refused whatever it is; a right one is burned, a wrong one counts.
            let why = "a code sent in a shared room may have been read by others: it is not accepted; \
                       treat it as used, and send the next code to me in a direct message";
            return match checked {
                Check::Accepted(step) => refuse(why.into(), false, Some(step)).await,
                Check::Reused => refuse(why.into(), false, None).await,
                Check::Wrong => refuse(why.into(), true, None).await,
            };
        }
        match checked {
            Check::Accepted(step) => Ok(Ok(step)),
            Check::Reused => {
                let why = format!(
                    "that code was already used; wait for the next one ({left} tries left)"
                );
                refuse(why, true, None).await
            }
            Check::Wrong => {
                let why = format!("wrong code ({left} tries left)");
                refuse(why, true, None).await
            }
        }
    }

    /// Audits a refused code (`2fa.refused`, counting it towards the lock when
    /// `wrong`, burning the step `burn`); answers the lock's end if it locked now.
    async fn refuse_code(
        &self,
        actor: &Actor,
        person: &PersonId,
        run: Option<RunId>,
        why: &str,
        wrong: bool,
        burn: Option<i64>,
    ) -> anyhow::Result<Option<i64>> {
        Ok(self
            .store
            .factor_write(FactorWrite::Refuse {
                person: person.as_str().into(),
                actor: actor.audit_name(),
                run,
                reason: why.into(),
                wrong,
                burn,
                now: self.now(),
            })
            .await?)
    }
}

/// How to send a code from where the person is.
fn code_hint(actor: &Actor, run: RunId) -> String {
    let platform = match actor {
        Actor::Person { via, .. } | Actor::Unknown { via } => Some(via.platform),
        _ => None,
    };
    match platform {
        Some(Platform::Slack) => {
            format!("click Approve and type it in the dialog, or `/run approve {run} CODE`")
        }
        Some(Platform::Matrix) => format!("send `!approve {run} CODE` to me in a direct message"),
        Some(Platform::Web) => "type it in the code field beside Approve".into(),
        _ => format!("`execgov approve {run} --code CODE`"),
    }
}

fn hhmm(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%H:%M UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}
