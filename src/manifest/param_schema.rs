//! `[[param]]` sections: each parameter's name, type and the constraints
//! that type takes, every problem with its line (the rest of a manifest is
//! `schema.rs`).

use std::ops::Range;

use super::template::is_param_name;
use super::{ArgValue, Param, ParamKind};
use crate::config::spans::{Item, Reader, Section, int_value};
use toml::de::DeValue;

const PARAM_KEYS: &[&str] = &[
    "name",
    "type",
    "description",
    "required",
    "default",
    "pattern",
    "max_len",
    "min",
    "max",
    "choices",
    "max_size",
    "extensions",
];
const TYPES: &[&str] = &["string", "int", "float", "bool", "enum", "date", "file"];
/// A file parameter's `max_size` when unset, and the most it may be.
const DEFAULT_FILE_SIZE: u64 = 10 * 1024 * 1024;
pub const MAX_FILE_SIZE: u64 = 64 * 1024 * 1024;

pub(super) fn read_params(r: &mut Reader<'_>, top: &Section<'_, '_>) -> Vec<Param> {
    let mut params: Vec<Param> = Vec::new();
    for section in r.sections(top, "param") {
        let Some((param, span)) = read_param(r, &section) else {
            continue;
        };
        if params.iter().any(|p| p.name == param.name) {
            let msg = format!("parameter `{}` is declared twice", param.name);
            r.key_error(&section, "name", &span, msg);
            continue;
        }
        params.push(param);
    }
    params
}

/// One `[[param]]`, with the span of its name.
fn read_param(r: &mut Reader<'_>, s: &Section<'_, '_>) -> Option<(Param, Range<usize>)> {
    r.unknown_keys(s, PARAM_KEYS);
    let name = match r.string(s, "name") {
        Some((n, span)) if is_param_name(&n) => Some((n, span)),
        Some((n, span)) => {
            let msg = format!("`{n}` is not a parameter name (letters, digits, `_`, `-`)");
            r.key_error(s, "name", &span, msg);
            None
        }
        None => {
            if s.get("name").is_none() {
                r.missing(s, "name");
            }
            None
        }
    };
    let type_name = r.string(s, "type");
    let kind = match type_name.as_ref().map(|(t, span)| (t.as_str(), span)) {
        None | Some(("string", _)) => string_kind(r, s),
        Some(("int", _)) => int_kind(r, s),
        Some(("float", _)) => float_kind(r, s),
        Some(("bool", _)) => Some(ParamKind::Bool),
        Some(("enum", _)) => enum_kind(r, s),
        Some(("date", _)) => Some(ParamKind::Date),
        Some(("file", _)) => file_kind(r, s),
        Some((other, span)) => {
            let hint = crate::config::spans::closest(other, TYPES.iter().copied())
                .map(|c| format!("; did you mean `{c}`?"))
                .unwrap_or_default();
            let msg = format!(
                "unknown parameter type `{other}` (types: {}){hint}",
                TYPES.join(", ")
            );
            r.key_error(s, "type", span, msg);
            None
        }
    };
    if let Some(kind) = &kind {
        for (key, applies_to) in [
            ("pattern", "string"),
            ("max_len", "string"),
            ("min", "int"),
            ("max", "int"),
            ("choices", "enum"),
            ("max_size", "file"),
            ("extensions", "file"),
        ] {
            let numeric = applies_to == "int" && kind.type_name() == "float";
            if kind.type_name() != applies_to
                && !numeric
                && let Some(item) = s.get(key)
            {
                let msg = if applies_to == "int" {
                    format!("`{key}` applies only to types \"int\" and \"float\"")
                } else {
                    format!("`{key}` applies only to type \"{applies_to}\"")
                };
                r.key_error(s, key, &item.span(), msg);
            }
        }
    }
    let description = r
        .string(s, "description")
        .map(|(d, _)| d)
        .unwrap_or_default();
    let explicit_required = r.bool(s, "required");
    let (name, name_span) = name?;
    let mut param = Param {
        name,
        kind: kind?,
        required: true,
        default: None,
        description,
    };
    if let Some(item) = s.get("default") {
        match toml_arg(item).and_then(|v| param.check(v)) {
            Ok(v) => param.default = Some(v),
            Err(msg) => {
                let msg = format!("default fails its own type: {msg}");
                r.key_error(s, "default", &item.span(), msg);
            }
        }
    }
    param.required = explicit_required.unwrap_or(param.default.is_none());
    if param.required
        && param.default.is_some()
        && let Some(item) = s.get("required")
    {
        let msg = "`required = true` contradicts a `default`; drop one of them";
        r.key_error(s, "required", &item.span(), msg);
    }
    Some((param, name_span))
}

fn string_kind(r: &mut Reader<'_>, s: &Section<'_, '_>) -> Option<ParamKind> {
    let pattern = match r.string(s, "pattern") {
        Some((p, span)) => match regex::Regex::new(&format!("^(?:{p})$")) {
            Ok(re) => Some(re),
            Err(e) => {
                let why = e.to_string();
                let why = why.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
                let msg = format!("pattern `{p}` is not a valid regex: {}", why.trim());
                r.key_error(s, "pattern", &span, msg);
                return None;
            }
        },
        None => None,
    };
    let max_len = r.count::<usize>(s, "max_len", 1);
    Some(ParamKind::String { pattern, max_len })
}

/// `type = "file"`: `max_size = "1MiB"` (default 10 MiB, at most 64 MiB) and
/// `extensions = ["csv", "txt"]` (any when unset).
fn file_kind(r: &mut Reader<'_>, s: &Section<'_, '_>) -> Option<ParamKind> {
    let max_size = match r.string(s, "max_size") {
        None => DEFAULT_FILE_SIZE,
        Some((text, span)) => match text.parse::<bytesize::ByteSize>() {
            Ok(size) if size.as_u64() >= 1 && size.as_u64() <= MAX_FILE_SIZE => size.as_u64(),
            Ok(_) => {
                let msg = format!("`{text}` must be between 1 byte and 64MiB");
                r.key_error(s, "max_size", &span, msg);
                return None;
            }
            Err(_) => {
                let msg = format!("`{text}` is not a size such as \"1MiB\"");
                r.key_error(s, "max_size", &span, msg);
                return None;
            }
        },
    };
    let mut extensions = Vec::new();
    for (ext, span) in r.strings(s, "extensions").unwrap_or_default() {
        let ext = ext.trim_start_matches('.').to_ascii_lowercase();
        if ext.is_empty() || !ext.chars().all(|c| c.is_ascii_alphanumeric()) {
            let msg = format!("`{ext}` is not a file extension such as \"csv\"");
            r.key_error(s, "extensions", &span, msg);
            return None;
        }
        extensions.push(ext);
    }
    if s.get("default").is_some() {
        let span = s.get("default").map(|i| i.span()).unwrap_or(s.span.clone());
        r.key_error(s, "default", &span, "a file parameter has no default");
        return None;
    }
    Some(ParamKind::File {
        max_size,
        extensions,
    })
}

fn int_kind(r: &mut Reader<'_>, s: &Section<'_, '_>) -> Option<ParamKind> {
    let min = r.int(s, "min");
    let max = r.int(s, "max");
    if let (Some((lo, _)), Some((hi, span))) = (&min, &max)
        && lo > hi
    {
        r.key_error(s, "max", span, format!("min {lo} is greater than max {hi}"));
        return None;
    }
    Some(ParamKind::Int {
        min: min.map(|(n, _)| n),
        max: max.map(|(n, _)| n),
    })
}

/// `min`/`max` of a float parameter: TOML floats or integers.
fn float_kind(r: &mut Reader<'_>, s: &Section<'_, '_>) -> Option<ParamKind> {
    let mut bound = |key: &str| -> Option<(f64, Range<usize>)> {
        let item = s.get(key)?;
        let value = match item.get_ref() {
            DeValue::Float(f) => f.as_str().parse::<f64>().ok().filter(|x| x.is_finite()),
            v @ DeValue::Integer(_) => int_value(v).map(|n| n as f64),
            _ => None,
        };
        if value.is_none() {
            r.key_error(s, key, &item.span(), "expected a finite number");
        }
        value.map(|x| (x, item.span()))
    };
    let min = bound("min");
    let max = bound("max");
    if let (Some((lo, _)), Some((hi, span))) = (&min, &max)
        && lo > hi
    {
        r.key_error(s, "max", span, format!("min {lo} is greater than max {hi}"));
        return None;
    }
    Some(ParamKind::Float {
        min: min.map(|(x, _)| x),
        max: max.map(|(x, _)| x),
    })
}

fn enum_kind(r: &mut Reader<'_>, s: &Section<'_, '_>) -> Option<ParamKind> {
    let Some(choices) = r.strings(s, "choices") else {
        if s.get("choices").is_none() {
            r.error(
                &s.span,
                Some(s.key_path("choices")),
                "an enum parameter needs `choices`",
            );
        }
        return None;
    };
    if choices.is_empty() {
        let span = s.get("choices").map(|i| i.span()).unwrap_or_default();
        r.key_error(
            s,
            "choices",
            &span,
            "an enum parameter needs at least one choice",
        );
        return None;
    }
    let mut out: Vec<String> = Vec::new();
    for (choice, span) in choices {
        if out.contains(&choice) {
            r.key_error(s, "choices", &span, format!("`{choice}` is listed twice"));
            return None;
        }
        out.push(choice);
    }
    Some(ParamKind::Enum { choices: out })
}

/// A TOML value as an argument value: strings, integers, booleans, and floats and
/// bare dates (`0.5`, `2026-01-31`) kept as text.
pub(super) fn toml_arg(item: &Item<'_>) -> Result<ArgValue, String> {
    match item.get_ref() {
        DeValue::String(s) => Ok(ArgValue::Str(s.to_string())),
        DeValue::Boolean(b) => Ok(ArgValue::Bool(*b)),
        v @ DeValue::Integer(_) => int_value(v)
            .map(ArgValue::Int)
            .ok_or_else(|| "integer out of range".to_string()),
        // Kept as written, as float parameters keep their values.
        DeValue::Float(f) => Ok(ArgValue::Str(f.as_str().to_string())),
        DeValue::Datetime(dt) if dt.date.is_some() && dt.time.is_none() => {
            Ok(ArgValue::Str(dt.to_string()))
        }
        other => Err(format!(
            "expected a string, integer, boolean or date, got {}",
            other.type_str()
        )),
    }
}
