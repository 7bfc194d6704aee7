//! Holding back a quick script's status message, so a run that is over at
//! once answers with its outcome instead of a status that flips at once.

use crate::store::Run;
use crate::types::RunId;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

/// A script is quick when each of its last [`QUICK_RUNS`] runs was over (asked
/// to finished) within this long. A quick
/// script's run gets its status message only after this long, or when it is
/// over if that comes first. Then the status is posted once, already showing
/// the outcome (no edit: fewer calls against the platform's rate limits), and
/// where the run was asked in a thread its result goes first, since that is
/// what the requester waits for and sends into a place go one at a time.
const QUICK: Duration = Duration::from_millis(500);
const QUICK_RUNS: usize = 3;

/// Which scripts are quick, and which runs' first status post waits until when.
#[derive(Debug)]
pub(crate) struct QuickHold {
    /// How long the last few runs of each script took, asked to finished (ms).
    recent: HashMap<String, VecDeque<i64>>,
    /// Runs whose first status post waits; each is looked at again at its time.
    held: BTreeSet<(i64, RunId)>,
    quick_ms: i64,
}

impl Default for QuickHold {
    fn default() -> Self {
        QuickHold::within(QUICK)
    }
}

impl QuickHold {
    /// Quick means each of the last runs was over within `d`.
    pub(crate) fn within(d: Duration) -> QuickHold {
        QuickHold {
            recent: HashMap::new(),
            held: BTreeSet::new(),
            quick_ms: d.as_millis() as i64,
        }
    }

    /// True (and the run noted for a later look) when `run`'s first status
    /// post should wait: its script is quick and the hold has not run out.
    pub(crate) fn holds(&mut self, run: &Run, now: i64) -> bool {
        let until = run.created_at + self.quick_ms;
        let quick = self
            .recent
            .get(&run.script)
            .is_some_and(|d| d.len() >= QUICK_RUNS && d.iter().all(|ms| *ms <= self.quick_ms));
        if now < until && quick {
            self.held.insert((until, run.id));
        }
        now < until && quick
    }

    /// Notes how long a finished run took.
    pub(crate) fn remember(&mut self, run: &Run) {
        let Some(finished) = run.finished_at else {
            return;
        };
        let durations = self.recent.entry(run.script.clone()).or_default();
        durations.push_back(finished - run.created_at);
        while durations.len() > QUICK_RUNS {
            durations.pop_front();
        }
    }

    /// How long until the first held post is due (a day when none is held).
    pub(crate) fn next_release(&self, now: i64) -> Duration {
        match self.held.first() {
            Some((at, _)) => Duration::from_millis((at - now).clamp(0, 60_000) as u64),
            None => Duration::from_secs(86_400),
        }
    }

    /// Moves the runs whose hold has run out into `dirty`.
    pub(crate) fn release_into(&mut self, now: i64, dirty: &mut BTreeSet<RunId>) {
        while let Some(&(at, id)) = self.held.first() {
            if at > now {
                break;
            }
            self.held.pop_first();
            dirty.insert(id);
        }
    }
}
