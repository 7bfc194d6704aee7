//! A run's log and files as readers want them, wherever they are kept: sent by
//! a runner (in the database), or written by an earlier version of ExecGov on
//! this server's disk (`log_path`, an artifact's absolute path).

use std::path::PathBuf;

use crate::engine::Engine;
use crate::store::{Artifact, Run, StoreError};
use crate::types::RunId;

/// The last `max` bytes of a run's log, and whether earlier bytes were left
/// out. `None`: no log (yet).
pub async fn log_tail(
    engine: &Engine,
    run: &Run,
    max: u64,
) -> Result<Option<(Vec<u8>, bool)>, StoreError> {
    let store = engine.store();
    let size = store.log_size(run.id).await?;
    if size > 0 {
        let from = size.saturating_sub(max);
        return Ok(Some((store.log_bytes(run.id, from, max).await?, from > 0)));
    }
    let Some(path) = &run.log_path else {
        return Ok(None);
    };
    Ok(tokio::fs::read(path).await.ok().map(|all| {
        let from = (all.len() as u64).saturating_sub(max) as usize;
        (all[from..].to_vec(), from > 0)
    }))
}

/// The whole log. `None`: no log (yet).
pub async fn log_all(engine: &Engine, run: &Run) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(log_tail(engine, run, u64::MAX)
        .await?
        .map(|(bytes, _)| bytes))
}

/// The bytes of one of a run's files.
pub async fn artifact_bytes(engine: &Engine, a: &Artifact) -> Result<Option<Vec<u8>>, StoreError> {
    if let Some(bytes) = engine.store().artifact_bytes(a.run_id, &a.name).await? {
        return Ok(Some(bytes));
    }
    let path = std::path::Path::new(&a.path);
    if !path.is_absolute() {
        return Ok(None);
    }
    Ok(tokio::fs::read(path).await.ok())
}

/// A run's files, each with a path on this server's disk (for chat uploads,
/// which send files): files a runner sent are written once under
/// `data_dir/artifacts/<run>/`.
pub async fn artifacts_on_disk(engine: &Engine, run: RunId) -> anyhow::Result<Vec<Artifact>> {
    let mut out = Vec::new();
    for mut a in engine.store().artifacts(run).await? {
        if !std::path::Path::new(&a.path).is_absolute() {
            let dir: PathBuf = engine
                .config()
                .data_dir
                .join("artifacts")
                .join(run.to_string());
            let file = dir.join(&a.name);
            if !file.exists()
                && let Some(bytes) = engine.store().artifact_bytes(run, &a.name).await?
            {
                tokio::fs::create_dir_all(&dir).await?;
                tokio::fs::write(&file, bytes).await?;
            }
            a.path = std::path::absolute(&file)?.display().to_string();
        }
        out.push(a);
    }
    Ok(out)
}
