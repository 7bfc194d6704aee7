//! Second factors for step-up approval: one TOTP secret per person, sealed
//! (the store never sees it in the clear), the newest step whose code was
//! accepted (a code works once), and the count of wrong codes that locks a
//! person's approvals. Checking a code is the engine's (`engine/step_up.rs`);
//! the store makes each outcome atomic and audited. Consuming a code for an
//! approval happens inside the decision's transaction (`approvals.rs`).

use serde_json::json;

use super::ops::{Durability, Write};
use super::sql::{Row, Tx, args};
use super::{Store, StoreError};
use crate::types::RunId;

/// Wrong codes in a row that lock a person's approvals.
pub const MAX_FAILURES: i64 = 5;
/// How long such a lock lasts.
pub const LOCK_MS: i64 = 15 * 60 * 1000;

/// A person's second factor as stored.
#[derive(Debug, Clone)]
pub struct SecondFactor {
    pub person: String,
    /// Sealed with [`crate::totp::seal`].
    pub sealed: String,
    pub created_at: i64,
    /// `None` while the enrolment waits for its first code.
    pub confirmed_at: Option<i64>,
    pub last_step: i64,
    pub failures: i64,
    pub locked_until: Option<i64>,
}

impl SecondFactor {
    fn from_row(r: &Row) -> Result<SecondFactor, StoreError> {
        Ok(SecondFactor {
            person: r.get("person")?,
            sealed: r.get("secret")?,
            created_at: r.get("created_at")?,
            confirmed_at: r.get("confirmed_at")?,
            last_step: r.get("last_step")?,
            failures: r.get("failures")?,
            locked_until: r.get("locked_until")?,
        })
    }

    /// Until when approvals are locked, if they are at `now`.
    pub fn locked_at(&self, now: i64) -> Option<i64> {
        self.locked_until.filter(|until| *until > now)
    }
}

/// The writes of this table; each is audited.
#[derive(Debug)]
pub enum FactorWrite {
    /// Keeps a new, unconfirmed secret for `person` (replacing an unconfirmed
    /// one); `2fa.enrolment_started`. Answers false when a confirmed one exists.
    Start {
        person: String,
        sealed: String,
        actor: String,
        now: i64,
    },
    /// Confirms the enrolment by its first code's `step`; `2fa.enrolled`.
    /// Answers false when there is no unconfirmed enrolment any more.
    Confirm {
        person: String,
        step: i64,
        actor: String,
        now: i64,
    },
    /// A code refused: `2fa.refused` with the reason (and the run, for an
    /// approval). `wrong` counts it towards the lock; `burn` marks a step used
    /// (a right code that was seen where it may not be). Answers the lock's
    /// end when this refusal locked the person.
    Refuse {
        person: String,
        actor: String,
        run: Option<RunId>,
        reason: String,
        wrong: bool,
        burn: Option<i64>,
        now: i64,
    },
    /// An admin removes a person's second factor; `2fa.reset`. Answers
    /// whether there was one.
    Reset {
        person: String,
        actor: String,
        now: i64,
    },
}

pub(super) async fn apply(
    tx: &mut Tx<'_>,
    w: FactorWrite,
) -> Result<super::answer::Answer, StoreError> {
    Ok(match w {
        FactorWrite::Start {
            person,
            sealed,
            actor,
            now,
        } => {
            let n = tx
                .execute(
                    "INSERT INTO second_factors (person, secret, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (person) DO UPDATE SET secret = $2, created_at = $3, \
                     last_step = 0, failures = 0, locked_until = NULL \
                     WHERE second_factors.confirmed_at IS NULL",
                    args![person.as_str(), sealed.as_str(), now],
                )
                .await?;
            if n > 0 {
                tx.audit(
                    now,
                    &actor,
                    "2fa.enrolment_started",
                    None,
                    json!({ "person": person }),
                );
            }
            (n > 0).into()
        }
        FactorWrite::Confirm {
            person,
            step,
            actor,
            now,
        } => {
            let n = tx
                .execute(
                    "UPDATE second_factors SET confirmed_at = $2, last_step = $3, failures = 0 \
                     WHERE person = $1 AND confirmed_at IS NULL AND last_step < $3",
                    args![person.as_str(), now, step],
                )
                .await?;
            if n > 0 {
                tx.audit(
                    now,
                    &actor,
                    "2fa.enrolled",
                    None,
                    json!({ "person": person }),
                );
            }
            (n > 0).into()
        }
        FactorWrite::Refuse {
            person,
            actor,
            run,
            reason,
            wrong,
            burn,
            now,
        } => {
            let row = tx
                .fetch_optional(
                    "UPDATE second_factors SET \
                       failures = CASE WHEN $2 AND failures + 1 >= $4 THEN 0 \
                                       WHEN $2 THEN failures + 1 ELSE failures END, \
                       locked_until = CASE WHEN $2 AND failures + 1 >= $4 THEN $5 \
                                           ELSE locked_until END, \
                       last_step = CASE WHEN $3 > last_step THEN $3 ELSE last_step END \
                     WHERE person = $1 RETURNING locked_until",
                    args![
                        person.as_str(),
                        wrong,
                        burn.unwrap_or(0),
                        MAX_FAILURES,
                        now + LOCK_MS
                    ],
                )
                .await?;
            let locked = match row {
                Some(r) => r
                    .first::<Option<i64>>()?
                    .filter(|until| *until == now + LOCK_MS),
                None => None,
            };
            let details = json!({
                "person": person,
                "reason": reason,
                "burned": burn.is_some(),
                "locked_until": locked,
            });
            tx.audit(now, &actor, "2fa.refused", run, details);
            if let Some(until) = locked {
                let details = json!({ "person": person, "until": until, "after": MAX_FAILURES });
                tx.audit(now, &actor, "2fa.locked", run, details);
            }
            locked.into()
        }
        FactorWrite::Reset { person, actor, now } => {
            let n = tx
                .execute(
                    "DELETE FROM second_factors WHERE person = $1",
                    args![person.as_str()],
                )
                .await?;
            tx.audit(
                now,
                &actor,
                "2fa.reset",
                None,
                json!({ "person": person, "had_one": n > 0 }),
            );
            (n > 0).into()
        }
    })
}

/// Consumes an approval's code inside its decision: the step must be newer than
/// the last accepted one and the person not locked. A concurrent use of the
/// same code loses here.
pub(super) async fn consume(
    tx: &mut Tx<'_>,
    person: &str,
    step: i64,
    now: i64,
) -> Result<(), StoreError> {
    let n = tx
        .execute(
            "UPDATE second_factors SET last_step = $2, failures = 0 \
             WHERE person = $1 AND confirmed_at IS NOT NULL AND last_step < $2 \
             AND (locked_until IS NULL OR locked_until <= $3)",
            args![person, step, now],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::Conflict(
            "that code was already used; wait for the next one".into(),
        ));
    }
    Ok(())
}

impl Store {
    /// A person's second factor, confirmed or not.
    pub async fn second_factor(&self, person: &str) -> Result<Option<SecondFactor>, StoreError> {
        self.fetch_optional(
            "SELECT * FROM second_factors WHERE person = $1",
            args![person],
        )
        .await?
        .as_ref()
        .map(SecondFactor::from_row)
        .transpose()
    }

    /// One of [`FactorWrite`], synced: a person is told what it did.
    pub async fn factor_write<T: TryFrom<super::answer::Answer, Error = StoreError>>(
        &self,
        w: FactorWrite,
    ) -> Result<T, StoreError> {
        self.write(Write::SecondFactor(w), Durability::Synced).await
    }
}
