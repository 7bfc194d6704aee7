//! Retention (`[retention]`, `docs/retention.md`): finished runs lose their
//! payloads once they are older than the configured durations: the log
//! (`logs`), the bytes of their files (`artifacts`), the output tail, result
//! and run folder (`runs`). What stays: the run row, with when each payload
//! went and the removed log's sha256 and size; the files' names and digests;
//! every audit entry, so `execgov audit verify` holds as before.
//!
//! A pass walks the candidates by id in small batches ([`Pass`]): the logs of
//! a batch are read and hashed first (reads, beside the writer), then one
//! relaxed write removes the batch and appends one `retention.pruned` entry,
//! then the files on disk go, then a short pause lets other writes through.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::clock::format_ms;
use crate::engine::Engine;
use crate::store::{Cuts, Prune, Run, SeenLog};
use crate::types::RunId;

/// How a pass goes through the backlog.
#[derive(Debug, Clone)]
pub struct Pass {
    /// Runs per write.
    pub batch: usize,
    /// Bytes of logs read and removed per write at most (a batch closes early
    /// when its logs reach this), so one write never holds gigabytes.
    pub log_budget: u64,
    /// Between two writes, so other writes go first.
    pub pause: Duration,
}

impl Default for Pass {
    fn default() -> Self {
        Pass {
            batch: 200,
            log_budget: 64 * 1024 * 1024,
            pause: Duration::from_millis(50),
        }
    }
}

/// What a pass removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Writes made (one `retention.pruned` entry each).
    pub batches: usize,
    /// Runs that lost anything.
    pub runs: usize,
    pub logs: usize,
    /// Bytes of the logs removed.
    pub log_bytes: u64,
    pub files: usize,
    pub outputs: usize,
}

/// The cuts of `engine`'s `[retention]` at `now`. `None`: nothing is pruned.
pub fn cuts(engine: &Engine, now: i64) -> Option<Cuts> {
    let r = &engine.config().retention;
    let cut = |d: Option<Duration>| d.map(|d| now - d.as_millis() as i64);
    r.is_set().then(|| Cuts {
        logs: cut(r.logs),
        files: cut(r.artifacts),
        output: cut(r.runs),
    })
}

/// One pass over every finished run past a retention, in batches.
pub async fn prune(engine: &Engine, pass: &Pass) -> anyhow::Result<Pruned> {
    let mut total = Pruned::default();
    let Some(cuts) = cuts(engine, engine.now()) else {
        return Ok(total);
    };
    let store = engine.store();
    let mut after = RunId(0);
    loop {
        let runs = store
            .prune_candidates(cuts, after, pass.batch.max(1))
            .await
            .context("finding runs past their retention")?;
        let Some(last) = runs.last() else {
            break;
        };
        after = last.id;
        let mut batch = Vec::new();
        let mut budget = pass.log_budget;
        for run in &runs {
            let p = plan(engine, run, cuts).await?;
            let bytes = p.log.as_ref().map_or(0, |l| l.bytes);
            if bytes > budget && !batch.is_empty() {
                // Over the budget: this run and the rest wait for the next write.
                after = RunId(run.id.0 - 1);
                break;
            }
            budget = budget.saturating_sub(bytes);
            batch.push(p);
        }
        let done = store
            .prune(batch, engine.now())
            .await
            .context("removing the payloads of a batch of runs")?;
        for p in &done {
            let run = runs.iter().find(|r| r.id == p.run).expect("a candidate");
            remove_files(engine, run, p).await;
            total.runs += 1;
            if let Some(log) = &p.log {
                total.logs += usize::from(log.sha256.is_some());
                total.log_bytes += log.bytes;
            }
            total.files += usize::from(p.files);
            total.outputs += usize::from(p.output);
        }
        total.batches += usize::from(!done.is_empty());
        tokio::time::sleep(pass.pause).await;
    }
    Ok(total)
}

/// What to remove from `run` at these cuts, with its log read and hashed.
async fn plan(engine: &Engine, run: &Run, cuts: Cuts) -> anyhow::Result<Prune> {
    let past = |cut: Option<i64>| cut.zip(run.finished_at).is_some_and(|(c, f)| f < c);
    let log = if past(cuts.logs) && run.log_pruned_at.is_none() {
        Some(read_log(engine, run).await?)
    } else {
        None
    };
    Ok(Prune {
        run: run.id,
        log,
        files: past(cuts.files) && run.files_pruned_at.is_none(),
        output: past(cuts.output) && run.output_pruned_at.is_none(),
    })
}

/// The run's log as it is now: in the database, or in a file an earlier
/// version wrote.
async fn read_log(engine: &Engine, run: &Run) -> anyhow::Result<SeenLog> {
    let store = engine.store();
    let stored = store.log_size(run.id).await?;
    let bytes = if stored > 0 {
        Some(store.log_bytes(run.id, 0, stored).await?)
    } else {
        match &run.log_path {
            Some(path) => tokio::fs::read(path).await.ok(),
            None => None,
        }
    };
    Ok(match bytes {
        Some(b) if !b.is_empty() || stored > 0 => SeenLog {
            sha256: Some(hex::encode(Sha256::digest(&b))),
            bytes: b.len() as u64,
            stored,
        },
        _ => SeenLog {
            sha256: None,
            bytes: 0,
            stored,
        },
    })
}

/// The files on this server's disk that went with what the write removed:
/// a legacy log file, the copies of files made for chat uploads, the run
/// folder. Only inside the service's own run and artifact folders; a failure
/// is logged (the database already says what went).
async fn remove_files(engine: &Engine, run: &Run, p: &Prune) {
    let config = engine.config();
    let runs_dirs = [config.runner.runs_dir.clone(), config.data_dir.join("runs")];
    let artifacts_dir = config.data_dir.join("artifacts");
    let id = run.id.to_string();
    let mut gone: Vec<PathBuf> = Vec::new();
    if p.log.is_some()
        && let Some(path) = &run.log_path
        && runs_dirs.iter().any(|d| inside(Path::new(path), d))
    {
        gone.push(PathBuf::from(path));
    }
    if p.files {
        gone.push(artifacts_dir.join(&id));
        if let Ok(list) = engine.store().artifacts(run.id).await {
            for a in list {
                let path = Path::new(&a.path);
                if path.is_absolute()
                    && runs_dirs
                        .iter()
                        .chain([&artifacts_dir])
                        .any(|d| inside(path, d))
                {
                    gone.push(path.to_path_buf());
                }
            }
        }
    }
    if p.output {
        for d in &runs_dirs {
            gone.push(d.join(&id));
        }
    }
    for path in gone {
        let removed = match tokio::fs::symlink_metadata(&path).await {
            Ok(m) if m.is_dir() => tokio::fs::remove_dir_all(&path).await,
            Ok(_) => tokio::fs::remove_file(&path).await,
            Err(_) => continue,
        };
        if let Err(e) = removed {
            tracing::warn!(run_id = %run.id, path = %path.display(), error = %e,
                "retention could not remove a file of a pruned run");
        }
    }
}

/// Whether `path` is strictly inside `dir`, both resolved (no `..` or link
/// leads out).
fn inside(path: &Path, dir: &Path) -> bool {
    match (std::fs::canonicalize(path), std::fs::canonicalize(dir)) {
        (Ok(p), Ok(d)) => p != d && p.starts_with(d),
        _ => false,
    }
}

/// What retention removed from `run`, one sentence each, for every surface
/// (the web page, `execgov show`, chat status). `has_files`: the run has
/// files (their names stay).
pub fn notes(run: &Run, has_files: bool) -> Vec<String> {
    let mut out = Vec::new();
    if let (Some(at), Some(sha)) = (run.log_pruned_at, &run.log_sha256) {
        out.push(format!(
            "log removed by retention on {} (sha256 {sha}, {} bytes)",
            format_ms(at),
            run.log_bytes
        ));
    }
    if let Some(at) = run.files_pruned_at.filter(|_| has_files) {
        out.push(format!(
            "files removed by retention on {} (their names and sha256 stay)",
            format_ms(at)
        ));
    }
    if let Some(at) = run.output_pruned_at.filter(|_| run.started_at.is_some()) {
        out.push(format!(
            "output and result removed by retention on {}",
            format_ms(at)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{new_run, recorded};

    #[test]
    fn notes_say_what_went_when_and_the_digest() {
        let mut run = recorded(new_run("s", "p"), RunId(3));
        assert!(notes(&run, true).is_empty(), "nothing pruned, nothing said");
        run.started_at = Some(0);
        run.log_pruned_at = Some(86_400_000);
        run.log_sha256 = Some("ab12".into());
        run.log_bytes = 42;
        run.files_pruned_at = Some(86_400_000);
        run.output_pruned_at = Some(86_400_000);
        let said = notes(&run, true);
        assert_eq!(
            said,
            [
                "log removed by retention on 1970-01-02 00:00:00 UTC (sha256 ab12, 42 bytes)",
                "files removed by retention on 1970-01-02 00:00:00 UTC (their names and sha256 stay)",
                "output and result removed by retention on 1970-01-02 00:00:00 UTC",
            ]
        );
        assert_eq!(notes(&run, false).len(), 2, "no files, no word of files");
    }
}
