//! `[audit] sink = "file:PATH"`: every audit entry is appended to PATH, one
//! export line (`execgov.audit/1`, see `export.rs`) each, in chain order, about
//! as soon as it is written (the sink follows the chain every second).
//!
//! It follows the chain rather than hooking the write path, so it cannot slow
//! or fail a write, and it resumes where the file ends: the file's last line
//! names the last entry it holds. Several servers on one host may share the
//! file: each append happens under an exclusive lock of the file, after
//! reading its end again, so no entry is written twice.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::export::line;
use crate::engine::Engine;
use crate::store::Store;

/// How often the sink looks for new entries.
pub const EVERY: Duration = Duration::from_secs(1);

/// Entries read per query.
const PAGE: i64 = 1_000;

/// Appends new entries to `[audit] sink` every [`EVERY`] until `shutdown`
/// (once more at the end); nothing when no sink is configured.
pub async fn sink_until_stopped(engine: Arc<Engine>, shutdown: CancellationToken) {
    let Some(path) = engine.config().audit.sink.clone() else {
        return;
    };
    let mut every = tokio::time::interval(EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        let stop = tokio::select! {
            _ = shutdown.cancelled() => true,
            _ = every.tick() => false,
        };
        match append_new(engine.store(), &path).await {
            Ok(_) if failing => {
                failing = false;
                tracing::info!(file = %path.display(), "the audit sink is writing again");
            }
            Ok(_) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::error!(file = %path.display(), error = format!("{e:#}"), "appending to the audit sink failed; will retry every second");
            }
            Err(_) => {}
        }
        if stop {
            return;
        }
    }
}

/// Appends every entry after the file's last one; answers how many.
pub async fn append_new(store: &Store, path: &Path) -> anyhow::Result<u64> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    lock(&file)
        .await
        .with_context(|| format!("locking {}", path.display()))?;
    let mut after = last_seq(&mut file).with_context(|| format!("reading {}", path.display()))?;
    let mut written = 0;
    loop {
        let page = store.audit_entries(None, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        let mut text = String::new();
        for e in &page {
            text.push_str(&line(e));
            text.push('\n');
        }
        file.write_all(text.as_bytes())?;
        written += page.len() as u64;
    }
    if written > 0 {
        file.sync_data()?;
    }
    Ok(written)
}

/// Takes the file's exclusive lock, waiting without blocking the runtime
/// (another appender holds it while it reads the store).
async fn lock(file: &std::fs::File) -> std::io::Result<()> {
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// The `seq` of the file's last complete line (0 when empty). A torn last
/// line (a crash mid-write) is cut off so the next append starts clean.
fn last_seq(file: &mut std::fs::File) -> anyhow::Result<i64> {
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(0);
    }
    let start = len.saturating_sub(64 * 1024);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)?;
    let complete = match tail.iter().rposition(|b| *b == b'\n') {
        Some(i) => i,
        None => anyhow::bail!("its last 64 KiB hold no complete line; is it an audit sink?"),
    };
    if complete + 1 < tail.len() {
        file.set_len(start + complete as u64 + 1)?;
    }
    let lines = &tail[..complete];
    let last = lines.rsplit(|b| *b == b'\n').next().unwrap_or_default();
    let v: serde_json::Value =
        serde_json::from_slice(last).context("its last line is not an audit line")?;
    v["seq"]
        .as_i64()
        .context("its last line has no `seq`; is it an audit sink?")
}
