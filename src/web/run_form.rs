//! The form that asks for a run, generated from the manifest's parameters, and
//! its POST. Each field is labelled in words (the parameter's description, else
//! its name), with what it accepts (type, pattern, range) as a hint tied to it by
//! `aria-describedby`. A refusal for bad arguments marks the field it is about
//! with `aria-invalid` and says what is wrong in words, not in regex.
//!
//! The POST goes to `Engine::request_run_checked` as `web:local`, the entry point
//! chat uses, so a refused request (bad arguments included) is audited as it is
//! from chat.

use super::auth::Viewer;
use super::layout::{redirect_with_notice, urlencode};
use super::scripts::render_script;
use super::{WebError, WebState, view};
use crate::manifest::{ArgError, Manifest, Param, ParamKind};
use axum::Form;
use axum::extract::{FromRequest, Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use execgov_chat::Attachment;
use maud::{Markup, html};

/// Why the form is shown again: a sentence for the top of the form, and the
/// fields it is about with what is wrong with each, in words.
#[derive(Debug, Default)]
pub(super) struct FormProblem {
    pub summary: String,
    pub fields: Vec<(String, String)>,
}

impl FormProblem {
    /// The words for the engine's refusal of `raw` (the values as entered).
    pub(super) fn from_refusal(m: &Manifest, raw: &[(String, String)], e: &ArgError) -> Self {
        let mut fields = Vec::new();
        if let Some(p) = e
            .param
            .as_deref()
            .and_then(|n| m.params.iter().find(|p| p.name == n))
        {
            let value = raw
                .iter()
                .find(|(k, _)| *k == p.name)
                .map(|(_, v)| v.as_str());
            fields.push((p.name.clone(), wrong_value(p, value.unwrap_or_default())));
        }
        // A missing required value is said for every such field at once.
        for p in &m.params {
            let required = p.required && p.default.is_none();
            if required
                && !raw.iter().any(|(k, _)| *k == p.name)
                && !fields.iter().any(|(n, _)| *n == p.name)
            {
                fields.push((p.name.clone(), "Required: fill this in.".to_string()));
            }
        }
        let summary = match fields.len() {
            0 => format!("The run was not asked for: {e}."),
            1 => "The run was not asked for: one field needs a change.".to_string(),
            n => format!("The run was not asked for: {n} fields need a change."),
        };
        FormProblem { summary, fields }
    }

    fn about(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, w)| w.as_str())
    }
}

/// What is wrong with `value` for `p`, in words a person can act on.
fn wrong_value(p: &Param, value: &str) -> String {
    match &p.kind {
        ParamKind::File { .. } => format!("This file cannot be used ({value})."),
        ParamKind::String { max_len, .. } => {
            let len = value.chars().count();
            if value.contains('\0') {
                "This may not contain a NUL character.".to_string()
            } else if let Some(max) = max_len.filter(|max| len > *max) {
                format!("Too long: at most {max} characters, this has {len}.")
            } else if p.description.is_empty() {
                "This is not in the form this field takes; the hint below shows it.".to_string()
            } else {
                format!(
                    "This is not in the form this field takes: {}.",
                    p.description.trim_end_matches('.')
                )
            }
        }
        ParamKind::Int { min, max } => {
            let range = match (min, max) {
                (Some(a), Some(b)) => format!(" from {a} to {b}"),
                (Some(a), None) => format!(" of at least {a}"),
                (None, Some(b)) => format!(" of at most {b}"),
                (None, None) => String::new(),
            };
            format!("Enter a whole number{range}.")
        }
        ParamKind::Float { min, max } => {
            let range = match (min, max) {
                (Some(a), Some(b)) => format!(" from {a} to {b}"),
                (Some(a), None) => format!(" of at least {a}"),
                (None, Some(b)) => format!(" of at most {b}"),
                (None, None) => String::new(),
            };
            format!("Enter a number{range}, such as 0.5.")
        }
        ParamKind::Bool => "Choose yes or no.".to_string(),
        ParamKind::Enum { choices } => format!("Choose one of: {}.", choices.join(", ")),
        ParamKind::Date => "Enter a date, written year-month-day (2026-03-31).".to_string(),
    }
}

/// The field's label: the parameter's description, else its name in words.
fn label(p: &Param) -> String {
    if !p.description.is_empty() {
        return p.description.clone();
    }
    let words = p.name.replace(['_', '-'], " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => words,
    }
}

/// What the field accepts: the parameter's name, type and constraints (the
/// pattern among them), and its default.
fn hint(p: &Param) -> Markup {
    html! {
        "Parameter " code { (p.name) } ": "
        @match &p.kind {
            ParamKind::String { pattern, max_len } => {
                "text"
                @if let Some(re) = pattern { ", in the form " code class="pattern" { (shown_pattern(re)) } }
                @if let Some(max) = max_len { ", at most " (max) " characters" }
            },
            ParamKind::Int { min, max } => {
                "a whole number"
                @match (min, max) {
                    (Some(a), Some(b)) => { " from " (a) " to " (b) },
                    (Some(a), None) => { ", at least " (a) },
                    (None, Some(b)) => { ", at most " (b) },
                    (None, None) => {},
                }
            },
            ParamKind::Float { min, max } => {
                "a number"
                @match (min, max) {
                    (Some(a), Some(b)) => { " from " (a) " to " (b) },
                    (Some(a), None) => { ", at least " (a) },
                    (None, Some(b)) => { ", at most " (b) },
                    (None, None) => {},
                }
            },
            ParamKind::Bool => "yes or no",
            ParamKind::Enum { choices } => { "one of " (choices.join(", ")) },
            ParamKind::Date => "a date",
            ParamKind::File { max_size, extensions } => {
                "a file"
                @if !extensions.is_empty() { " (" (extensions.iter().map(|e| format!(".{e}")).collect::<Vec<_>>().join(", ")) ")" }
                ", at most " (bytesize::ByteSize::b(*max_size).display().iec().to_string())
            },
        }
        @match (&p.default, p.required) {
            (Some(d), _) => { "; default " code { (d.to_arg()) } },
            (None, true) => "; required",
            (None, false) => "; optional",
        }
        "."
    }
}

/// The pattern as the manifest wrote it, without the anchoring the manifest
/// loader adds.
fn shown_pattern(re: &regex::Regex) -> &str {
    let s = re.as_str();
    s.strip_prefix("^(?:")
        .and_then(|s| s.strip_suffix(")$"))
        .unwrap_or(s)
}

/// The form fields of break-glass: names no parameter can have (`:`).
const BREAK_GLASS: &str = "execgov:break-glass";
const BREAK_GLASS_REASON: &str = "execgov:break-glass-reason";

/// One field per parameter, typed as the manifest says; the break-glass
/// checkbox and reason when `glass` (the viewer may use it here).
pub(super) fn run_form(
    viewer: &Viewer,
    m: &Manifest,
    problem: Option<&FormProblem>,
    entered: &[(String, String)],
    glass: bool,
) -> Markup {
    let value = |p: &Param| {
        entered
            .iter()
            .find(|(k, _)| *k == p.name)
            .map(|(_, v)| v.clone())
            .or_else(|| p.default.as_ref().map(|d| d.to_arg()))
            .unwrap_or_default()
    };
    html! {
        @if let Some(problem) = problem { p class="error" role="alert" id="form-error" { (problem.summary) } }
        form class="stack" method="post" action=(format!("/scripts/{}/run", urlencode(m.name.as_str())))
            enctype=[has_files(m).then_some("multipart/form-data")] {
            input type="hidden" name="csrf" value=(viewer.csrf());
            @for p in &m.params {
                @let v = value(p);
                @let id = format!("param-{}", p.name);
                @let hint_id = format!("hint-{}", p.name);
                @let error = problem.and_then(|pr| pr.about(&p.name));
                @let error_id = format!("error-{}", p.name);
                @let described = if error.is_some() { format!("{error_id} {hint_id}") } else { hint_id.clone() };
                @let required = p.required && p.default.is_none();
                div class=(if error.is_some() { "field invalid" } else { "field" }) {
                    label for=(id) { (label(p)) @if required { span class="muted" { " (required)" } } }
                    @match &p.kind {
                        ParamKind::Enum { choices } => select id=(id) name=(p.name) aria-describedby=(described) aria-invalid=[error.map(|_| "true")] {
                            @if !required { option value="" { "(default)" } }
                            @for c in choices { option value=(c) selected[*c == v] { (c) } }
                        },
                        ParamKind::Bool => select id=(id) name=(p.name) aria-describedby=(described) aria-invalid=[error.map(|_| "true")] {
                            option value="" { "(default)" }
                            option value="true" selected[v == "true"] { "yes" }
                            option value="false" selected[v == "false"] { "no" }
                        },
                        ParamKind::Int { min, max } => input type="number" id=(id) name=(p.name) value=(v)
                            min=[min.map(|x| x.to_string())] max=[max.map(|x| x.to_string())]
                            required[required] aria-describedby=(described) aria-invalid=[error.map(|_| "true")];,
                        ParamKind::Float { min, max } => input type="number" step="any" id=(id) name=(p.name) value=(v)
                            min=[min.map(|x| x.to_string())] max=[max.map(|x| x.to_string())]
                            required[required] aria-describedby=(described) aria-invalid=[error.map(|_| "true")];,
                        ParamKind::Date => input type="date" id=(id) name=(p.name) value=(v)
                            required[required] aria-describedby=(described) aria-invalid=[error.map(|_| "true")];,
                        ParamKind::File { extensions, .. } => input type="file" id=(id) name=(p.name)
                            accept=[(!extensions.is_empty()).then(|| extensions.iter().map(|e| format!(".{e}")).collect::<Vec<_>>().join(","))]
                            required[required] aria-describedby=(described) aria-invalid=[error.map(|_| "true")];,
                        ParamKind::String { max_len, .. } => input type="text" id=(id) name=(p.name) value=(v)
                            maxlength=[max_len.map(|x| x.to_string())] required[required]
                            aria-describedby=(described) aria-invalid=[error.map(|_| "true")];,
                    }
                    @if let Some(e) = error { p class="field-error" id=(error_id) { (e) } }
                    p class="hint" id=(hint_id) { (hint(p)) }
                }
            }
            @if m.risk.needs_approval() { p class="note" { "This script needs approval before it runs." } }
            @if glass {
                fieldset class="field break-glass" {
                    legend { "Break glass" }
                    p class="hint" id="break-glass-hint" { "Only for an emergency: the run starts without waiting for approval, its approvers are told at once, and it stays marked until one of them reviews it." }
                    div { input type="checkbox" id="break-glass" name=(BREAK_GLASS) value="on" aria-describedby="break-glass-hint"; " " label for="break-glass" { "Start now, without approval" } }
                    div { label for="break-glass-reason" { "Reason (required to break glass)" } input type="text" id="break-glass-reason" name=(BREAK_GLASS_REASON) maxlength="500" aria-describedby="break-glass-hint"; }
                }
            }
            div { button id="start-run" type="submit" { "Ask for a run" } }
        }
    }
}

fn has_files(m: &Manifest) -> bool {
    m.params
        .iter()
        .any(|p| matches!(p.kind, ParamKind::File { .. }))
}

/// The form's fields, and the files of a multipart form (each file field also
/// as `name=<file name>`, which binds that file to that parameter).
async fn form_fields(
    req: axum::extract::Request,
) -> Result<(Vec<(String, String)>, Vec<Attachment>), WebError> {
    let multipart = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if !multipart {
        let Form(fields) = Form::<Vec<(String, String)>>::from_request(req, &())
            .await
            .map_err(|e| WebError::BadRequest(format!("the form could not be read: {e}")))?;
        return Ok((fields, Vec::new()));
    }
    let bad = |e: axum::extract::multipart::MultipartError| {
        WebError::BadRequest(format!("the form could not be read: {}", e.body_text()))
    };
    let mut form = Multipart::from_request(req, &())
        .await
        .map_err(|e| WebError::BadRequest(format!("the form could not be read: {e}")))?;
    let (mut fields, mut files) = (Vec::new(), Vec::new());
    while let Some(field) = form.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or_default().to_string();
        match field.file_name().map(str::to_string) {
            // A file field left empty sends an empty part with an empty name.
            Some(file) if !file.is_empty() => {
                let data = field.bytes().await.map_err(bad)?.to_vec();
                fields.push((name, file.clone()));
                files.push(Attachment { name: file, data });
            }
            Some(_) => {}
            None => fields.push((name, field.text().await.map_err(bad)?)),
        }
    }
    Ok((fields, files))
}

/// `POST /scripts/{name}/run`: the form's values (and files) go to the
/// engine's entry point for requests; bad arguments show the form again, marked.
pub(super) async fn start_run(
    State(state): State<WebState>,
    Path(name): Path<String>,
    viewer: Viewer,
    req: axum::extract::Request,
) -> Result<Response, WebError> {
    let (fields, files) = form_fields(req).await?;
    let csrf = fields
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str());
    viewer.check_csrf(csrf)?;
    let engine = state.engine();
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let glass = field(BREAK_GLASS)
        .is_some()
        .then(|| field(BREAK_GLASS_REASON).unwrap_or_default());
    let raw: Vec<(String, String)> = fields
        .into_iter()
        .filter(|(k, v)| {
            k != "csrf" && k != BREAK_GLASS && k != BREAK_GLASS_REASON && !v.trim().is_empty()
        })
        .map(|(k, v)| (k, v.trim().to_string()))
        .collect();
    let answer = engine
        .request_run_checked(
            &viewer.actor(),
            &view::web_place(),
            &name,
            &raw,
            &files,
            glass.as_deref(),
        )
        .await?;
    let reply = answer.reply;
    let Some(run) = &reply.run else {
        // Refused before a run was recorded: an unknown script or bad arguments.
        let m = engine
            .manifest(&name)
            .ok_or_else(|| WebError::NotFound(reply.text.clone()))?;
        let problem = match &answer.arg_error {
            Some(e) => FormProblem::from_refusal(&m, &raw, e),
            None => FormProblem {
                summary: reply.text.clone(),
                fields: Vec::new(),
            },
        };
        let page = render_script(engine, &viewer, &m, Some(&problem), &raw).await?;
        return Ok((StatusCode::BAD_REQUEST, page).into_response());
    };
    Ok(redirect_with_notice(
        &format!("/runs/{}", run.id),
        &reply.text,
        state.secure_cookies(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(kind: ParamKind, description: &str) -> Param {
        Param {
            name: "month".into(),
            kind,
            required: true,
            default: None,
            description: description.into(),
        }
    }

    #[test]
    fn errors_are_in_words_not_regex() {
        let re = regex::Regex::new(r"^(?:\d{4}-(0[1-9]|1[0-2]))$").unwrap();
        let p = param(
            ParamKind::String {
                pattern: Some(re),
                max_len: Some(10),
            },
            "The month to export, as YYYY-MM",
        );
        let words = wrong_value(&p, "2026-13");
        assert_eq!(
            words,
            "This is not in the form this field takes: The month to export, as YYYY-MM."
        );
        assert!(!words.contains('\\'), "no regex in the words: {words}");
        assert_eq!(
            wrong_value(&p, "2026-01-01-01"),
            "Too long: at most 10 characters, this has 13."
        );
        let n = param(
            ParamKind::Int {
                min: Some(1),
                max: Some(365),
            },
            "",
        );
        assert_eq!(wrong_value(&n, "x"), "Enter a whole number from 1 to 365.");
        assert_eq!(label(&n), "Month", "no description: the name in words");
        assert_eq!(label(&p), "The month to export, as YYYY-MM");
        let shown = hint(&p).into_string();
        assert!(
            shown.contains(r#"<code class="pattern">\d{4}-(0[1-9]|1[0-2])</code>"#),
            "the hint shows the pattern as written: {shown}"
        );
    }

    #[test]
    fn a_float_field_takes_any_decimal_within_its_range() {
        let f = param(
            ParamKind::Float {
                min: Some(0.0),
                max: Some(1.5),
            },
            "",
        );
        assert_eq!(
            wrong_value(&f, "x"),
            "Enter a number from 0 to 1.5, such as 0.5."
        );
        assert_eq!(
            hint(&f).into_string(),
            "Parameter <code>month</code>: a number from 0 to 1.5; required."
        );
    }
}
