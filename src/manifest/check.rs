//! The sections of a manifest that name people, groups and channels: `[access]`,
//! `[approval]` and `[[schedule]]`, checked against the config.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use super::param_schema::toml_arg;
use super::{
    Access, Approval, CatchUp, Crontab, Manifest, Overlap, Principal, Schedule, ScheduledApproval,
};
use crate::config::Config;
use crate::config::spans::{Reader, Section, closest};
use crate::types::{PersonId, ScriptName};

pub(super) fn read_access(r: &mut Reader<'_>, top: &Section<'_, '_>, config: &Config) -> Access {
    let Some(s) = r.section(top, "access") else {
        return Access::default();
    };
    r.unknown_keys(&s, &["run", "channels"]);
    Access {
        run: principals(r, &s, "run", config),
        channels: channels(r, &s, "channels", config),
    }
}

pub(super) fn read_approval(
    r: &mut Reader<'_>,
    top: &Section<'_, '_>,
    config: &Config,
) -> Option<Approval> {
    let s = r.section(top, "approval")?;
    r.unknown_keys(
        &s,
        &[
            "approvers",
            "channel",
            "quorum",
            "expires",
            "self_approval",
            "scheduled",
            "preview",
        ],
    );
    let mut approvers = principals(r, &s, "approvers", config);
    // `anyone` lets everyone run a script, but approval by anyone is no
    // approval: it would name nobody in particular, and nobody could decide.
    if approvers.contains(&Principal::Anyone) {
        approvers.retain(|p| *p != Principal::Anyone);
        for (text, span) in r.strings(&s, "approvers").unwrap_or_default() {
            if text == "anyone" {
                r.key_error(
                    &s,
                    "approvers",
                    &span,
                    "`anyone` cannot approve: approval by anyone is no approval; name the \
                     approvers as \"person:NAME\" or \"group:NAME\" (and let `self_approval` \
                     say whether requesters count)",
                );
            }
        }
    }
    let written = s
        .get("approvers")
        .and_then(|i| i.get_ref().as_array())
        .map(|a| a.len());
    match s.get("approvers") {
        None => r.missing(&s, "approvers"),
        Some(item) if written == Some(0) => {
            r.key_error(
                &s,
                "approvers",
                &item.span(),
                "must name at least one approver",
            );
        }
        Some(_) => {}
    }
    let channel = r.string(&s, "channel").and_then(|(name, span)| {
        known_channel(r, &s, "channel", &name, &span, config).then_some(name)
    });
    let mut quorum = 1;
    if let Some((n, span)) = r.int(&s, "quorum") {
        // Only count when every approver resolved, so one typo is reported once.
        let reachable = reachable_people(&approvers, config)
            .filter(|_| written.is_some_and(|w| w == approvers.len()));
        if n < 1 {
            r.key_error(&s, "quorum", &span, format!("must be at least 1, got {n}"));
        } else if let Some(people) = reachable
            && n as usize > people
        {
            let msg = format!("quorum {n} is more than the {people} people the approvers name");
            r.key_error(&s, "quorum", &span, msg);
        } else {
            quorum = u32::try_from(n).unwrap_or(u32::MAX);
        }
    }
    let scheduled = match r.string(&s, "scheduled") {
        None => ScheduledApproval::NotRequired,
        Some((v, _)) if v == "required" => ScheduledApproval::Required,
        Some((v, _)) if v == "not_required" => ScheduledApproval::NotRequired,
        Some((v, span)) => {
            let msg = format!("must be \"required\" or \"not_required\", got `{v}`");
            r.key_error(&s, "scheduled", &span, msg);
            ScheduledApproval::NotRequired
        }
    };
    let preview = read_preview(r, &s);
    Some(Approval {
        preview,
        approvers,
        channel,
        quorum,
        expires: r
            .duration(&s, "expires")
            .unwrap_or(super::rules::DEFAULT_EXPIRES),
        self_approval: r.bool(&s, "self_approval").unwrap_or(false),
        scheduled,
    })
}

/// `[approval] preview`: literal arguments appended to the command for the
/// preview run. At least one (an empty list would preview nothing but the run
/// itself), no NUL, and no `{param}` (the preview takes the request's arguments
/// as the command's own template places them).
fn read_preview(r: &mut Reader<'_>, s: &Section<'_, '_>) -> Vec<String> {
    let Some(items) = r.strings(s, "preview") else {
        return Vec::new();
    };
    if items.is_empty()
        && let Some(item) = s.get("preview")
    {
        r.key_error(
            s,
            "preview",
            &item.span(),
            "must name at least one argument, e.g. [\"--dry-run\"]; leave it out for no preview",
        );
        return Vec::new();
    }
    let mut out = Vec::with_capacity(items.len());
    for (text, span) in items {
        if text.contains('\0') {
            r.key_error(s, "preview", &span, "an argument cannot contain a NUL byte");
        } else if text.contains('{') && text.contains('}') {
            let msg = format!(
                "`{text}`: a preview argument is literal; the request's arguments already reach the \
                 command through its own template"
            );
            r.key_error(s, "preview", &span, msg);
        } else {
            out.push(text);
        }
    }
    out
}

/// How many distinct people `approvers` can name; `None` when `anyone` is among them.
pub(super) fn reachable_people(approvers: &[Principal], config: &Config) -> Option<usize> {
    let mut people: BTreeSet<&PersonId> = BTreeSet::new();
    for p in approvers {
        match p {
            Principal::Anyone => return None,
            Principal::Person(id) => {
                people.insert(id);
            }
            Principal::Group(g) => people.extend(config.group(g).unwrap_or_default()),
        }
    }
    Some(people.len())
}

pub(super) fn read_schedules(
    r: &mut Reader<'_>,
    top: &Section<'_, '_>,
    config: &Config,
    manifest: &Manifest,
) -> Vec<Schedule> {
    let sections = r.sections(top, "schedule");
    let lone = sections.len() == 1;
    let mut schedules: Vec<Schedule> = Vec::new();
    for (i, s) in sections.iter().enumerate() {
        r.unknown_keys(
            s,
            &[
                "name",
                "cron",
                "timezone",
                "args",
                "post_to",
                "notify_on_failure",
                "catch_up",
                "overlap",
            ],
        );
        let mut ok = true;
        let name = match r.string(s, "name") {
            Some((n, span)) => {
                if let Err(msg) = ScriptName::parse(&n) {
                    r.key_error(
                        s,
                        "name",
                        &span,
                        msg.replace("script name", "schedule name"),
                    );
                    ok = false;
                } else if schedules.iter().any(|other| other.name == n) {
                    r.key_error(
                        s,
                        "name",
                        &span,
                        format!("schedule `{n}` is declared twice"),
                    );
                    ok = false;
                }
                n
            }
            None if lone => "default".to_string(),
            None => format!("schedule-{}", i + 1),
        };
        let cron = match r.string(s, "cron") {
            Some((expr, span)) => match Crontab::parse(&expr) {
                Ok(c) => Some(c),
                Err(e) => {
                    r.key_error(
                        s,
                        "cron",
                        &span,
                        format!("bad cron expression `{expr}`: {e}"),
                    );
                    None
                }
            },
            None => {
                if s.get("cron").is_none() {
                    r.missing(s, "cron");
                }
                None
            }
        };
        let timezone = match r.string(s, "timezone") {
            None => chrono_tz::UTC,
            Some((tz, span)) => tz.parse().unwrap_or_else(|_| {
                let msg =
                    format!("unknown timezone `{tz}`; use an IANA name such as \"Europe/Berlin\"");
                r.key_error(s, "timezone", &span, msg);
                ok = false;
                chrono_tz::UTC
            }),
        };
        let args = schedule_args(r, s, manifest);
        let post_to = channels(r, s, "post_to", config);
        let notify_on_failure = principals(r, s, "notify_on_failure", config);
        let catch_up = match choice(r, s, "catch_up", &["skip", "latest"]) {
            Some("skip") => CatchUp::Skip,
            _ => CatchUp::Latest,
        };
        let overlap = match choice(r, s, "overlap", &["skip", "queue"]) {
            Some("queue") => Overlap::Queue,
            _ => Overlap::Skip,
        };
        if let (true, Some(cron), Some(args)) = (ok, cron, args) {
            schedules.push(Schedule {
                name,
                cron,
                timezone,
                args,
                post_to,
                notify_on_failure,
                catch_up,
                overlap,
            });
        }
    }
    schedules
}

/// The schedule's `args`, checked against the params with defaults filled in.
fn schedule_args(
    r: &mut Reader<'_>,
    s: &Section<'_, '_>,
    manifest: &Manifest,
) -> Option<BTreeMap<String, super::ArgValue>> {
    let mut values = BTreeMap::new();
    let mut spans: BTreeMap<String, Range<usize>> = BTreeMap::new();
    let args_span = s.get("args").map(|i| i.span()).unwrap_or(s.span.clone());
    if let Some(table) = r.section(s, "args") {
        for (key, span, item) in table.keys() {
            match toml_arg(item) {
                Ok(v) => {
                    values.insert(key.to_string(), v);
                    spans.insert(key.to_string(), span);
                }
                Err(msg) => {
                    r.error(&item.span(), Some(table.key_path(key)), msg);
                    return None;
                }
            }
        }
    } else if s.get("args").is_some() {
        return None;
    }
    match manifest.validate_typed(&values) {
        Ok(args) => Some(args),
        Err(e) => {
            let span = e
                .param
                .as_ref()
                .and_then(|p| spans.get(p))
                .unwrap_or(&args_span);
            let span = span.clone();
            r.error(
                &span,
                Some(s.key_path("args")),
                format!("schedule args: {e}"),
            );
            None
        }
    }
}

/// A string key that must be one of `allowed`.
fn choice<'c>(
    r: &mut Reader<'_>,
    s: &Section<'_, '_>,
    key: &str,
    allowed: &[&'c str],
) -> Option<&'c str> {
    let (v, span) = r.string(s, key)?;
    let found = allowed.iter().copied().find(|a| *a == v);
    if found.is_none() {
        let list: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
        r.key_error(
            s,
            key,
            &span,
            format!("must be {}, got `{v}`", list.join(" or ")),
        );
    }
    found
}

/// A list of principals, each naming a configured person or group.
pub(super) fn principals(
    r: &mut Reader<'_>,
    s: &Section<'_, '_>,
    key: &str,
    config: &Config,
) -> Vec<Principal> {
    let mut out = Vec::new();
    for (text, span) in r.strings(s, key).unwrap_or_default() {
        let principal = match Principal::parse(&text) {
            Ok(p) => p,
            Err(msg) => {
                r.key_error(s, key, &span, msg);
                continue;
            }
        };
        let problem = match &principal {
            Principal::Person(p) if !config.people.contains_key(p) => {
                let hint = hint(p.as_str(), config.people.keys().map(PersonId::as_str));
                Some(format!(
                    "unknown person `{p}` (not in the config's [people]){hint}"
                ))
            }
            Principal::Group(g) if !config.groups.contains_key(g) => {
                let hint = hint(g, config.groups.keys().map(String::as_str));
                Some(format!(
                    "unknown group `{g}` (not in the config's [groups]){hint}"
                ))
            }
            _ => None,
        };
        match problem {
            Some(msg) => r.key_error(s, key, &span, msg),
            None => out.push(principal),
        }
    }
    out
}

/// A list of channel names, each defined in the config's `[channels]`.
fn channels(r: &mut Reader<'_>, s: &Section<'_, '_>, key: &str, config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for (name, span) in r.strings(s, key).unwrap_or_default() {
        if known_channel(r, s, key, &name, &span, config) {
            out.push(name);
        }
    }
    out
}

pub(super) fn known_channel(
    r: &mut Reader<'_>,
    s: &Section<'_, '_>,
    key: &str,
    name: &str,
    span: &Range<usize>,
    config: &Config,
) -> bool {
    if config.channels.contains_key(name) {
        return true;
    }
    let hint = hint(name, config.channels.keys().map(String::as_str));
    let msg = format!("unknown channel `{name}` (not in the config's [channels]){hint}");
    r.key_error(s, key, span, msg);
    false
}

fn hint<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> String {
    closest(word, candidates)
        .map(|c| format!("; did you mean `{c}`?"))
        .unwrap_or_default()
}
