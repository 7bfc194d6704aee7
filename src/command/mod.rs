//! The command grammar, parsed once in the core for every channel (Slack,
//! Matrix, CLI, web). Adapters strip their prefix (`/run`, `!run`, a mention)
//! and hand the rest here.
//!
//! ```text
//! run <script> [key=value ...]      values may be quoted: note="two words"
//! list
//! help [<script>]
//! status <run-id>
//! cancel <run-id>
//! explain <script> [key=value ...]
//! approve <run-id> [code]         code: a 6-digit step-up code (risk = "critical")
//! deny <run-id> [reason ...]
//! login
//! ```

use crate::types::RunId;
use std::fmt;

/// One parsed command. Arguments stay raw `key=value` strings here: typing them
/// is the manifest's job, which knows the parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run {
        script: String,
        args: Vec<(String, String)>,
    },
    List,
    Help {
        script: Option<String>,
    },
    Status {
        run: RunId,
    },
    Cancel {
        run: RunId,
    },
    Explain {
        script: String,
        args: Vec<(String, String)>,
    },
    Approve {
        run: RunId,
        /// The approver's authenticator code, as typed; the engine checks it
        /// (a critical run needs one, and where it was sent matters).
        code: Option<String>,
    },
    Deny {
        run: RunId,
        reason: Option<String>,
    },
    Login,
    /// `run! SCRIPT key=value … reason="…"`: start without waiting for the
    /// approval the run needs (break-glass). `reason` is empty when not given
    /// (the engine refuses it, saying so).
    BreakGlass {
        script: String,
        args: Vec<(String, String)>,
        reason: String,
    },
    /// `review RUN [note]`: an approver reviews a break-glass run.
    Review {
        run: RunId,
        note: Option<String>,
    },
}

/// Why a line is not a command, worded for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty command; try `help`")]
    Empty,
    #[error(
        "unknown command `{0}`; commands: run, run!, list, help, status, cancel, explain, approve, deny, review, login"
    )]
    UnknownVerb(String),
    #[error("`{verb}` needs {what}; usage: {usage}")]
    Missing {
        verb: &'static str,
        what: &'static str,
        usage: &'static str,
    },
    #[error("{0}")]
    BadRunId(String),
    #[error(
        "argument `{0}` is not key=value; write e.g. month=2026-10 (quote values with spaces: note=\"two words\")"
    )]
    NotKeyValue(String),
    #[error("unterminated quote in `{0}`; close it with a matching {1}")]
    Unterminated(String, char),
    #[error("`{verb}` takes no more after {after}; got `{extra}`")]
    Extra {
        verb: &'static str,
        after: &'static str,
        extra: String,
    },
}

impl Command {
    /// Parses one command line. Leading `run` may be omitted by adapters whose
    /// prefix already says "run" (`/run report-export …`): see [`Command::parse_run_prefixed`].
    pub fn parse(line: &str) -> Result<Command, ParseError> {
        let words = split_words(line)?;
        let mut it = words.into_iter();
        let Some(verb) = it.next() else {
            return Err(ParseError::Empty);
        };
        let rest: Vec<String> = it.collect();
        match verb.to_ascii_lowercase().as_str() {
            "run" => {
                let (script, args) = script_and_args("run", "run <script> [key=value ...]", rest)?;
                Ok(Command::Run { script, args })
            }
            "explain" => {
                let (script, args) =
                    script_and_args("explain", "explain <script> [key=value ...]", rest)?;
                Ok(Command::Explain { script, args })
            }
            "list" | "ls" => {
                no_more("list", "the verb", &rest, 0)?;
                Ok(Command::List)
            }
            "help" => {
                no_more("help", "the script name", &rest, 1)?;
                Ok(Command::Help {
                    script: rest.into_iter().next(),
                })
            }
            "status" => Ok(Command::Status {
                run: one_run_id("status", "status <run-id>", &rest)?,
            }),
            "cancel" => Ok(Command::Cancel {
                run: one_run_id("cancel", "cancel <run-id>", &rest)?,
            }),
            "approve" => {
                let usage = "approve <run-id> [code]";
                let run = one_run_id("approve", usage, &rest[..rest.len().min(1)])?;
                no_more("approve", "the code", &rest, 2)?;
                Ok(Command::Approve {
                    run,
                    code: rest.get(1).cloned(),
                })
            }
            "deny" => {
                let (run, reason) = run_id_and_text("deny", "deny <run-id> [reason]", &rest)?;
                Ok(Command::Deny { run, reason })
            }
            "review" => {
                let (run, note) = run_id_and_text("review", "review <run-id> [note]", &rest)?;
                Ok(Command::Review { run, note })
            }
            "run!" => {
                let usage = "run! <script> [key=value ...] reason=\"why it cannot wait\"";
                let (script, mut args) = script_and_args("run!", usage, rest)?;
                // `reason=` is the break-glass reason (the last one given), not an argument.
                let reason = args
                    .iter()
                    .rfind(|(k, _)| k == "reason")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                args.retain(|(k, _)| k != "reason");
                Ok(Command::BreakGlass {
                    script,
                    args,
                    reason,
                })
            }
            "login" => {
                no_more("login", "the verb", &rest, 0)?;
                Ok(Command::Login)
            }
            other => Err(ParseError::UnknownVerb(other.to_string())),
        }
    }

    /// For entry points whose prefix means "run" (Slack's `/run`): a line whose
    /// first word is a known verb is parsed as that command, anything else as
    /// `run <line>`, so `/run report-export month=2026-10` and `/run status 42`
    /// both work.
    pub fn parse_run_prefixed(line: &str) -> Result<Command, ParseError> {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.is_empty() {
            return Ok(Command::Help { script: None });
        }
        if VERBS.contains(&first.to_ascii_lowercase().as_str()) {
            Command::parse(line)
        } else {
            Command::parse(&format!("run {line}"))
        }
    }

    /// The verb as written in the audit log.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Run { .. } => "run",
            Command::List => "list",
            Command::Help { .. } => "help",
            Command::Status { .. } => "status",
            Command::Cancel { .. } => "cancel",
            Command::Explain { .. } => "explain",
            Command::Approve { .. } => "approve",
            Command::Deny { .. } => "deny",
            Command::Login => "login",
            Command::BreakGlass { .. } => "run!",
            Command::Review { .. } => "review",
        }
    }
}

const VERBS: &[&str] = &[
    "run", "run!", "list", "ls", "help", "status", "cancel", "explain", "approve", "deny",
    "review", "login",
];

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let args_str = |args: &[(String, String)]| {
            args.iter()
                .map(|(k, v)| format!(" {k}={}", quote_if_needed(v)))
                .collect::<String>()
        };
        match self {
            Command::Run { script, args } => write!(f, "run {script}{}", args_str(args)),
            Command::Explain { script, args } => write!(f, "explain {script}{}", args_str(args)),
            Command::List => f.write_str("list"),
            Command::Help { script: None } => f.write_str("help"),
            Command::Help { script: Some(s) } => write!(f, "help {s}"),
            Command::Status { run } => write!(f, "status {run}"),
            Command::Cancel { run } => write!(f, "cancel {run}"),
            Command::Approve { run, code: None } => write!(f, "approve {run}"),
            // A code is a secret for its 30 seconds: never shown again.
            Command::Approve { run, code: Some(_) } => write!(f, "approve {run} ******"),
            Command::Deny { run, reason: None } => write!(f, "deny {run}"),
            Command::Deny {
                run,
                reason: Some(r),
            } => write!(f, "deny {run} {r}"),
            Command::Login => f.write_str("login"),
            Command::BreakGlass {
                script,
                args,
                reason,
            } => write!(
                f,
                "run! {script}{} reason={}",
                args_str(args),
                quote_if_needed(reason)
            ),
            Command::Review { run, note: None } => write!(f, "review {run}"),
            Command::Review { run, note: Some(n) } => write!(f, "review {run} {n}"),
        }
    }
}

/// Quotes a value for display so that it reads back as one argument.
pub fn quote_if_needed(v: &str) -> String {
    if !v.is_empty()
        && !v
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\'')
    {
        return v.to_string();
    }
    let escaped = v.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

fn script_and_args(
    verb: &'static str,
    usage: &'static str,
    rest: Vec<String>,
) -> Result<(String, Vec<(String, String)>), ParseError> {
    let mut it = rest.into_iter();
    let Some(script) = it.next() else {
        return Err(ParseError::Missing {
            verb,
            what: "a script name",
            usage,
        });
    };
    let args = it.map(|w| split_kv(&w)).collect::<Result<Vec<_>, _>>()?;
    Ok((script, args))
}

fn split_kv(word: &str) -> Result<(String, String), ParseError> {
    match word.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(ParseError::NotKeyValue(word.to_string())),
    }
}

/// `<run-id> [free text]`: the run and the rest of the line, if any.
fn run_id_and_text(
    verb: &'static str,
    usage: &'static str,
    rest: &[String],
) -> Result<(RunId, Option<String>), ParseError> {
    let Some(first) = rest.first() else {
        return Err(ParseError::Missing {
            verb,
            what: "a run id",
            usage,
        });
    };
    let run = RunId::parse(first).map_err(ParseError::BadRunId)?;
    let text = rest[1..].join(" ");
    Ok((
        run,
        (!text.trim().is_empty()).then(|| text.trim().to_string()),
    ))
}

fn one_run_id(
    verb: &'static str,
    usage: &'static str,
    rest: &[String],
) -> Result<RunId, ParseError> {
    let Some(first) = rest.first() else {
        return Err(ParseError::Missing {
            verb,
            what: "a run id",
            usage,
        });
    };
    no_more(verb, "the run id", rest, 1)?;
    RunId::parse(first).map_err(ParseError::BadRunId)
}

fn no_more(
    verb: &'static str,
    after: &'static str,
    rest: &[String],
    allowed: usize,
) -> Result<(), ParseError> {
    match rest.get(allowed) {
        Some(extra) => Err(ParseError::Extra {
            verb,
            after,
            extra: extra.clone(),
        }),
        None => Ok(()),
    }
}

/// Splits a line into words. Double or single quotes group words
/// (`note="two words"` is one word `note=two words`); a backslash escapes the
/// next character inside double quotes. Chat clients often turn quotes into
/// typographic ones, so `“…”` and `‘…’` count as quotes too.
pub fn split_words(line: &str) -> Result<Vec<String>, ParseError> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '"' | '“' | '”' | '\'' | '‘' | '’' => {
                in_word = true;
                let close: &[char] = match c {
                    '"' => &['"'],
                    '\'' => &['\''],
                    '“' | '”' => &['”', '“', '"'],
                    _ => &['’', '‘', '\''],
                };
                let mut closed = false;
                while let Some(q) = chars.next() {
                    if close.contains(&q) {
                        closed = true;
                        break;
                    }
                    if q == '\\' && c == '"' {
                        if let Some(n) = chars.next() {
                            cur.push(n);
                        }
                        continue;
                    }
                    cur.push(q);
                }
                if !closed {
                    return Err(ParseError::Unterminated(line.to_string(), close[0]));
                }
            }
            other => {
                in_word = true;
                cur.push(other);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests;
