//! Where a run's messages go (its status where it was asked or its schedule
//! posts, its approval request in the approval channel's places) and whom a
//! failed scheduled run mentions.

use super::{Notifier, parse_place};
use crate::store::Run;
use crate::types::{Place, Platform, RunState};

impl Notifier {
    /// Where a run's messages go: its status where it was asked (never for a
    /// refusal: the requester got that answer privately), and its approval
    /// request in the approval channel's places (a break-glass run's too, and
    /// once more when its review is overdue).
    pub(super) fn targets(&self, run: &Run) -> Vec<(String, Place)> {
        let mut out = Vec::new();
        let config = self.engine.config();
        // A preview has no messages of its own: its request shows it.
        if run.preview_of.is_some() {
            return out;
        }
        if run.state != RunState::Refused {
            let place = &run.place;
            match place.platform {
                Platform::Slack | Platform::Matrix => {
                    out.push(("status".to_string(), place.clone()))
                }
                // A scheduled run posts to every place its schedule's `post_to` names.
                Platform::Schedule => {
                    if let Some(schedule) = self.schedule_of(run) {
                        for name in &schedule.post_to {
                            for key in config.channels.get(name).into_iter().flatten() {
                                out.extend(parse_place(key).map(|p| ("status".to_string(), p)));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        if run.quorum > 0 && run.state != RunState::Refused {
            for key in run
                .approvers
                .channel
                .as_deref()
                .and_then(|c| config.channels.get(c))
                .into_iter()
                .flatten()
            {
                if let Some(place) = parse_place(key) {
                    // An unreviewed break-glass run past `review_within` is posted again.
                    if run.review_reminded_at.is_some() {
                        out.push(("review-overdue".to_string(), place.clone()));
                    }
                    out.push(("approval".to_string(), place));
                }
            }
        }
        out
    }

    /// The schedule a scheduled run came from.
    fn schedule_of(&self, run: &Run) -> Option<crate::manifest::Schedule> {
        let catalog = self.engine.catalog();
        crate::scheduler::schedule_for_run(&catalog, run).map(|(_, s)| s.clone())
    }

    /// People a failed scheduled run alerts, as accounts on `platform`.
    pub(super) fn failure_mentions(
        &self,
        run: &Run,
        platform: Platform,
    ) -> Vec<execgov_chat::PlatformUser> {
        if !matches!(
            run.state,
            RunState::Failed | RunState::TimedOut | RunState::Interrupted | RunState::Expired
        ) {
            return Vec::new();
        }
        let Some(schedule) = self.schedule_of(run) else {
            return Vec::new();
        };
        let config = self.engine.config();
        let mut people: Vec<crate::types::PersonId> = schedule
            .notify_on_failure
            .iter()
            .filter(|p| !matches!(p, crate::manifest::Principal::Anyone))
            .flat_map(|p| crate::policy::people_named(config, p))
            .collect();
        people.sort();
        people.dedup();
        people
            .iter()
            .filter_map(|p| config.people.get(p))
            .filter_map(|person| match platform {
                Platform::Slack => person.slack.clone(),
                Platform::Matrix => person.matrix.clone(),
                _ => None,
            })
            .map(|id| execgov_chat::PlatformUser { platform, id })
            .collect()
    }
}
