//! Folding the SQLite WAL back into the database file while the service runs.

use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::writer::Writer;

/// How often the background checkpointer folds the WAL back into the database.
const EVERY: Duration = Duration::from_millis(500);
/// Frames (pages) in the WAL past which the checkpointer finishes its work
/// between two of the writer's transactions, so that the WAL starts over:
/// about 16 MiB.
const CATCH_UP_FRAMES: i64 = 4096;

/// The checkpointer thread, until [`Checkpointer::stop`].
#[derive(Debug)]
pub(super) struct Checkpointer {
    thread: Mutex<Option<(mpsc::Sender<()>, JoinHandle<()>)>>,
}

impl Checkpointer {
    /// Stops the thread and waits until its connection is closed (so that the
    /// writer's connection can be the last one, which removes the WAL).
    pub(super) fn stop(&self) {
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((stop, handle)) = thread {
            drop(stop);
            let _ = handle.join();
        }
    }
}

/// Folds the WAL back into the database file now and then, on a connection
/// of its own: a PASSIVE checkpoint copies what no reader still needs without
/// the write lock, so the writer goes on meanwhile. Under steady writes that
/// never reaches the newest frame, and SQLite starts the WAL over only once a
/// checkpoint has, so the file would grow for as long as the load lasts
/// (680 MB in 10 s at 500 runs/s, every new page zeroed by the kernel). So
/// once the WAL holds `CATCH_UP_FRAMES`, the few frames written since are
/// folded by the writer thread between two transactions
/// ([`Writer::checkpoint_blocking`]). (Closing the last connection
/// checkpoints too, so a short-lived CLI process leaves no WAL behind.)
pub(super) fn start(conn: Connection, writer: Writer) -> Checkpointer {
    let (stop, stopped) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("execgov-checkpoint".into())
        .spawn(move || checkpoint_until_stopped(conn, &writer, &stopped));
    let thread = match spawned {
        Ok(handle) => Some((stop, handle)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the WAL checkpointer; the WAL will grow until the store closes");
            None
        }
    };
    Checkpointer {
        thread: Mutex::new(thread),
    }
}

fn checkpoint_until_stopped(conn: Connection, writer: &Writer, stopped: &mpsc::Receiver<()>) {
    // Frames in the WAL once the pass is done; `None` when it failed.
    let pass = || match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1))
    {
        Ok(frames) => Some(frames),
        Err(e) => {
            tracing::warn!(error = %e, "checkpointing the SQLite WAL failed; will retry");
            None
        }
    };
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
        match pass() {
            Some(frames) if frames >= CATCH_UP_FRAMES => {}
            _ => continue,
        }
        // A second pass folds what was written during the first, still
        // without stopping the writer, so the writer has only the last few
        // frames to copy.
        if pass().is_none() {
            continue;
        }
        match writer.checkpoint_blocking() {
            Ok(f) => tracing::debug!(
                busy = f.busy,
                frames = f.frames,
                folded = f.folded,
                took_us = f.took.as_micros() as u64,
                "checkpointed the SQLite WAL between two transactions"
            ),
            Err(super::StoreError::Closed) => break,
            Err(e) => tracing::warn!(error = %e, "checkpointing the SQLite WAL failed; will retry"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::store::testing::{fresh_store, new_run};
    use crate::store::{ChainCheck, Durability, NewRun};

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
                        store.create_run(open, Durability::Relaxed).await.unwrap();
                        let claimed = store
                            .claim_next(&crate::store::testing::local_runner("w"), 1_000, n)
                            .await
                            .unwrap();
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
