//! A schedule's `cron` expression: crontab as Vixie cron reads it, parsed once at
//! load into a [`Crontab`], with errors that name the field and say what it accepts.
//!
//! - Five fields, `minute hour day-of-month month day-of-week`, optionally preceded
//!   by a seconds field, so six-field expressions written for the cron crate keep
//!   parsing (now with crontab's day numbering).
//! - Each field: `*`, a value, a range `a-b`, a step `*/n` or `a-b/n`, or a list of
//!   these `a,b-c`. Months `1-12` or `JAN-DEC`; weekdays `0-7` (0 and 7 are Sunday)
//!   or `SUN-SAT`. `?` in a day field is `*` (Quartz style, which the cron crate took).
//! - Days as Vixie cron: when both day fields are restricted a day matches either
//!   (`0 9 1 * MON` fires on the 1st and on every Monday); when either starts with
//!   `*` (`*/2` too) a day must match both.
//! - `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`.
//!
//! Fire times are evaluated by croner. This module checks the text first, field by
//! field, because croner's messages do not name the field, it accepts extensions
//! crontab does not have (`L`, `W`, `#`), it treats `*/2` in a day field as a
//! restriction (Vixie cron does not), and it replaces weekday and month names
//! anywhere in the text (`MON` in the month field would be January). croner is
//! then handed the same schedule in numbers only.

use std::fmt;

use croner::parser::{CronParser, Seconds, Year};

/// What a whole expression looks like, for messages.
const SYNTAX: &str = "crontab has 5 fields, `minute hour day-of-month month day-of-week` \
     (e.g. \"0 9 * * 1-5\": 09:00 Monday to Friday), optionally preceded by a seconds \
     field, or a nickname such as \"@daily\"";

/// The nicknames Vixie cron knows (but `@reboot`), and what each stands for.
const NICKNAMES: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// The longest each month can be (February in a leap year), to tell a day-of-month
/// that never comes (`30 2`) from one that comes rarely (`29 2`).
const LONGEST_MONTH: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// A checked cron expression. The only way in is [`Crontab::parse`].
#[derive(Debug, Clone)]
pub struct Crontab {
    /// As written in the manifest: shown to people, and part of the spec a
    /// schedule's stored state belongs to.
    text: String,
    /// The same schedule in croner's terms.
    cron: croner::Cron,
    /// The hour field matches every hour (`*`, `0-23`, `*/1`): the daylight-saving
    /// rule for such schedules follows real time (see `scheduler::times`).
    every_hour: bool,
}

/// One of the six fields, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

/// Why an expression is not crontab.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrontabError {
    #[error("it is empty; {SYNTAX}")]
    Empty,
    #[error("{0} fields; {SYNTAX}")]
    FieldCount(usize),
    #[error(
        "unknown nickname `{0}`; the nicknames are @yearly, @annually, @monthly, @weekly, @daily, @midnight and @hourly"
    )]
    Nickname(String),
    #[error("{field} field `{text}`: {why}; {field} accepts {}", field.accepts())]
    Field {
        field: Field,
        text: String,
        why: String,
    },
    #[error("it never fires: day-of-month `{dom}` never comes in month `{month}`")]
    Never { dom: String, month: String },
    /// croner refused what the checks above let through (a bug here, not the user's).
    #[error("{0}")]
    Evaluator(String),
}

impl Field {
    fn bounds(self) -> (u32, u32) {
        match self {
            Field::Second | Field::Minute => (0, 59),
            Field::Hour => (0, 23),
            Field::DayOfMonth => (1, 31),
            Field::Month => (1, 12),
            Field::DayOfWeek => (0, 7),
        }
    }

    /// Names this field takes, and the number of the first.
    fn names(self) -> (&'static [&'static str], u32) {
        match self {
            Field::Month => (&MONTHS, 1),
            Field::DayOfWeek => (&WEEKDAYS, 0),
            _ => (&[], 0),
        }
    }

    fn accepts(self) -> String {
        let values = match self {
            Field::Second | Field::Minute => "0-59",
            Field::Hour => "0-23",
            Field::DayOfMonth => "1-31",
            Field::Month => "1-12 or JAN-DEC",
            Field::DayOfWeek => "0-7 (0 and 7 are Sunday) or SUN-SAT",
        };
        format!("{values}, `*`, ranges `a-b`, steps `*/n` or `a-b/n`, and lists `a,b`")
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Second => "seconds",
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day-of-month",
            Field::Month => "month",
            Field::DayOfWeek => "day-of-week",
        })
    }
}

/// One field, checked: the values it matches and its text for croner.
struct Checked {
    /// Bit `v` set when the field matches value `v`.
    bits: u64,
    /// Numbers only: `*`, `a`, `a-b` or `a-b/n` items joined by commas.
    croner: String,
}

impl Crontab {
    /// Checks `text` as crontab (see the module doc).
    pub fn parse(text: &str) -> Result<Crontab, CrontabError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(CrontabError::Empty);
        }
        let expanded = if trimmed.starts_with('@') {
            NICKNAMES
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(trimmed))
                .map(|(_, e)| *e)
                .ok_or_else(|| CrontabError::Nickname(trimmed.to_string()))?
        } else {
            trimmed
        };
        let mut words: Vec<&str> = expanded.split_whitespace().collect();
        match words.len() {
            5 => words.insert(0, "0"),
            6 => {}
            n => return Err(CrontabError::FieldCount(n)),
        }
        const FIELDS: [Field; 6] = [
            Field::Second,
            Field::Minute,
            Field::Hour,
            Field::DayOfMonth,
            Field::Month,
            Field::DayOfWeek,
        ];
        let mut checked = Vec::with_capacity(6);
        for (field, word) in FIELDS.into_iter().zip(&words) {
            let c = check_field(field, word).map_err(|why| CrontabError::Field {
                field,
                text: word.to_string(),
                why,
            })?;
            checked.push(c);
        }
        let (dom, dow) = (words[3], words[5]);
        // Vixie cron: a day field that starts with `*` makes the two fields AND.
        let both = starts_unrestricted(dom) || starts_unrestricted(dow);
        if both && !any_day_in(checked[3].bits, checked[4].bits) {
            return Err(CrontabError::Never {
                dom: dom.to_string(),
                month: words[4].to_string(),
            });
        }
        let every_hour = checked[2].bits == (1 << 24) - 1;
        let plus = if both { "+" } else { "" };
        let pattern = format!(
            "{} {} {} {} {} {plus}{}",
            checked[0].croner,
            checked[1].croner,
            checked[2].croner,
            checked[3].croner,
            checked[4].croner,
            checked[5].croner
        );
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .year(Year::Disallowed)
            .build()
            .parse(&pattern)
            .map_err(|e| CrontabError::Evaluator(format!("`{pattern}`: {e}")))?;
        Ok(Crontab {
            text: text.to_string(),
            cron,
            every_hour,
        })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the hour field matches every hour.
    pub fn every_hour(&self) -> bool {
        self.every_hour
    }

    /// The evaluator, for `scheduler::times`, which runs it on wall-clock times.
    pub fn croner(&self) -> &croner::Cron {
        &self.cron
    }
}

impl fmt::Display for Crontab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl serde::Serialize for Crontab {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// Whether a day field counts as `*` for Vixie cron's AND/OR rule.
fn starts_unrestricted(word: &str) -> bool {
    word.starts_with('*') || word.starts_with('?')
}

/// Whether some month of `months` has some day of `days`.
fn any_day_in(days: u64, months: u64) -> bool {
    (1..=12u32).any(|m| {
        months & (1 << m) != 0 && (1..=LONGEST_MONTH[m as usize - 1]).any(|d| days & (1 << d) != 0)
    })
}

/// Checks one field; the error says what is wrong with it.
fn check_field(field: Field, word: &str) -> Result<Checked, String> {
    let (min, max) = field.bounds();
    let day = matches!(field, Field::DayOfMonth | Field::DayOfWeek);
    let word = if day && word == "?" { "*" } else { word };
    if word == "*" {
        return Ok(Checked {
            bits: span_bits(min, max, 1),
            croner: "*".into(),
        });
    }
    let mut bits = 0;
    let mut items = Vec::new();
    for item in word.split(',') {
        if item.is_empty() {
            return Err("an empty list item (a comma too many)".into());
        }
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => {
                let n: u32 = step
                    .parse()
                    .map_err(|_| format!("step `{step}` in `{item}` is not a whole number"))?;
                if n == 0 {
                    return Err(format!("`{item}` has a step of 0"));
                }
                (base, n)
            }
            None => (item, 1),
        };
        let (lo, hi) = if base == "*" {
            (min, max)
        } else if let Some((a, b)) = base.split_once('-') {
            let lo = value(field, a)?;
            let mut hi = value(field, b)?;
            if field == Field::DayOfWeek && hi == 0 && lo > 0 {
                hi = 7; // FRI-SUN
            }
            if lo > hi {
                return Err(format!(
                    "the range `{base}` runs backwards; write it low to high, or as a list"
                ));
            }
            (lo, hi)
        } else {
            let v = value(field, base)?;
            if item.contains('/') {
                return Err(format!(
                    "a step needs a range: write `{v}-{max}/{step}` (from {v} on) or `*/{step}`"
                ));
            }
            (v, v)
        };
        bits |= span_bits(lo, hi, step);
        items.push(match step {
            1 if lo == hi => lo.to_string(),
            1 => format!("{lo}-{hi}"),
            n => format!("{lo}-{hi}/{n}"),
        });
    }
    if field == Field::DayOfWeek && bits & (1 << 7) != 0 {
        bits = (bits & !(1 << 7)) | 1; // Sunday as 7 is Sunday as 0
    }
    Ok(Checked {
        bits,
        croner: items.join(","),
    })
}

/// Bits `lo`, `lo + step`, … up to `hi`.
fn span_bits(lo: u32, hi: u32, step: u32) -> u64 {
    (lo..=hi).step_by(step as usize).fold(0, |b, v| b | 1 << v)
}

/// One value of a field: a number within its bounds, or one of its names.
fn value(field: Field, word: &str) -> Result<u32, String> {
    let (min, max) = field.bounds();
    if word.is_empty() {
        return Err("a range is missing a value".into());
    }
    if word.bytes().all(|b| b.is_ascii_digit()) {
        let v: u32 = word.parse().unwrap_or(u32::MAX);
        return if v < min {
            Err(format!("{v} is less than {min}"))
        } else if v > max {
            Err(format!("{word} is more than {max}"))
        } else {
            Ok(v)
        };
    }
    let upper = word.to_ascii_uppercase();
    let (names, first) = field.names();
    if let Some(i) = names.iter().position(|n| *n == upper) {
        return Ok(first + i as u32);
    }
    let other = if MONTHS.contains(&upper.as_str()) {
        " (a month name)"
    } else if WEEKDAYS.contains(&upper.as_str()) {
        " (a weekday name)"
    } else {
        ""
    };
    Err(format!("`{word}`{other} is not a {field} value"))
}

#[cfg(test)]
mod tests;
