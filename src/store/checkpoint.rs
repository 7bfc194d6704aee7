//! Folding the SQLite WAL back into the database file while the service runs.

use std::time::Duration;

use sqlx::SqlitePool;

use super::StoreError;
use super::background::BackgroundWriter;

/// How often the background checkpointer folds the WAL back into the database.
const SQLITE_CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// Frames (pages) in the WAL past which the checkpointer finishes its work in a
/// writer's turn, so that the WAL starts over: about 16 MiB.
const SQLITE_CATCH_UP_FRAMES: i64 = 4096;
/// Folds the WAL back into the database file now and then, off the writer
/// connection: a PASSIVE checkpoint copies what no reader still needs without
/// taking the write lock, so writers go on meanwhile. Under steady writes that
/// never reaches the newest frame, and SQLite starts the WAL over only once a
/// checkpoint has, so the file would grow for as long as the load lasts
/// (680 MB in 10 s at 500 runs/s, every new page zeroed by the kernel). So
/// once the WAL holds `SQLITE_CATCH_UP_FRAMES`, the few frames written since
/// are folded in a background writer's turn ([`BackgroundWriter::checkpoint`]).
/// Ends when the store closes. (Closing the last connection checkpoints too,
/// so a short-lived CLI process leaves no WAL behind either.)
pub(super) async fn checkpoint_in_background(
    pool: SqlitePool,
    background: Option<BackgroundWriter>,
) {
    let mut every = tokio::time::interval(SQLITE_CHECKPOINT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Frames in the WAL once the pass is done; `None` when it failed.
    let pass = async || match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(&pool)
        .await
    {
        Ok((_, frames, _)) => Some(frames),
        Err(e) => {
            if !pool.is_closed() {
                tracing::warn!(error = %e, "checkpointing the SQLite WAL failed; will retry");
            }
            None
        }
    };
    loop {
        every.tick().await;
        if pool.is_closed() {
            return;
        }
        let Some(frames) = pass().await else {
            continue;
        };
        let Some(background) = background
            .as_ref()
            .filter(|_| frames >= SQLITE_CATCH_UP_FRAMES)
        else {
            continue;
        };
        // A second pass folds what was written during the first, still
        // without stopping writers, so the turn has only the last few frames
        // to copy: it held the turn 0.7–2.5 ms without this pass, 0.5–1.7 ms
        // with it (one 10 s slack_load run each).
        if pass().await.is_none() {
            continue;
        }
        match background.checkpoint().await {
            Ok(f) => {
                tracing::debug!(
                    busy = f.busy,
                    frames = f.frames,
                    folded = f.folded,
                    took_us = f.took.as_micros() as u64,
                    "checkpointed the SQLite WAL in a writer's turn"
                );
            }
            Err(StoreError::Db(sqlx::Error::PoolClosed)) => return,
            Err(e) => {
                tracing::warn!(error = %e, "checkpointing the SQLite WAL failed; will retry");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::store::testing::{fresh_store, new_run};
    use crate::store::{ChainCheck, NewRun};

    /// The checkpoint sequence in the WAL's header (bytes 12..16, big-endian),
    /// which SQLite advances each time it starts the WAL over.
    fn wal_sequence(wal: &str) -> Option<u32> {
        use std::io::Read;
        let mut header = [0u8; 16];
        std::fs::File::open(wal)
            .and_then(|mut f| f.read_exact(&mut header))
            .ok()?;
        Some(u32::from_be_bytes(header[12..16].try_into().unwrap()))
    }

    /// Writers that never pause leave a checkpoint outside their turns
    /// behind the newest frame, and SQLite then never starts the WAL over:
    /// the file grew by 680 MB in 10 s at 500 runs/s. The checkpointer's
    /// step in a writer's turn lets it start over while they go on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn under_steady_writes_the_wal_still_starts_over() {
        let (store, guard) = fresh_store("sqlite").await;
        let store = Arc::new(store);
        let wal = format!("{}-wal", guard.url().trim_start_matches("sqlite://"));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writers: Vec<_> = (0..4)
            .map(|_| {
                let (store, stop) = (store.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut n = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let open = NewRun {
                            max_concurrent: 1 << 20,
                            ..new_run("s", "p")
                        };
                        store.create_run(open, n).await.unwrap();
                        let claimed = store.claim_next("w", 1_000, n).await.unwrap();
                        assert!(claimed.is_some(), "each writer claims a run");
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let first = loop {
            if let Some(seq) = wal_sequence(&wal) {
                break seq;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        };
        let mut seen = first;
        while seen < first + 2 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            seen = wal_sequence(&wal).unwrap_or(seen);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut written = 0;
        for w in writers {
            written += w.await.unwrap();
        }
        assert!(
            seen >= first + 2,
            "the WAL started over {} times during {written} runs written without a pause",
            seen - first
        );
        assert_eq!(
            store.verify_chain().await.unwrap(),
            ChainCheck::Ok {
                // Two entries per recorded run (requested, queued), one per claim.
                entries: written as u64 * 3
            }
        );
    }
}
