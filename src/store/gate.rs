//! Who writes next on SQLite's one writer connection.
//!
//! Work that someone is waiting on (an ack to a slash command, a click, a CLI
//! command) runs inside [`foreground`]; everything else (the pool's claims and
//! finishes, the notifier's bookkeeping, sweeps) is background.
//!
//! The gate is the writer's lock: one [`Turn`] at a time, and when a turn ends
//! the next goes to the longest-waiting foreground writer, else the
//! longest-waiting background one. So a foreground write waits for at most the
//! one transaction in progress, never for a queue of background work that
//! arrived first. A background writer that has waited [`MAX_YIELD`] goes next
//! all the same (every other turn at most), so a burst of requests cannot
//! starve the pool, and a backlog of background work cannot starve requests.
//!
//! The gate also says how durable a turn's commit must be. A foreground write
//! is what someone is about to be told happened (an ack names the run it
//! recorded), so it commits on a connection with `synchronous=FULL`: the WAL is
//! on disk before the answer. Background bookkeeping commits on one with
//! `NORMAL` (safe against a crash of the process, not of the machine). The next
//! synced commit syncs the WAL file and so everything before it, and after a
//! power cut SQLite keeps a prefix of the commits: what can be lost is only
//! background work after the last answer (a lapsed lease recovers a run's).
//! Every writer connection (these two, and the run recorder's own synced one,
//! see `group`) writes only in its turn, so they never contend for SQLite's
//! own write lock.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

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

pub(super) fn in_foreground() -> bool {
    FOREGROUND.try_with(|_| ()).is_ok()
}

/// One writer waiting for its turn.
#[derive(Debug)]
struct Waiter {
    since: Instant,
    wake: oneshot::Sender<()>,
}

/// How a commit reaches the disk; the store keeps one writer connection for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// `synchronous=FULL`: synced before the commit returns.
    Synced,
    /// `synchronous=NORMAL`: written, synced later.
    Written,
}

#[derive(Debug, Default)]
struct Queues {
    /// Someone holds a turn.
    busy: bool,
    foreground: VecDeque<Waiter>,
    background: VecDeque<Waiter>,
    /// The last turn went to an overdue background writer.
    overdue_went_last: bool,
}

impl Queues {
    /// The writer whose turn is next: an overdue background writer (but never
    /// two such turns in a row while a foreground writer waits), else the
    /// first foreground one, else the first background one. So a foreground
    /// writer waits for at most the turn in progress and one more, however
    /// far behind the background work has fallen.
    fn next(&mut self, max_yield: Duration) -> Option<Waiter> {
        let overdue = !self.overdue_went_last
            && self
                .background
                .front()
                .is_some_and(|w| w.since.elapsed() >= max_yield);
        if overdue {
            self.overdue_went_last = true;
            return self.background.pop_front();
        }
        self.overdue_went_last = false;
        self.foreground
            .pop_front()
            .or_else(|| self.background.pop_front())
    }
}

#[derive(Debug)]
pub(crate) struct WriterGate {
    queues: Mutex<Queues>,
    max_yield: Duration,
}

impl Default for WriterGate {
    fn default() -> Self {
        WriterGate::yielding_at_most(MAX_YIELD)
    }
}

/// The writer, held until dropped; dropping it hands the writer to the next.
pub(crate) struct Turn<'a> {
    gate: &'a WriterGate,
    foreground: bool,
}

impl Turn<'_> {
    /// The durability this turn's commit needs.
    pub(crate) fn durability(&self) -> Durability {
        if self.foreground {
            Durability::Synced
        } else {
            Durability::Written
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.gate.hand_on();
    }
}

/// A writer in a queue. Dropped before its turn came (a cancelled request), it
/// leaves the queue; dropped just as its turn came, it hands that turn on.
struct Queued<'a> {
    gate: &'a WriterGate,
    wake: oneshot::Receiver<()>,
    granted: bool,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if self.granted {
            return;
        }
        self.wake.close();
        if self.wake.try_recv().is_ok() {
            self.gate.hand_on();
        }
    }
}

impl WriterGate {
    fn yielding_at_most(max_yield: Duration) -> WriterGate {
        WriterGate {
            queues: Mutex::new(Queues::default()),
            max_yield,
        }
    }

    fn queues(&self) -> MutexGuard<'_, Queues> {
        // Nothing here panics while holding the lock; recover rather than spread one.
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The writer if it is free; else a place in the queue, woken when the
    /// turn comes.
    fn take_or_queue(&self, foreground: bool) -> Result<Turn<'_>, oneshot::Receiver<()>> {
        let mut q = self.queues();
        if !q.busy {
            q.busy = true;
            return Ok(Turn {
                gate: self,
                foreground,
            });
        }
        let (wake, woken) = oneshot::channel();
        let waiter = Waiter {
            since: Instant::now(),
            wake,
        };
        if foreground {
            q.foreground.push_back(waiter);
        } else {
            q.background.push_back(waiter);
        }
        Err(woken)
    }

    /// Waits for the writer: at once when it is free, else in this task's queue.
    pub(crate) async fn turn(&self) -> Turn<'_> {
        let foreground = in_foreground();
        loop {
            let wake = match self.take_or_queue(foreground) {
                Ok(turn) => return turn,
                Err(wake) => wake,
            };
            let mut queued = Queued {
                gate: self,
                wake,
                granted: false,
            };
            // A sender is only dropped unsent once its receiver is gone, so an
            // error cannot happen while `queued` lives; queue again if it does.
            if (&mut queued.wake).await.is_ok() {
                queued.granted = true;
                return Turn {
                    gate: self,
                    foreground,
                };
            }
        }
    }

    /// A turn for a thread of its own, outside any runtime (the run recorder,
    /// the background writer): blocks the thread until the turn comes. Never
    /// call it from async code.
    pub(crate) fn turn_blocking(&self, foreground: bool) -> Turn<'_> {
        loop {
            match self.take_or_queue(foreground) {
                Ok(turn) => return turn,
                Err(wake) => {
                    if wake.blocking_recv().is_ok() {
                        return Turn {
                            gate: self,
                            foreground,
                        };
                    }
                }
            }
        }
    }

    /// Gives the writer to the next waiter still waiting, or frees it.
    fn hand_on(&self) {
        let mut q = self.queues();
        while let Some(next) = q.next(self.max_yield) {
            if next.wake.send(()).is_ok() {
                return;
            }
        }
        q.busy = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use std::pin::Pin;

    type Pending<'a> = Pin<Box<dyn Future<Output = Turn<'a>> + 'a>>;

    fn background(gate: &WriterGate) -> Pending<'_> {
        Box::pin(gate.turn())
    }

    fn in_front(gate: &WriterGate) -> Pending<'_> {
        Box::pin(foreground(gate.turn()))
    }

    /// Polls once: the turn if it has come, else `None` with the waiter queued.
    fn poll<'a>(p: &mut Pending<'a>) -> Option<Turn<'a>> {
        p.now_or_never()
    }

    #[test]
    fn one_turn_at_a_time() {
        let gate = WriterGate::default();
        let first = poll(&mut background(&gate)).expect("a free writer is taken at once");
        let mut second = background(&gate);
        assert!(poll(&mut second).is_none(), "the second waits");
        drop(first);
        assert!(
            poll(&mut second).is_some(),
            "and goes once the first is done"
        );
    }

    #[test]
    fn foreground_goes_ahead_of_background_that_queued_first() {
        // Never overdue here, so the test does not depend on timing.
        let gate = WriterGate::yielding_at_most(Duration::from_secs(3600));
        let held = poll(&mut background(&gate)).unwrap();
        let mut pool_a = background(&gate);
        let mut pool_b = background(&gate);
        assert!(poll(&mut pool_a).is_none() && poll(&mut pool_b).is_none());
        let mut ack = in_front(&gate);
        assert!(poll(&mut ack).is_none());

        drop(held);
        assert!(poll(&mut pool_a).is_none(), "background stays queued");
        let ack_turn = poll(&mut ack).expect("the foreground writer is next");
        drop(ack_turn);
        let a = poll(&mut pool_a).expect("then background, in order");
        assert!(poll(&mut pool_b).is_none());
        drop(a);
        assert!(poll(&mut pool_b).is_some());
    }

    #[test]
    fn an_overdue_background_writer_goes_first() {
        // Every background waiter is overdue at once.
        let gate = WriterGate::yielding_at_most(Duration::ZERO);
        let held = poll(&mut in_front(&gate)).unwrap();
        let mut pool = background(&gate);
        assert!(poll(&mut pool).is_none());
        let mut ack = in_front(&gate);
        assert!(poll(&mut ack).is_none());
        drop(held);
        assert!(poll(&mut ack).is_none());
        assert!(poll(&mut pool).is_some(), "the pool is not starved");
    }

    #[test]
    fn overdue_background_writers_take_every_other_turn_at_most() {
        let gate = WriterGate::yielding_at_most(Duration::ZERO);
        let held = poll(&mut background(&gate)).unwrap();
        let mut pool: Vec<_> = (0..3).map(|_| background(&gate)).collect();
        for p in &mut pool {
            assert!(poll(p).is_none());
        }
        let mut acks: Vec<_> = (0..2).map(|_| in_front(&gate)).collect();
        for a in &mut acks {
            assert!(poll(a).is_none());
        }
        // Each turn, in order: who gets it when the one before is done.
        drop(held);
        let t = poll(&mut pool[0]).expect("an overdue background writer");
        drop(t);
        assert!(poll(&mut pool[1]).is_none(), "not two in a row");
        let t = poll(&mut acks[0]).expect("a foreground writer in between");
        drop(t);
        let t = poll(&mut pool[1]).expect("then background again");
        drop(t);
        let t = poll(&mut acks[1]).expect("then foreground");
        drop(t);
        assert!(poll(&mut pool[2]).is_some());
    }

    #[test]
    fn a_thread_waits_for_its_turn_in_front_of_background() {
        // Never overdue here, so the test does not depend on timing.
        let gate = WriterGate::yielding_at_most(Duration::from_secs(3600));
        let held = poll(&mut background(&gate)).unwrap();
        let mut pool = background(&gate);
        assert!(poll(&mut pool).is_none());
        let (got, turn_came) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let gate = &gate;
        std::thread::scope(|s| {
            s.spawn(move || {
                let turn = gate.turn_blocking(true);
                got.send(turn.durability()).unwrap();
                released.recv().unwrap();
            });
            while gate.queues().foreground.is_empty() {
                std::thread::yield_now();
            }
            assert!(turn_came.try_recv().is_err(), "the thread waits");
            drop(held);
            assert_eq!(turn_came.recv().unwrap(), Durability::Synced);
            assert!(poll(&mut pool).is_none(), "background waits for the thread");
            release.send(()).unwrap();
        });
        assert!(
            poll(&mut pool).is_some(),
            "and goes once the thread is done"
        );
    }

    #[test]
    fn foreground_commits_are_synced_background_ones_written() {
        let gate = WriterGate::default();
        let ack = poll(&mut in_front(&gate)).unwrap();
        assert_eq!(ack.durability(), Durability::Synced);
        drop(ack);
        let pool = poll(&mut background(&gate)).unwrap();
        assert_eq!(pool.durability(), Durability::Written);
    }

    #[test]
    fn a_cancelled_waiter_does_not_keep_the_writer() {
        let gate = WriterGate::default();
        let held = poll(&mut background(&gate)).unwrap();
        // Cancelled while queued: it leaves the queue.
        let mut gone = in_front(&gate);
        assert!(poll(&mut gone).is_none());
        drop(gone);
        // Cancelled after its turn came but before it saw it: it hands the turn on.
        let mut late = in_front(&gate);
        assert!(poll(&mut late).is_none());
        let mut next = background(&gate);
        assert!(poll(&mut next).is_none());
        drop(held);
        drop(late);
        let turn = poll(&mut next).expect("the turn reaches the next waiter");
        drop(turn);
        assert!(
            poll(&mut background(&gate)).is_some(),
            "and the writer is free afterwards"
        );
    }
}
