//! Mapping each argparse action the probe reported to a typed `[[param]]`
//! (name, type, default, choices, help), or to the reason it cannot be.

use std::fmt::Write as _;

use serde_json::Value;

use serde::Deserialize;

/// One argparse action, as the probe describes it.
#[derive(Debug, Deserialize)]
pub(super) struct Action {
    pub(super) kind: String,
    pub(super) option_strings: Vec<String>,
    pub(super) dest: String,
    pub(super) nargs: Value,
    #[serde(rename = "type")]
    pub(super) type_name: Option<String>,
    pub(super) choices: Option<Vec<Value>>,
    pub(super) subcommands: Option<Vec<String>>,
    pub(super) required: bool,
    /// In a mutually exclusive group: its default is left to the script, since
    /// passing it would clash with the other members.
    #[serde(default)]
    pub(super) exclusive: bool,
    pub(super) default: Value,
    pub(super) help: String,
}

/// One `[[param]]` as it will be written.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct GenParam {
    pub(super) name: String,
    pub(super) kind: &'static str,
    pub(super) choices: Vec<String>,
    /// TOML text of the default, when there is one the type accepts.
    pub(super) default: Option<String>,
    pub(super) optional: bool,
    pub(super) description: String,
}

/// What became of one argument.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Mapped {
    /// A parameter and the `command` elements that pass it.
    Param {
        param: GenParam,
        elements: Vec<String>,
        positional: bool,
    },
    /// Not mapped: the argument as the script names it, and why.
    Skipped { what: String, why: String },
}

/// Each argparse action as a parameter, or why not.
pub(super) fn map_actions(actions: &[Action]) -> Vec<Mapped> {
    let mut out: Vec<Mapped> = Vec::new();
    for a in actions {
        if a.kind == "help" || a.kind == "version" {
            continue;
        }
        let mapped = map_action(a);
        // Two arguments that would share a parameter name: the second is not mapped.
        if let Mapped::Param { param, .. } = &mapped
            && out
                .iter()
                .any(|m| matches!(m, Mapped::Param { param: p, .. } if p.name == param.name))
        {
            out.push(Mapped::Skipped {
                what: shown(a),
                why: format!(
                    "its parameter name `{}` is taken by another argument",
                    param.name
                ),
            });
            continue;
        }
        out.push(mapped);
    }
    out
}

fn shown(a: &Action) -> String {
    a.option_strings
        .iter()
        .max_by_key(|s| s.len())
        .cloned()
        .unwrap_or_else(|| a.dest.clone())
}

fn map_action(a: &Action) -> Mapped {
    let skip = |why: String| Mapped::Skipped {
        what: shown(a),
        why,
    };
    let long = a.option_strings.iter().find(|s| s.starts_with("--"));
    let flag = long.or(a.option_strings.first());
    match a.kind.as_str() {
        "store_true" | "store_false" | "store_const" => {
            let Some(flag) = flag else {
                return skip("a switch without an option string".to_string());
            };
            let name = if a.kind == "store_true" {
                param_name(&a.dest)
            } else {
                param_name(&flag.trim_start_matches('-').replace('-', "_"))
            };
            let param = GenParam {
                name: name.clone(),
                kind: "bool",
                choices: Vec::new(),
                default: Some("false".to_string()),
                optional: false,
                description: a.help.clone(),
            };
            return Mapped::Param {
                param,
                elements: vec![format!("{{{name}?{}}}", escape(flag))],
                positional: false,
            };
        }
        "store" => {}
        "subcommands" => {
            let list = a.subcommands.clone().unwrap_or_default().join(", ");
            return skip(format!(
                "subcommands ({list}) are not mapped; write one manifest per subcommand"
            ));
        }
        "append" => return skip("`action=\"append\"` (repeatable) is not mapped".to_string()),
        "count" => return skip("`action=\"count\"` is not mapped".to_string()),
        other => return skip(format!("action `{other}` is not mapped")),
    }
    match &a.nargs {
        Value::Null => {}
        Value::String(s) if s == "?" => {}
        Value::Number(n) if n.as_u64() == Some(1) => {}
        other => {
            let n = other
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| other.to_string());
            return skip(format!(
                "takes several values (nargs={n:?}), which a parameter cannot"
            ));
        }
    }
    let kind = match a.type_name.as_deref() {
        _ if a.choices.is_some() => "enum",
        None | Some("str") => "string",
        Some("int") => "int",
        Some("float") => "float",
        // A path is text; the script opens it itself.
        Some("Path" | "PosixPath" | "FileType") => "string",
        Some(other) => return skip(format!("its type `{other}` is a custom one")),
    };
    let choices: Vec<String> = a
        .choices
        .iter()
        .flatten()
        .filter_map(|c| match c {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        })
        .collect();
    if kind == "enum" && choices.len() != a.choices.as_ref().map_or(0, Vec::len) {
        return skip("its choices are not plain text or numbers".to_string());
    }
    let positional = a.option_strings.is_empty();
    let name = param_name(&a.dest);
    let default = if a.exclusive {
        None
    } else {
        default_text(kind, &choices, &a.default)
    };
    let required = if positional {
        a.nargs.is_null() || a.nargs.as_u64() == Some(1)
    } else {
        a.required
    };
    let mut description = a.help.clone();
    if default.is_none() && !required {
        let d = match &a.default {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        if let Some(d) = d {
            let _ = write!(description, " (when not given: {d})");
            description = description.trim().to_string();
        }
    }
    let param = GenParam {
        name: name.clone(),
        kind,
        choices,
        optional: default.is_none() && !required,
        default,
        description,
    };
    let element = match flag {
        None => format!("{{{name}}}"),
        // `--month=VALUE` is one element, so a value starting with `-` is never
        // taken for an option.
        Some(f) if f.starts_with("--") => format!("{}={{{name}}}", escape(f)),
        Some(f) => format!("{}{{{name}}}", escape(f)),
    };
    Mapped::Param {
        param,
        elements: vec![element],
        positional,
    }
}

/// A parameter name from an argparse dest or option: letters, digits, `_`, `-`.
fn param_name(dest: &str) -> String {
    let mut name: String = dest
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        name.insert(0, '_');
    }
    name
}

/// Braces are doubled in `command` elements.
fn escape(text: &str) -> String {
    text.replace('{', "{{").replace('}', "}}")
}

/// The TOML text of a default the parameter's type accepts.
fn default_text(kind: &str, choices: &[String], value: &Value) -> Option<String> {
    let toml_str = |s: &str| toml::Value::String(s.to_string()).to_string();
    match (kind, value) {
        ("int", Value::Number(n)) if n.is_i64() => Some(n.to_string()),
        ("float", Value::Number(n)) => {
            let x = n.as_f64()?;
            x.is_finite().then(|| {
                let t = format!("{x:?}");
                if t.contains(['.', 'e', 'E']) {
                    t
                } else {
                    format!("{t}.0")
                }
            })
        }
        ("string", Value::String(s)) if !s.contains('\0') => Some(toml_str(s)),
        ("string", Value::Number(n)) => Some(toml_str(&n.to_string())),
        ("enum", v) => {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return None,
            };
            choices.contains(&text).then(|| toml_str(&text))
        }
        _ => None,
    }
}
