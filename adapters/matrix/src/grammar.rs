//! The grammar of Matrix messages meant for ExecGov: which messages are
//! commands (`!run …`, `!approve`/`!deny`, a mention, anything in a direct
//! room) and what command text they carry, and which reactions decide.

use matrix_sdk::ruma::UserId;
use matrix_sdk::ruma::events::Mentions;

/// A decision read from a reaction key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Approve,
    Deny,
}

/// ✅ ✔️ ☑️ 👍 approve, ❌ ✖️ ❎ 👎 deny (variation selectors and skin tones ignored).
pub(crate) fn reaction_decision(key: &str) -> Option<Decision> {
    let base: String = key
        .chars()
        .filter(|c| *c != '\u{fe0f}' && !('\u{1f3fb}'..='\u{1f3ff}').contains(c))
        .collect();
    match base.as_str() {
        "✅" | "✔" | "☑" | "👍" => Some(Decision::Approve),
        "❌" | "✖" | "❎" | "👎" => Some(Decision::Deny),
        _ => None,
    }
}

/// Whether a message mentions the bot, as its sender's client said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mentioned {
    /// `m.mentions.user_ids` has the bot.
    Yes,
    /// The event has `m.mentions` without the bot: its name in the text is
    /// someone talking about it, not to it.
    No,
    /// No `m.mentions` (an older client): the text decides.
    Unsaid,
}

impl Mentioned {
    /// From an event's `m.mentions`, if it has one.
    pub(crate) fn of(mentions: Option<&Mentions>, own: &UserId) -> Mentioned {
        match mentions {
            Some(m) if m.user_ids.contains(own) => Mentioned::Yes,
            Some(_) => Mentioned::No,
            None => Mentioned::Unsaid,
        }
    }
}

/// The command in a message body, with whether its prefix meant "run".
///
/// - `!approve …` / `!deny …` → `approve …` / `deny …` (never implicit run);
/// - `<prefix> rest` (`!run report-export month=2026-10`) → `rest`, implicit run;
/// - a mention of the bot (`m.mentions`; for clients without it, the bot's
///   name or id, then `:`/`,`/space), then a command → the command, its
///   leading name (the pill's text) left out;
/// - in a direct room, any text → itself.
pub(crate) fn parse_command(
    body: &str,
    prefix: &str,
    names: &[String],
    direct: bool,
    mentioned: Mentioned,
) -> Option<(String, bool)> {
    let text = body.trim();
    for verb in ["approve", "deny"] {
        if let Some(rest) = strip_word(text, &format!("!{verb}")) {
            return Some((format!("{verb} {rest}").trim().to_string(), false));
        }
    }
    if let Some(rest) = strip_word(text, prefix) {
        return Some((rest.to_string(), true));
    }
    // The longest name that matches: `ExecGov Bot, …` is not `ExecGov` + `Bot, …`.
    let named = names
        .iter()
        .filter_map(|n| strip_mention(text, n).map(|rest| (n.len(), rest)))
        .max_by_key(|(len, _)| *len)
        .map(|(_, rest)| rest);
    let addressed = match (mentioned, named) {
        (Mentioned::Yes, Some(rest)) => Some(rest),
        // Mentioned elsewhere than at the start (or by a pill whose text is
        // not a name we know): the whole message is the command.
        (Mentioned::Yes, None) => Some(text),
        (Mentioned::Unsaid, named) => named,
        (Mentioned::No, _) => None,
    };
    if let Some(rest) = addressed {
        return match parse_command(rest, prefix, &[], true, Mentioned::Unsaid) {
            Some(c) => Some(c),
            None => Some((rest.to_string(), false)),
        };
    }
    if direct && !text.is_empty() {
        return Some((text.to_string(), false));
    }
    None
}

/// `text` without a leading `word` that stands alone (followed by whitespace or the end).
fn strip_word<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    let head = text.get(..word.len())?;
    if !head.eq_ignore_ascii_case(word) {
        return None;
    }
    let rest = &text[word.len()..];
    (rest.is_empty() || rest.starts_with(char::is_whitespace)).then(|| rest.trim())
}

/// `text` without a leading mention of `name` (`execgov: …`, `@execgov:hs …`, `ExecGov, …`).
fn strip_mention<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let head = text.get(..name.len())?;
    if name.is_empty() || !head.eq_ignore_ascii_case(name) {
        return None;
    }
    let rest = &text[name.len()..];
    let rest = rest.strip_prefix([':', ',']).unwrap_or(rest);
    (rest.is_empty() || rest.starts_with(char::is_whitespace)).then(|| rest.trim())
}

/// The body without a rich-reply fallback (`> <@a:hs> quoted` lines, then a blank line).
pub(crate) fn without_reply_fallback(body: &str) -> &str {
    if !body.starts_with("> ") {
        return body;
    }
    match body.find("\n\n") {
        Some(i) => &body[i + 2..],
        None => body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec![
            "@execgov:hs".into(),
            "execgov".into(),
            "ExecGov".into(),
            "ExecGov Bot".into(),
        ]
    }

    #[test]
    fn prefix_means_run() {
        assert_eq!(
            parse_command(
                "!run report-export month=2026-10",
                "!run",
                &names(),
                false,
                Mentioned::Unsaid
            ),
            Some(("report-export month=2026-10".into(), true))
        );
        assert_eq!(
            parse_command("!run", "!run", &names(), false, Mentioned::Unsaid),
            Some(("".into(), true))
        );
        assert_eq!(
            parse_command("!running late", "!run", &names(), false, Mentioned::Unsaid),
            None,
            "a longer word is not the prefix"
        );
        assert_eq!(
            parse_command("hello all", "!run", &names(), false, Mentioned::Unsaid),
            None,
            "chat is not a command"
        );
    }

    #[test]
    fn approve_and_deny_are_commands() {
        assert_eq!(
            parse_command("!approve 12", "!run", &names(), false, Mentioned::Unsaid),
            Some(("approve 12".into(), false))
        );
        assert_eq!(
            parse_command(
                "!deny 12 not during the freeze",
                "!run",
                &names(),
                false,
                Mentioned::Unsaid
            ),
            Some(("deny 12 not during the freeze".into(), false))
        );
    }

    #[test]
    fn mentions_and_direct_rooms() {
        assert_eq!(
            parse_command(
                "execgov: status 12",
                "!run",
                &names(),
                false,
                Mentioned::Unsaid
            ),
            Some(("status 12".into(), false))
        );
        assert_eq!(
            parse_command(
                "@execgov:hs list",
                "!run",
                &names(),
                false,
                Mentioned::Unsaid
            ),
            Some(("list".into(), false))
        );
        assert_eq!(
            parse_command(
                "ExecGov Bot, !run x",
                "!run",
                &names(),
                false,
                Mentioned::Unsaid
            ),
            Some(("x".into(), true))
        );
        assert_eq!(
            parse_command("execgovx list", "!run", &names(), false, Mentioned::Unsaid),
            None
        );
        assert_eq!(
            parse_command("list", "!run", &names(), true, Mentioned::Unsaid),
            Some(("list".into(), false))
        );
        assert_eq!(
            parse_command("  ", "!run", &names(), true, Mentioned::Unsaid),
            None
        );
    }

    #[test]
    fn m_mentions_decide_where_the_event_has_them() {
        let yes = Mentioned::Yes;
        assert_eq!(
            parse_command("ExecGov: status 12", "!run", &names(), false, yes),
            Some(("status 12".into(), false)),
            "the pill's text is left out"
        );
        assert_eq!(
            parse_command("Bot-name-we-never-heard list", "!run", &names(), false, yes),
            Some(("Bot-name-we-never-heard list".into(), false)),
            "a mention by m.mentions needs no known name in the text"
        );
        assert_eq!(
            parse_command("execgov: status 12", "!run", &names(), false, Mentioned::No),
            None,
            "m.mentions without the bot: its name in the text is not a mention"
        );
        assert_eq!(
            parse_command("!run x", "!run", &names(), false, Mentioned::No),
            Some(("x".into(), true)),
            "the prefix still works"
        );
        let own = matrix_sdk::ruma::user_id!("@execgov:hs");
        let other = matrix_sdk::ruma::user_id!("@carol:hs");
        assert_eq!(Mentioned::of(None, own), Mentioned::Unsaid);
        assert_eq!(
            Mentioned::of(Some(&Mentions::with_user_ids([own.to_owned()])), own),
            Mentioned::Yes
        );
        assert_eq!(
            Mentioned::of(Some(&Mentions::with_user_ids([other.to_owned()])), own),
            Mentioned::No
        );
        assert_eq!(Mentioned::of(Some(&Mentions::new()), own), Mentioned::No);
    }

    #[test]
    fn reply_fallback_is_not_the_command() {
        assert_eq!(
            without_reply_fallback("> <@a:hs> !run x\n\nstatus 3"),
            "status 3"
        );
        assert_eq!(without_reply_fallback("status 3"), "status 3");
    }

    #[test]
    fn reaction_keys() {
        assert_eq!(reaction_decision("✅"), Some(Decision::Approve));
        assert_eq!(reaction_decision("✔️"), Some(Decision::Approve));
        assert_eq!(reaction_decision("👍🏽"), Some(Decision::Approve));
        assert_eq!(reaction_decision("❌"), Some(Decision::Deny));
        assert_eq!(reaction_decision("👎"), Some(Decision::Deny));
        assert_eq!(reaction_decision("🎉"), None);
    }
}
