//! The run form speaks in words: each field's label is its parameter's
//! description (else its name), what it accepts (the pattern included) is a hint
//! tied to the field by `aria-describedby`, and a refused value is marked
//! `aria-invalid` with what is wrong said in words, not in regex.

use super::*;

/// `export` takes a month with a pattern and a described integer.
fn install_export(app: &WebApp) {
    let m = app.env.path().join("manifests");
    std::fs::write(
        m.join("export.toml"),
        r#"name = "export"
description = "Export a month"
command = ["true"]
[[param]]
name = "month"
type = "string"
pattern = '^\d{4}-(0[1-9]|1[0-2])$'
required = true
description = "The month to export, as YYYY-MM"
[[param]]
name = "max_rows"
type = "int"
min = 1
max = 1000
default = 100
[access]
run = ["person:alice"]
"#,
    )
    .unwrap();
    let (catalog, problems) = execgov::manifest::load_catalog(&m, app.engine.config());
    assert!(problems.is_empty(), "{problems:?}");
    app.engine.replace_catalog(catalog);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_form_labels_hints_and_errors_are_in_words() {
    let app = WebApp::start(Backend::Sqlite, "").await;
    install_export(&app);
    let mut alice = app.sign_in("alice").await;

    let page = alice.get("/scripts/export").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let body = &page.body;
    let label = body
        .split("<label for=\"param-month\">")
        .nth(1)
        .and_then(|rest| rest.split("</label>").next())
        .unwrap_or_else(|| panic!("the month field has a label: {body}"));
    assert!(
        label.starts_with("The month to export, as YYYY-MM") && !label.contains('\\'),
        "the label is the description, with no regex in it: {label}"
    );
    assert!(
        body.contains("<label for=\"param-max_rows\">Max rows</label>"),
        "no description: the name in words: {body}"
    );
    assert!(
        body.contains("id=\"param-month\" name=\"month\"")
            && body.contains("aria-describedby=\"hint-month\""),
        "the field points at its hint: {body}"
    );
    let hint = body
        .split("id=\"hint-month\">")
        .nth(1)
        .and_then(|rest| rest.split("</p>").next())
        .unwrap_or_else(|| panic!("the hint: {body}"));
    assert!(
        hint.contains(r"\d{4}-(0[1-9]|1[0-2])"),
        "the pattern is the hint: {hint}"
    );
    assert!(
        !body.contains("aria-invalid"),
        "nothing is marked before a refusal"
    );

    let csrf = alice.csrf().await;
    let r = alice
        .post_form(
            "/scripts/export/run",
            &[("csrf", &csrf), ("month", "2026-13"), ("max_rows", "5")],
        )
        .await;
    assert_eq!(r.status, 400, "the form is shown again: {}", r.body);
    let body = &r.body;
    assert!(
        body.contains("aria-describedby=\"error-month hint-month\" aria-invalid=\"true\""),
        "the month field is marked and points at its error: {body}"
    );
    let error = body
        .split("id=\"error-month\">")
        .nth(1)
        .and_then(|rest| rest.split("</p>").next())
        .unwrap_or_else(|| panic!("the field's error: {body}"));
    assert_eq!(
        error,
        "This is not in the form this field takes: The month to export, as YYYY-MM."
    );
    assert!(
        body.contains("role=\"alert\"") && body.contains("one field needs a change"),
        "{body}"
    );
    assert!(
        body.contains("value=\"2026-13\"") && body.contains("value=\"5\""),
        "what was typed is kept"
    );
    let max_rows = body
        .split("id=\"param-max_rows\"")
        .nth(1)
        .and_then(|rest| rest.split('>').next())
        .unwrap();
    assert!(
        !max_rows.contains("aria-invalid"),
        "only the wrong field is marked: {max_rows}"
    );

    let r = alice
        .post_form(
            "/scripts/export/run",
            &[("csrf", &csrf), ("month", "2026-01"), ("max_rows", "5000")],
        )
        .await;
    assert!(
        r.body.contains("Enter a whole number from 1 to 1000."),
        "{}",
        r.body
    );
}
