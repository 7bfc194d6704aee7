//! What a write answers ([`Answer`]): one variant per kind of result, and
//! the conversions each `Store` method uses to take out the one it expects
//! (a mismatch is a `StoreError::Corrupt`, never a panic).

use super::approvals::Decided;
use super::posts::ChatPost;
use super::reports::Finished;
use super::retention::Prune;
use super::runners::RunnerIdentity;
use super::schedules::{EventOutcome, ScheduleState};
use super::{Run, StoreError};
use crate::types::RunId;

/// What a write answers; each `Store` method takes out the one it expects.
#[derive(Debug)]
pub enum Answer {
    Done,
    Run(Run),
    MaybeRun(Option<Run>),
    Runs(Vec<Run>),
    Decision(Decided),
    Flag(bool),
    Count(u64),
    Id(i64),
    Person(Option<String>),
    Post(ChatPost),
    Schedule(ScheduleState),
    Event(EventOutcome),
    Runner(Option<RunnerIdentity>),
    MaybeRuns(Option<Vec<Run>>),
    RunIds(Vec<RunId>),
    Finished(Finished),
    Pruned(Vec<Prune>),
    MaybeAt(Option<i64>),
}

macro_rules! answers {
    ($($variant:ident => $t:ty),* $(,)?) => {$(
        impl From<$t> for Answer {
            fn from(v: $t) -> Answer {
                Answer::$variant(v)
            }
        }
        impl TryFrom<Answer> for $t {
            type Error = StoreError;
            fn try_from(a: Answer) -> Result<$t, StoreError> {
                match a {
                    Answer::$variant(v) => Ok(v),
                    other => Err(StoreError::Corrupt(format!(
                        "a write answered {other:?} where {} was expected",
                        stringify!($variant)
                    ))),
                }
            }
        }
    )*};
}

answers! {
    Run => Run,
    MaybeRun => Option<Run>,
    Runs => Vec<Run>,
    Decision => Decided,
    Flag => bool,
    Count => u64,
    Id => i64,
    Person => Option<String>,
    Post => ChatPost,
    Schedule => ScheduleState,
    Event => EventOutcome,
    Runner => Option<RunnerIdentity>,
    MaybeRuns => Option<Vec<Run>>,
    RunIds => Vec<RunId>,
    Finished => Finished,
    Pruned => Vec<Prune>,
    MaybeAt => Option<i64>,
}

impl From<()> for Answer {
    fn from(_: ()) -> Answer {
        Answer::Done
    }
}

impl TryFrom<Answer> for () {
    type Error = StoreError;
    fn try_from(a: Answer) -> Result<(), StoreError> {
        match a {
            Answer::Done => Ok(()),
            other => Err(StoreError::Corrupt(format!(
                "a write answered {other:?} where nothing was expected"
            ))),
        }
    }
}
