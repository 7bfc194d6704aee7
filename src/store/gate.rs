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

#[derive(Debug, Default)]
pub(crate) struct WriterGate {
    /// Foreground writers waiting for or holding the writer.
    foreground: AtomicUsize,
    /// Signalled when `foreground` drops to zero.
    clear: Notify,
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
    /// Waits until this task may queue for the writer.
    pub(crate) async fn turn(&self) -> Turn<'_> {
        if in_foreground() {
            self.foreground.fetch_add(1, Ordering::AcqRel);
            return Turn { gate: Some(self) };
        }
        let _ = tokio::time::timeout(MAX_YIELD, async {
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
        let gate = Arc::new(WriterGate::default());
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

    #[tokio::test(start_paused = true)]
    async fn background_is_not_starved() {
        let gate = WriterGate::default();
        let _fg = foreground(async { gate.turn().await }).await;
        let started = tokio::time::Instant::now();
        let _bg = gate.turn().await;
        assert_eq!(started.elapsed(), MAX_YIELD, "waits at most MAX_YIELD");
    }
}
