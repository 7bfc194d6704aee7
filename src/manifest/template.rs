//! The argv template: each `command` element is literal text or text around ONE
//! `{param}` placeholder, and stays exactly one argv element. No shell, no splitting.
//!
//! A command-line switch that is given only when a bool parameter is true (argparse's
//! `store_true`) is the element `{verbose?--verbose}`: `--verbose` when `verbose` is
//! true, no element at all when it is false or not given.

use std::fmt;

use crate::types::{ArgValue, Args};

/// One element of `command`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgTemplate {
    /// Fixed text (`{{` and `}}` already unescaped).
    Literal(String),
    /// `prefix{name}suffix`, e.g. `--days={days}` is prefix `--days=`, name `days`.
    Param {
        prefix: String,
        name: String,
        suffix: String,
    },
    /// `{name?text}`: the element `text` when the bool parameter `name` is true,
    /// left out otherwise.
    Flag { name: String, text: String },
}

impl ArgTemplate {
    /// Parses one element. `{{`/`}}` are literal braces; at most one placeholder.
    pub fn parse(text: &str) -> Result<ArgTemplate, String> {
        if let Some(flag) = parse_flag(text) {
            return flag;
        }
        let mut parts: [String; 2] = Default::default();
        let mut name: Option<String> = None;
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            let side = usize::from(name.is_some());
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    parts[side].push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    parts[side].push('}');
                }
                '{' => {
                    let mut inner = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        inner.push(c);
                    }
                    if !closed {
                        return Err(format!(
                            "`{text}` has an unclosed `{{`; write `{{{{` for a literal brace"
                        ));
                    }
                    if !is_param_name(&inner) {
                        return Err(format!(
                            "`{{{inner}}}` in `{text}` is not a placeholder (parameter names are letters, digits, `_`, `-`); write `{{{{` for a literal brace"
                        ));
                    }
                    if name.is_some() {
                        return Err(format!(
                            "`{text}` has more than one placeholder; put each in its own element"
                        ));
                    }
                    name = Some(inner);
                }
                '}' => {
                    return Err(format!(
                        "`{text}` has an unmatched `}}`; write `}}}}` for a literal brace"
                    ));
                }
                c => parts[side].push(c),
            }
        }
        let [prefix, suffix] = parts;
        Ok(match name {
            Some(name) => ArgTemplate::Param {
                prefix,
                name,
                suffix,
            },
            None => ArgTemplate::Literal(prefix),
        })
    }

    /// The parameter this element takes, if any.
    pub fn param(&self) -> Option<&str> {
        match self {
            ArgTemplate::Literal(_) => None,
            ArgTemplate::Param { name, .. } | ArgTemplate::Flag { name, .. } => Some(name),
        }
    }

    /// The element with its placeholder filled; `None` when the (optional) parameter
    /// has no value, in which case the element is left out of argv.
    pub fn render(&self, args: &Args) -> Option<String> {
        match self {
            ArgTemplate::Literal(text) => Some(text.clone()),
            ArgTemplate::Param {
                prefix,
                name,
                suffix,
            } => args
                .get(name)
                .map(|v| format!("{prefix}{}{suffix}", v.to_arg())),
            ArgTemplate::Flag { name, text } => {
                (args.get(name) == Some(&ArgValue::Bool(true))).then(|| text.clone())
            }
        }
    }
}

/// Shows the element as a manifest would write it (braces escaped again).
impl fmt::Display for ArgTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let esc = |s: &str| s.replace('{', "{{").replace('}', "}}");
        match self {
            ArgTemplate::Literal(text) => f.write_str(&esc(text)),
            ArgTemplate::Param {
                prefix,
                name,
                suffix,
            } => write!(f, "{}{{{name}}}{}", esc(prefix), esc(suffix)),
            ArgTemplate::Flag { name, text } => write!(f, "{{{name}?{text}}}"),
        }
    }
}

/// `{name?text}`, when `text` is shaped like one: the whole element in braces with
/// a `?` after a parameter name.
fn parse_flag(text: &str) -> Option<Result<ArgTemplate, String>> {
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    let (name, flag) = inner.split_once('?')?;
    if !is_param_name(name) || inner.starts_with('{') {
        return None;
    }
    if flag.is_empty() || flag.contains(['{', '}']) {
        return Some(Err(format!(
            "`{text}`: a switch element is `{{{name}?--switch}}`, with the switch's text after `?` and no braces in it"
        )));
    }
    Some(Ok(ArgTemplate::Flag {
        name: name.to_string(),
        text: flag.to_string(),
    }))
}

/// Parameter names: a letter or `_`, then letters, digits, `_`, `-`.
pub(crate) fn is_param_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::ArgValue;

    #[test]
    fn one_placeholder_per_element() {
        assert_eq!(
            ArgTemplate::parse("--days={days}"),
            Ok(ArgTemplate::Param {
                prefix: "--days=".into(),
                name: "days".into(),
                suffix: String::new()
            })
        );
        assert_eq!(
            ArgTemplate::parse("{{literal}}"),
            Ok(ArgTemplate::Literal("{literal}".into())),
            "doubled braces are literal"
        );
        let two = ArgTemplate::parse("{a}{b}").expect_err("two placeholders");
        assert!(two.contains("more than one placeholder"), "{two}");
        assert!(ArgTemplate::parse("{a").is_err(), "unclosed");
        assert!(ArgTemplate::parse("a}").is_err(), "unmatched");
        assert!(ArgTemplate::parse("{a b}").is_err(), "not a name");
    }

    #[test]
    fn rendering_keeps_one_element_and_drops_absent_optionals() {
        let t = ArgTemplate::parse("--dir={dir}").expect("valid");
        let mut args = Args::new();
        assert_eq!(t.render(&args), None, "no value, no element");
        args.insert("dir".into(), ArgValue::Str("; rm -rf /".into()));
        assert_eq!(t.render(&args).as_deref(), Some("--dir=; rm -rf /"));
        assert_eq!(t.to_string(), "--dir={dir}");
    }

    #[test]
    fn a_switch_is_given_only_when_its_bool_is_true() {
        let t = ArgTemplate::parse("{verbose?--verbose}").expect("valid");
        assert_eq!(
            t,
            ArgTemplate::Flag {
                name: "verbose".into(),
                text: "--verbose".into()
            }
        );
        let mut args = Args::new();
        assert_eq!(t.render(&args), None, "not given: no element");
        args.insert("verbose".into(), ArgValue::Bool(false));
        assert_eq!(t.render(&args), None, "false: no element");
        args.insert("verbose".into(), ArgValue::Bool(true));
        assert_eq!(t.render(&args).as_deref(), Some("--verbose"));
        assert_eq!(t.to_string(), "{verbose?--verbose}", "shown as written");
        assert!(
            ArgTemplate::parse("{v?}").is_err(),
            "a switch needs its text"
        );
        assert_eq!(
            ArgTemplate::parse("{{a?b}}"),
            Ok(ArgTemplate::Literal("{a?b}".into())),
            "doubled braces stay literal"
        );
    }
}
