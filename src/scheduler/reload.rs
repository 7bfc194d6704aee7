//! Reloading the manifests while serving, so edits (schedules included) take effect
//! without a restart. Three triggers: SIGHUP; a change in the manifests folder
//! (file names, sizes and modification times, polled every [`POLL`]); and
//! `execgov reload`, which bumps a generation number in the store that every server
//! sharing the database polls, so it reaches all of them, on any host.

use crate::engine::Engine;
use crate::manifest::{self, Diagnostic};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// How often the folder and the store's reload request are looked at.
pub const POLL: Duration = Duration::from_secs(2);

/// What a reload loaded.
#[derive(Debug, Clone)]
pub struct Reloaded {
    pub scripts: usize,
    /// Problems in the folder now; a manifest with problems is left out.
    pub problems: Vec<Diagnostic>,
    /// Scripts whose file now has problems, kept as they were loaded before, so a
    /// typo saved mid-edit does not silently stop a script and its schedules.
    pub kept: Vec<String>,
}

/// Loads the manifests folder again and swaps it into the engine. Runs already
/// requested keep the manifest digest they were requested with.
pub fn reload_manifests(engine: &Engine) -> Reloaded {
    let config = engine.config();
    let (mut catalog, problems) = manifest::load_catalog(&config.manifests, config);
    let mut kept = Vec::new();
    for old in engine.catalog().iter() {
        let broken = problems.iter().any(|p| p.file == old.path);
        if broken && catalog.get(old.name.as_str()).is_none() {
            kept.push(old.name.to_string());
            catalog.insert(old.clone());
        }
    }
    let scripts = catalog.len();
    engine.replace_catalog(catalog);
    Reloaded {
        scripts,
        problems,
        kept,
    }
}

/// Reloads on SIGHUP, on a change in the manifests folder and on `execgov reload`,
/// until `shutdown`.
pub async fn reload_until_stopped(engine: Arc<Engine>, shutdown: CancellationToken) {
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "no SIGHUP handler; reload by `execgov reload` or by editing the manifests");
            None
        }
    };
    let dir = engine.config().manifests.clone();
    let mut seen = fingerprint(&dir);
    let mut generation = engine.store().reload_generation().await.unwrap_or(0);
    // Whatever changed between the engine's first load and the snapshot above.
    let r = reload_manifests(&engine);
    tracing::debug!(
        scripts = r.scripts,
        problems = r.problems.len(),
        "manifests loaded again as reload starts"
    );
    let mut every = tokio::time::interval(POLL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let why = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            Some(()) = next_hangup(&mut hangup) => "SIGHUP",
            _ = every.tick() => {
                let requested = match engine.store().reload_generation().await {
                    Ok(g) => g,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the reload request failed");
                        generation
                    }
                };
                if requested != generation {
                    generation = requested;
                    "execgov reload"
                } else if fingerprint(&dir) != seen {
                    "the manifests folder changed"
                } else {
                    continue;
                }
            }
        };
        seen = fingerprint(&dir);
        let r = reload_manifests(&engine);
        for p in &r.problems {
            tracing::warn!("manifest left out: {p}");
        }
        for name in &r.kept {
            tracing::warn!(script = %name, "manifest has problems now; keeping the version loaded before");
        }
        tracing::info!(scripts = r.scripts, why, "manifests reloaded");
    }
}

async fn next_hangup(s: &mut Option<Signal>) -> Option<()> {
    match s {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// Name, size and modification time of every file in `dir` (not recursive: the
/// catalog reads only `dir/*.toml`; scripts are bound by digest at request time).
fn fingerprint(dir: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            meta.is_file()
                .then(|| (e.path(), meta.len(), meta.modified().ok()))
        })
        .collect();
    out.sort();
    out
}
