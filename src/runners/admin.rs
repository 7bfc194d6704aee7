//! `execgov runners enrol | list | revoke`: what an operator does on the
//! server, all of it audited.

use std::time::Duration;

use crate::engine::Engine;
use crate::links::{new_token, token_hash};
use crate::store::{Enrolment, Run, RunnerRecord};
use crate::types::check_tag;
use execgov_runner::protocol::ENROLMENT_PREFIX;

/// How long an enrolment token may wait for its runner.
pub const ENROLMENT_TTL: Duration = Duration::from_secs(3600);

/// A one-time enrolment token for a new runner `name` with `tags`, valid for
/// [`ENROLMENT_TTL`]; only its hash is kept. `Err` says what to fix.
pub async fn enrolment_token(
    engine: &Engine,
    name: &str,
    tags: &[String],
    actor: &str,
) -> anyhow::Result<String> {
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !name.starts_with("local@");
    if !name_ok {
        anyhow::bail!(
            "`{name}` is not a runner name: letters, digits, `-`, `_`, `.`, at most 64 \
             (names starting with `local@` belong to the services' own runners)"
        );
    }
    for t in tags {
        check_tag(t).map_err(|e| anyhow::anyhow!(e))?;
    }
    let mut tags = tags.to_vec();
    tags.sort();
    tags.dedup();
    let token = format!("{ENROLMENT_PREFIX}{}", new_token());
    let now = engine.now();
    engine
        .store()
        .issue_enrolment(Enrolment {
            name: name.to_string(),
            tags,
            token_hash: token_hash(&token),
            expires_at: now + ENROLMENT_TTL.as_millis() as i64,
            actor: actor.to_string(),
            now,
        })
        .await?;
    Ok(token)
}

/// Every runner, by name.
pub async fn list_runners(engine: &Engine) -> anyhow::Result<Vec<RunnerRecord>> {
    Ok(engine.store().runners().await?)
}

/// Revokes runner `name`: its next call is refused, and its running runs
/// become `interrupted` (their threads are told).
pub async fn revoke_runner(engine: &Engine, name: &str, actor: &str) -> anyhow::Result<Vec<Run>> {
    match engine
        .store()
        .revoke_runner(name, actor, engine.now())
        .await?
    {
        Some(interrupted) => {
            for run in &interrupted {
                engine.emit(run);
            }
            Ok(interrupted)
        }
        None => anyhow::bail!(
            "no runner `{name}` (or it is revoked already); `execgov runners list` shows them"
        ),
    }
}
