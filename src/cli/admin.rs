//! `check`, `runs`, `show`, `audit verify`: reading and linting, no runs started.

use super::EXIT_RUN_FAILED;
use crate::app;
use crate::clock::{SystemClock, format_ms};
use crate::config::Config;
use crate::engine::run_summary;
use crate::manifest;
use crate::store::{ChainCheck, RunFilter, Store};
use crate::types::{RunId, RunState};
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// `execgov check [DIR]`: every problem as `file:line: message`; exit 1 if any.
pub(super) fn check(config: &Config, dir: Option<PathBuf>) -> ExitCode {
    let dir = dir.unwrap_or_else(|| config.manifests.clone());
    let (catalog, problems) = manifest::load_catalog(&dir, config);
    for p in &problems {
        println!("{p}");
    }
    if problems.is_empty() {
        println!("ok: {} manifests in {}", catalog.len(), dir.display());
        ExitCode::SUCCESS
    } else {
        eprintln!("{} problem(s) in {}", problems.len(), dir.display());
        ExitCode::from(EXIT_RUN_FAILED)
    }
}

async fn store(config: &Config) -> anyhow::Result<Store> {
    Store::connect(&config.database_url).await.with_context(|| {
        format!(
            "opening the database {}",
            app::redact_url(&config.database_url)
        )
    })
}

pub(super) async fn runs(
    config: Config,
    script: Option<String>,
    state: Option<String>,
    limit: i64,
) -> anyhow::Result<ExitCode> {
    let state = match state {
        Some(s) => Some(RunState::parse(&s).with_context(|| {
            let all: Vec<&str> = RunState::ALL.iter().map(|s| s.as_str()).collect();
            format!("--state {s}: not a state (states: {})", all.join(", "))
        })?),
        None => None,
    };
    let store = store(&config).await?;
    let runs = store
        .list_runs(&RunFilter {
            script,
            person: None,
            state,
            before_id: None,
            limit,
        })
        .await?;
    if runs.is_empty() {
        println!("no runs");
    }
    for r in runs {
        println!(
            "{:>6}  {:<18} {:<18} {:<24} {}  {}",
            r.id,
            r.state.as_str(),
            r.script,
            r.requester,
            format_ms(r.created_at),
            crate::engine::render::stored_args_text(&r)
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn show(config: Config, id: &str) -> anyhow::Result<ExitCode> {
    let id = RunId::parse(id).map_err(anyhow::Error::msg)?;
    let engine = app::build_engine(Arc::new(config), Arc::new(SystemClock)).await?;
    let run = match engine.store().get_run(id).await {
        Ok(r) => r,
        Err(crate::store::StoreError::NotFound(_)) => {
            eprintln!("no run {id}");
            return Ok(ExitCode::from(super::EXIT_REFUSED));
        }
        Err(e) => return Err(e.into()),
    };
    let approvals = engine.store().approvals(id).await?;
    println!(
        "{}",
        run_summary(&run, &approvals, Some(&engine.audit_link(&run)))
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn audit_verify(config: Config) -> anyhow::Result<ExitCode> {
    let store = store(&config).await?;
    match store.verify_chain().await? {
        ChainCheck::Ok { entries } => {
            println!("ok: {entries} entries");
            Ok(ExitCode::SUCCESS)
        }
        ChainCheck::Broken { seq, reason } => {
            println!("broken at entry {seq}: {reason}");
            Ok(ExitCode::from(EXIT_RUN_FAILED))
        }
    }
}
