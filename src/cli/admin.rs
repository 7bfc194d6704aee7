//! `check`, `runs`, `show`, `list --json`, `explain --json`, `audit verify |
//! key | checkpoint`: reading and linting, no runs started.

use super::{As, EXIT_RUN_FAILED, local};
use crate::app;
use crate::audit;
use crate::clock::{Clock, SystemClock, format_ms};
use crate::config::Config;
use crate::engine::{Engine, run_summary};
use crate::manifest;
use crate::policy;
use crate::store::web::{RunQuery, Visibility};
use crate::store::{ChainCheck, Run, Store};
use crate::types::{Actor, RunId, RunState};
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// `execgov check [DIR]`: every problem as `file:line: message`, then each schedule
/// of the manifests that load with its next fire times (so a wrong expression shows
/// in what it does, not only in what it says); exit 1 if any problem.
pub(super) fn check(config: &Config, dir: Option<PathBuf>) -> ExitCode {
    let dir = dir.unwrap_or_else(|| config.manifests.clone());
    let (catalog, problems) = manifest::load_catalog(&dir, config);
    for p in &problems {
        println!("{p}");
    }
    super::schedules::print_next_fires(&catalog, SystemClock.now_ms());
    if problems.is_empty() {
        println!("ok: {} manifests in {}", catalog.len(), dir.display());
        ExitCode::SUCCESS
    } else {
        eprintln!("{} problem(s) in {}", problems.len(), dir.display());
        ExitCode::from(EXIT_RUN_FAILED)
    }
}

async fn store(config: &Config) -> anyhow::Result<Store> {
    crate::audit::open_store(config).await
}

/// `execgov runs`'s filters.
pub(super) struct RunsArgs {
    pub script: Option<String>,
    pub state: Option<String>,
    pub limit: i64,
    pub json: bool,
}

/// `execgov runs`: every run, or with `--as` the runs that person may see
/// (the same rule as the web's `/runs`).
pub(super) async fn runs(config: Config, a: RunsArgs, who: &As) -> anyhow::Result<ExitCode> {
    let state = match a.state {
        Some(s) => Some(RunState::parse(&s).with_context(|| {
            let all: Vec<&str> = RunState::ALL.iter().map(|s| s.as_str()).collect();
            format!("--state {s}: not a state (states: {})", all.join(", "))
        })?),
        None => None,
    };
    let engine = app::build_engine(Arc::new(config), Arc::new(SystemClock)).await?;
    let viewer = viewer(&engine, who).await?;
    let visible = match &viewer {
        Some(actor) => policy::visibility(engine.config(), &engine.catalog(), actor),
        None => Visibility::All,
    };
    let runs: Vec<Run> = engine
        .store()
        .query_runs(&RunQuery {
            script: a.script,
            state,
            limit: a.limit,
            visible,
            ..RunQuery::default()
        })
        .await?
        .into_iter()
        .filter(|r| viewer.as_ref().is_none_or(|v| engine.may_view(v, r)))
        .collect();
    if a.json {
        let docs: Vec<serde_json::Value> = runs
            .iter()
            .map(|r| crate::web::run_json(&engine, r))
            .collect();
        println!("{}", serde_json::to_string_pretty(&docs)?);
        return Ok(ExitCode::SUCCESS);
    }
    if runs.is_empty() {
        println!("no runs");
    }
    for r in runs {
        // The person (an impersonation shows in `show`), else who asked: a
        // schedule, an unmapped account.
        let by = r
            .requester_person
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_else(|| r.requester.clone());
        println!(
            "{:>6}  {:<18} {:<18} {:<12} {}  {}",
            r.id.to_string(),
            r.state.as_str(),
            r.script,
            by,
            format_ms(r.created_at),
            crate::engine::render::stored_args_text(&r)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// With `--as PERSON`, the actor whose view `runs` and `show` keep to;
/// without, None: whoever reads the database sees every run.
async fn viewer(engine: &Engine, who: &As) -> anyhow::Result<Option<Actor>> {
    match who.person {
        Some(_) => Ok(Some(local::cli_actor(engine, who).await?)),
        None => Ok(None),
    }
}

/// `execgov show ID`: one run; with `--as`, a run that person may not see
/// answers as a missing one does.
pub(super) async fn show(
    config: Config,
    id: &str,
    json: bool,
    who: &As,
) -> anyhow::Result<ExitCode> {
    let id = RunId::parse(id).map_err(anyhow::Error::msg)?;
    let engine = app::build_engine(Arc::new(config), Arc::new(SystemClock)).await?;
    let viewer = viewer(&engine, who).await?;
    let run = match engine.store().get_run(id).await {
        Ok(r) if viewer.as_ref().is_none_or(|v| engine.may_view(v, &r)) => r,
        Ok(_) | Err(crate::store::StoreError::NotFound(_)) => {
            eprintln!("no run {id}");
            return Ok(ExitCode::from(super::EXIT_REFUSED));
        }
        Err(e) => return Err(e.into()),
    };
    if json {
        let doc = crate::web::run_document(&engine, &run).await?;
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    let approvals = engine.store().approvals(id).await?;
    let has_files = !engine.store().artifacts(id).await?.is_empty();
    println!(
        "{}",
        run_summary(&run, &approvals, has_files, Some(&engine.audit_link(&run)))
    );
    Ok(ExitCode::SUCCESS)
}

/// `execgov explain SCRIPT … --json`: the explanation the text answer is made
/// from, as one document.
pub(super) async fn explain_json(
    config: Config,
    script: &str,
    args: &[(String, String)],
    who: &As,
) -> anyhow::Result<ExitCode> {
    let engine = app::build_engine(Arc::new(config), Arc::new(SystemClock)).await?;
    let actor = local::cli_actor(&engine, who).await?;
    match engine
        .explanation(&actor, &local::cli_place(), script, args)
        .await?
    {
        Ok(e) => {
            println!("{}", serde_json::to_string_pretty(&e)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(message) => {
            eprintln!("{message}");
            if let Some(hint) = local::unmapped_hint(engine.config(), &actor) {
                eprintln!("{hint}");
            }
            Ok(ExitCode::from(super::EXIT_REFUSED))
        }
    }
}

/// `execgov audit verify [--checkpoints FILE [--key ed25519:…]]`: exit 0 when
/// the chain (and every checkpoint) holds, 1 naming the first entry (or
/// checkpoint line) that does not.
pub(super) async fn audit_verify(
    config: Config,
    checkpoints: Option<PathBuf>,
    key: Option<String>,
) -> anyhow::Result<ExitCode> {
    let witnessed = match &checkpoints {
        Some(file) => {
            let public = match &key {
                Some(token) => audit::parse_public_key(token)?,
                None => audit::signing_key(&config)?.verifying_key(),
            };
            match audit::read_checkpoints(file, &public)? {
                Ok(list) => list,
                Err(problem) => {
                    println!("checkpoint broken at {problem}");
                    return Ok(ExitCode::from(EXIT_RUN_FAILED));
                }
            }
        }
        None => Vec::new(),
    };
    let store = store(&config).await?;
    let key = store.audit_key();
    let check = store
        .verify_chain_against(key.as_deref(), &witnessed)
        .await?;
    let keyed_from = store.audit_keyed_from().await?;
    store.close().await;
    match check {
        ChainCheck::Ok { entries } => {
            let keyed = match keyed_from {
                Some(1) => "all keyed".to_string(),
                Some(seq) => format!("keyed from entry {seq}, plain SHA-256 before it"),
                None => "none keyed yet".to_string(),
            };
            let against = match (&checkpoints, witnessed.last()) {
                (Some(_), Some(last)) => format!(
                    "; {} checkpoint(s) hold, the newest at entry {}",
                    witnessed.len(),
                    last.seq
                ),
                (Some(_), None) => "; the checkpoint file is empty".to_string(),
                (None, _) => String::new(),
            };
            println!("ok: {entries} entries ({keyed}){against}");
            Ok(ExitCode::SUCCESS)
        }
        ChainCheck::Broken { seq, reason } => {
            println!("broken at entry {seq}: {reason}");
            Ok(ExitCode::from(EXIT_RUN_FAILED))
        }
    }
}

/// `execgov list --json`: every script with its parameters, and whether the
/// one asking may run it from here, as one document.
pub(super) async fn list_json(config: Config, who: &As) -> anyhow::Result<ExitCode> {
    let engine = app::build_engine(Arc::new(config), Arc::new(SystemClock)).await?;
    let actor = local::cli_actor(&engine, who).await?;
    let place = local::cli_place();
    let scripts: Vec<serde_json::Value> = engine
        .catalog()
        .iter()
        .map(|m| {
            let params: Vec<serde_json::Value> = m
                .params
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "name": p.name,
                        "type": p.kind.type_name(),
                        "required": p.required && p.default.is_none(),
                        "default": p.default,
                        "description": p.description,
                    })
                })
                .collect();
            serde_json::json!({
                "name": m.name,
                "description": m.description,
                "risk": m.risk.as_str(),
                "runs_on": m.runs_on,
                "may_run": policy::may_run(engine.config(), m, &actor, &place) == policy::Access::Allowed,
                "params": params,
                "usage": m.usage(),
            })
        })
        .collect();
    println!("{}", serde_json::to_string_pretty(&scripts)?);
    Ok(ExitCode::SUCCESS)
}

/// `execgov audit key`: the public key checkpoints are signed with, one token.
pub(super) fn audit_key(config: &Config) -> anyhow::Result<ExitCode> {
    let key = audit::signing_key(config)?;
    println!("{}", audit::public_key_token(&key.verifying_key()));
    Ok(ExitCode::SUCCESS)
}

/// `execgov audit checkpoint`: signs the chain's head now and appends it to the
/// checkpoint file; prints the line written, and where `serve` posts it.
pub(super) async fn audit_checkpoint(config: Config) -> anyhow::Result<ExitCode> {
    let key = audit::signing_key(&config)?;
    let store = store(&config).await?;
    let written = audit::write_checkpoint(&store, &config, &key, SystemClock.now_ms()).await;
    store.close().await;
    let written = written?;
    println!(
        "checkpoint: entry {} {} -> {}",
        written.seq,
        written.hash,
        config.checkpoint_file().display()
    );
    if let Some(channel) = &config.audit.channel {
        println!("serve posts it to the `{channel}` channel within seconds");
    }
    Ok(ExitCode::SUCCESS)
}

/// `execgov audit export --since DATE [--until DATE] [--out FILE]`: JSON lines
/// to stdout, or to FILE through a temporary file renamed at the end (an
/// interrupted export leaves no half-written FILE). Progress and the summary go
/// to stderr.
pub(super) async fn audit_export(
    config: Config,
    since: &str,
    until: Option<&str>,
    out: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    use audit::export::{End, export, parse_bound};
    let bound = |text: &str, end: End, flag: &str| {
        parse_bound(text, end).map_err(|e| anyhow::anyhow!("--{flag}: {e}"))
    };
    let since_ms = bound(since, End::Since, "since")?;
    let until_ms = match until {
        Some(u) => bound(u, End::Until, "until")?,
        None => SystemClock.now_ms() + 1,
    };
    if until_ms <= since_ms {
        anyhow::bail!(
            "--until must be after --since (got {since} .. {})",
            until.unwrap_or("now")
        );
    }
    let store = store(&config).await?;
    let range = format!("{} .. {}", format_ms(since_ms), format_ms(until_ms));
    let result = match &out {
        Some(path) => {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let tmp = path.with_file_name(format!(".{}.partial", name.unwrap_or_default()));
            let file = std::fs::File::create(&tmp)
                .with_context(|| format!("creating {}", tmp.display()))?;
            let mut w = std::io::BufWriter::new(file);
            let mut next_note = 100_000;
            let done = export(&store, since_ms, until_ms, &mut w, |n| {
                if n >= next_note {
                    eprintln!("exported {n} entries so far…");
                    next_note = n + 100_000;
                }
            })
            .await;
            match done {
                Ok(done) => {
                    let file = w.into_inner().map_err(|e| e.into_error())?;
                    file.sync_all()?;
                    std::fs::rename(&tmp, path).with_context(|| {
                        format!("renaming {} to {}", tmp.display(), path.display())
                    })?;
                    Ok(done)
                }
                Err(e) => {
                    drop(w);
                    let _ = std::fs::remove_file(&tmp);
                    Err(e)
                }
            }
        }
        None => {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::new(stdout.lock());
            export(&store, since_ms, until_ms, &mut w, |_| {}).await
        }
    };
    store.close().await;
    let done = result?;
    let seqs = match (done.first_seq, done.last_seq) {
        (Some(a), Some(b)) => format!(" (entries {a} to {b})"),
        _ => String::new(),
    };
    let whereto = out
        .map(|p| format!(" to {}", p.display()))
        .unwrap_or_default();
    eprintln!(
        "exported {} audit entries{seqs} from {range}{whereto}",
        done.entries
    );
    Ok(ExitCode::SUCCESS)
}

/// `execgov evidence RUN_ID [--out FILE]`: the run's signed evidence bundle
/// (see `audit::evidence`), written whole or not at all.
pub(super) async fn evidence(
    config: Config,
    id: &str,
    out: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let id = RunId::parse(id).map_err(|e| anyhow::anyhow!("{e}"))?;
    let key = audit::signing_key(&config)?;
    let engine = app::build_engine(Arc::new(config), Arc::new(SystemClock)).await?;
    let text = audit::evidence::bundle(&engine, id, &key, SystemClock.now_ms()).await;
    engine.store().close().await;
    let text = text?;
    match out {
        Some(path) => {
            let tmp = path.with_extension("partial");
            std::fs::write(&tmp, &text).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &path)
                .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
            eprintln!(
                "evidence of run {id} -> {} (check it with `execgov evidence verify {} --key {}`)",
                path.display(),
                path.display(),
                audit::public_key_token(&key.verifying_key())
            );
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `execgov evidence verify FILE --key ed25519:…`: offline, without the database.
pub(super) fn evidence_verify(file: &std::path::Path, key: &str) -> anyhow::Result<ExitCode> {
    let public = audit::parse_public_key(key)?;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    match audit::evidence::verify(&text, &public) {
        Ok(v) => {
            println!(
                "ok: run {}, {} approval(s) backed, {} chain entries up to the signed checkpoint at entry {}",
                v.run, v.approvals, v.entries, v.checkpoint_seq
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(why) => {
            println!("evidence broken: {why}");
            Ok(ExitCode::from(EXIT_RUN_FAILED))
        }
    }
}
