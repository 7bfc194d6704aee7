//! Who writes next on SQLite's one writer connection.
//!
//! Work that someone is waiting on (an ack to a slash command, a click, a CLI
//! command) runs inside [`foreground`]; everything else (the pool's claims and
//! finishes, the notifier's bookkeeping, sweeps) is background. A background
//! writer waits while any foreground writer is waiting or writing, for at most
//! [`MAX_YIELD`], so a burst of requests cannot starve the pool. Without this
//! an ack queues behind whatever the pool and the notifier queued first.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// The longest one background write steps aside for foreground ones.
const MAX_YIELD: Duration = Duration::from_millis(20);

tokio::task_local! {
    static FOREGROUND: ();
}

/// Runs `work` with its store writes ahead of background writes.
pub async fn foreground<F: Future>(work: F) -> F::Output {
    if FOREGROUND.try_with(|_| ()).is_ok() {
        return work.await;
    }
    FOREGROUND.scope((), work).await
}

fn in_foreground() -> bool {
    FOREGROUND.try_with(|_| ()).is_ok()
}

#[derive(Debug)]
pub(crate) struct WriterGate {
    /// Foreground writers waiting for or holding the writer.
    foreground: AtomicUsize,
    /// Signalled when `foreground` drops to zero.
    clear: Notify,
    max_yield: Duration,
}

impl Default for WriterGate {
    fn default() -> Self {
        WriterGate::yielding_at_most(MAX_YIELD)
    }
}

/// A turn at the writer; a foreground turn counts until dropped.
pub(crate) struct Turn<'a> {
    gate: Option<&'a WriterGate>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if let Some(gate) = self.gate
            && gate.foreground.fetch_sub(1, Ordering::AcqRel) == 1
        {
            gate.clear.notify_waiters();
        }
    }
}

impl WriterGate {
    fn yielding_at_most(max_yield: Duration) -> WriterGate {
        WriterGate {
            foreground: AtomicUsize::new(0),
            clear: Notify::new(),
            max_yield,
        }
    }

    /// Waits until this task may queue for the writer.
    pub(crate) async fn turn(&self) -> Turn<'_> {
        if in_foreground() {
            self.foreground.fetch_add(1, Ordering::AcqRel);
            return Turn { gate: Some(self) };
        }
        let _ = tokio::time::timeout(self.max_yield, async {
            loop {
                let clear = self.clear.notified();
                tokio::pin!(clear);
                clear.as_mut().enable();
                if self.foreground.load(Ordering::Acquire) == 0 {
                    return;
                }
                clear.await;
            }
        })
        .await;
        Turn { gate: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn background_waits_for_foreground_and_foreground_never_waits() {
        // Never giving up on waiting here, so the test does not depend on timing.
        let gate = Arc::new(WriterGate::yielding_at_most(Duration::from_secs(3600)));
        let fg = foreground(async { gate.turn().await }).await;
        assert_eq!(gate.foreground.load(Ordering::Acquire), 1);

        let g = gate.clone();
        let background = tokio::spawn(async move {
            let _turn = g.turn().await;
        });
        tokio::task::yield_now().await;
        assert!(
            !background.is_finished(),
            "background waits behind foreground"
        );

        // Another foreground writer is not held up by the first.
        let second = foreground(async { gate.turn().await }).await;
        drop(second);
        drop(fg);
        background.await.unwrap();
        assert_eq!(gate.foreground.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn background_is_not_starved() {
        let gate = WriterGate::default();
        // A foreground writer that never finishes: background still gets a turn.
        let _fg = foreground(async { gate.turn().await }).await;
        let turn = tokio::time::timeout(Duration::from_secs(10), gate.turn()).await;
        assert!(turn.is_ok(), "a background writer gets its turn in the end");
    }
}
