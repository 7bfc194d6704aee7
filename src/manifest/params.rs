//! Typed parameters: user text (or typed values from TOML and JSON) checked once
//! into [`Args`], so nothing downstream re-checks strings.

use std::collections::BTreeMap;
use std::fmt;

use super::Manifest;
use crate::config::spans::closest;
use crate::types::{ArgValue, Args};

/// One `[[param]]` of a manifest.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    pub kind: ParamKind,
    /// Must be given explicitly; defaults to true when there is no `default`.
    pub required: bool,
    /// Filled in when the parameter is not given. Always valid for `kind`.
    pub default: Option<ArgValue>,
    pub description: String,
}

/// A parameter's type and its constraints.
#[derive(Debug, Clone)]
pub enum ParamKind {
    /// Any text. `pattern` is anchored (`^(?:…)$`): it must match the whole value.
    String {
        pattern: Option<regex::Regex>,
        max_len: Option<usize>,
    },
    Int {
        min: Option<i64>,
        max: Option<i64>,
    },
    /// A decimal number, kept as the text it was given (`0.25`), so the script gets
    /// exactly what was typed; checked to be finite and within `min`/`max`.
    Float {
        min: Option<f64>,
        max: Option<f64>,
    },
    Bool,
    Enum {
        choices: Vec<String>,
    },
    /// A calendar date written `YYYY-MM-DD`, kept as that string.
    Date,
    /// A file sent with the request (attached in chat, uploaded on the web or
    /// the API, `key=@path` on the CLI); `{param}` is its path where it runs.
    File {
        max_size: u64,
        /// Lowercase, without the dot; empty: any.
        extensions: Vec<String>,
    },
}

impl ParamKind {
    /// The name manifests use in `type = …`.
    pub fn type_name(&self) -> &'static str {
        match self {
            ParamKind::String { .. } => "string",
            ParamKind::Int { .. } => "int",
            ParamKind::Float { .. } => "float",
            ParamKind::Bool => "bool",
            ParamKind::Enum { .. } => "enum",
            ParamKind::Date => "date",
            ParamKind::File { .. } => "file",
        }
    }
}

/// Why arguments were refused. Shown to the requester as-is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError {
    /// Set when a known parameter's value is wrong; `message` is then the part after
    /// "parameter `NAME`: ". Unset for unknown, missing or repeated parameters, where
    /// `message` is the whole sentence.
    pub param: Option<String>,
    pub message: String,
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.param {
            Some(p) => write!(f, "parameter `{p}`: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ArgError {}

impl Param {
    /// Checks text as the user typed it.
    pub fn parse_raw(&self, raw: &str) -> Result<ArgValue, String> {
        match &self.kind {
            ParamKind::File { .. } => Err(self.attach_hint()),
            ParamKind::Int { .. } => match raw.parse::<i64>() {
                Ok(n) => self.check(ArgValue::Int(n)),
                Err(_) => Err(format!("expected an integer, got `{raw}`")),
            },
            ParamKind::Bool => match raw.to_ascii_lowercase().as_str() {
                "true" | "yes" => Ok(ArgValue::Bool(true)),
                "false" | "no" => Ok(ArgValue::Bool(false)),
                _ => Err(format!("expected true or false, got `{raw}`")),
            },
            _ => self.check(ArgValue::Str(raw.to_string())),
        }
    }

    /// Checks an already-typed value. A value of another type is taken as its text
    /// (`Int(5)` for a string parameter is `"5"`), then checked as typed text is.
    pub fn check(&self, value: ArgValue) -> Result<ArgValue, String> {
        match (&self.kind, value) {
            (ParamKind::String { pattern, max_len }, ArgValue::Str(s)) => {
                if s.contains('\0') {
                    return Err("must not contain NUL bytes".to_string());
                }
                if let Some(max) = max_len
                    && s.chars().count() > *max
                {
                    return Err(format!("longer than {max} characters"));
                }
                if let Some(re) = pattern
                    && !re.is_match(&s)
                {
                    return Err(format!(
                        "`{s}` does not match the pattern `{}`",
                        shown_pattern(re)
                    ));
                }
                Ok(ArgValue::Str(s))
            }
            (ParamKind::Int { min, max }, ArgValue::Int(n)) => {
                if let Some(min) = min
                    && n < *min
                {
                    return Err(format!("must be at least {min}, got {n}"));
                }
                if let Some(max) = max
                    && n > *max
                {
                    return Err(format!("must be at most {max}, got {n}"));
                }
                Ok(ArgValue::Int(n))
            }
            (ParamKind::Float { min, max }, ArgValue::Str(s)) => {
                let x = match s.trim().parse::<f64>() {
                    Ok(x) if x.is_finite() && s.trim() == s => x,
                    _ => return Err(format!("expected a number such as 0.5, got `{s}`")),
                };
                if let Some(min) = min
                    && x < *min
                {
                    return Err(format!("must be at least {min}, got {s}"));
                }
                if let Some(max) = max
                    && x > *max
                {
                    return Err(format!("must be at most {max}, got {s}"));
                }
                Ok(ArgValue::Str(s))
            }
            (ParamKind::Bool, ArgValue::Bool(b)) => Ok(ArgValue::Bool(b)),
            (ParamKind::Enum { choices }, ArgValue::Str(s)) => {
                if choices.contains(&s) {
                    return Ok(ArgValue::Str(s));
                }
                let hint = closest(&s, choices.iter().map(String::as_str))
                    .map(|c| format!("; did you mean `{c}`?"))
                    .unwrap_or_default();
                Err(format!(
                    "expected one of {}, got `{s}`{hint}",
                    choices.join(", ")
                ))
            }
            (ParamKind::Date, ArgValue::Str(s)) => {
                let shaped = s.len() == 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-';
                if shaped && chrono::NaiveDate::parse_from_str(&s, "%Y-%m-%d").is_ok() {
                    Ok(ArgValue::Str(s))
                } else {
                    Err(format!("expected a date YYYY-MM-DD, got `{s}`"))
                }
            }
            (
                ParamKind::String { .. }
                | ParamKind::Enum { .. }
                | ParamKind::Date
                | ParamKind::Float { .. },
                other,
            ) => self.check(ArgValue::Str(other.to_arg())),
            // A file value is made only from bytes that arrived (Manifest::bind_file).
            (ParamKind::File { .. }, _) => Err(self.attach_hint()),
            (_, ArgValue::Str(s)) => self.parse_raw(&s),
            (kind, other) => Err(format!("expected {}, got `{other}`", kind.type_name())),
        }
    }

    /// `days (int 1..=365, default 30)`, for usage text.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        match &self.kind {
            ParamKind::String { pattern, max_len } => {
                parts.push("text".to_string());
                if let Some(re) = pattern {
                    parts.push(format!("matching `{}`", shown_pattern(re)));
                }
                if let Some(max) = max_len {
                    parts.push(format!("at most {max} characters"));
                }
            }
            ParamKind::Int { min, max } => parts.push(match (min, max) {
                (Some(a), Some(b)) => format!("integer {a} to {b}"),
                (Some(a), None) => format!("integer ≥ {a}"),
                (None, Some(b)) => format!("integer ≤ {b}"),
                (None, None) => "integer".to_string(),
            }),
            ParamKind::Float { min, max } => parts.push(match (min, max) {
                (Some(a), Some(b)) => format!("number {a} to {b}"),
                (Some(a), None) => format!("number ≥ {a}"),
                (None, Some(b)) => format!("number ≤ {b}"),
                (None, None) => "number".to_string(),
            }),
            ParamKind::Bool => parts.push("true or false".to_string()),
            ParamKind::Enum { choices } => parts.push(format!("one of {}", choices.join(", "))),
            ParamKind::Date => parts.push("date YYYY-MM-DD".to_string()),
            ParamKind::File {
                max_size,
                extensions,
            } => {
                parts.push("a file".to_string());
                if !extensions.is_empty() {
                    parts.push(dotted(extensions));
                }
                parts.push(format!(
                    "at most {}",
                    bytesize::ByteSize::b(*max_size).display().iec()
                ));
            }
        }
        match (&self.default, self.required) {
            (Some(d), _) => parts.push(format!("default {d}")),
            (None, true) => parts.push("required".to_string()),
            (None, false) => parts.push("optional".to_string()),
        }
        let mut text = format!("{} ({})", self.name, parts.join(", "));
        if !self.description.is_empty() {
            text.push_str(": ");
            text.push_str(&self.description);
        }
        text
    }
}

/// The pattern as the manifest wrote it, without the anchoring we add.
fn shown_pattern(re: &regex::Regex) -> &str {
    let s = re.as_str();
    s.strip_prefix("^(?:")
        .and_then(|s| s.strip_suffix(")$"))
        .unwrap_or(s)
}

impl Manifest {
    /// Checks `key=value` pairs as the user typed them into typed [`Args`], defaults
    /// filled in. Refuses unknown and repeated keys, values failing their type,
    /// pattern, choices, range or length, and missing required parameters.
    pub fn validate_args(&self, raw: &[(String, String)]) -> Result<Args, ArgError> {
        self.validate_into(Args::new(), raw)
    }

    pub(super) fn validate_into(
        &self,
        mut args: Args,
        raw: &[(String, String)],
    ) -> Result<Args, ArgError> {
        for (key, value) in raw {
            let param = self.param_named(key)?;
            let value = param.parse_raw(value).map_err(|message| ArgError {
                param: Some(key.clone()),
                message,
            })?;
            if args.insert(key.clone(), value).is_some() {
                return Err(repeated(key));
            }
        }
        self.fill_defaults(args)
    }

    /// Like [`Manifest::validate_args`], for values that already have a type (schedule
    /// args from TOML, JSON from the web API).
    pub fn validate_typed(&self, values: &BTreeMap<String, ArgValue>) -> Result<Args, ArgError> {
        let mut args = Args::new();
        for (key, value) in values {
            let param = self.param_named(key)?;
            let value = param.check(value.clone()).map_err(|message| ArgError {
                param: Some(key.clone()),
                message,
            })?;
            args.insert(key.clone(), value);
        }
        self.fill_defaults(args)
    }

    pub(super) fn param_named(&self, key: &str) -> Result<&Param, ArgError> {
        if let Some(p) = self.params.iter().find(|p| p.name == key) {
            return Ok(p);
        }
        let names: Vec<&str> = self.params.iter().map(|p| p.name.as_str()).collect();
        let list = if names.is_empty() {
            "this script takes no parameters".to_string()
        } else {
            format!("parameters: {}", names.join(", "))
        };
        let hint = closest(key, names.iter().copied())
            .map(|c| format!("; did you mean `{c}`?"))
            .unwrap_or_default();
        Err(ArgError {
            param: None,
            message: format!("unknown parameter `{key}` ({list}){hint}"),
        })
    }

    fn fill_defaults(&self, mut args: Args) -> Result<Args, ArgError> {
        for p in &self.params {
            if args.contains_key(&p.name) {
                continue;
            }
            match &p.default {
                Some(d) => {
                    args.insert(p.name.clone(), d.clone());
                }
                None if p.required => {
                    let mut message = format!("missing required parameter `{}`", p.name);
                    if matches!(p.kind, ParamKind::File { .. }) {
                        message = format!("{message}: {}", p.attach_hint());
                    }
                    return Err(ArgError {
                        param: None,
                        message,
                    });
                }
                None => {}
            }
        }
        Ok(args)
    }
}

pub(super) fn repeated(key: &str) -> ArgError {
    ArgError {
        param: None,
        message: format!("parameter `{key}` given more than once"),
    }
}

/// `.csv or .txt`.
pub(super) fn dotted(extensions: &[String]) -> String {
    extensions
        .iter()
        .map(|e| format!(".{e}"))
        .collect::<Vec<_>>()
        .join(" or ")
}
