//! Unit tests for typed parameters and argv: what users type is checked once, and a
//! value never becomes more than one argv element.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;

const MANIFEST: &str = r#"
name = "report-export"
description = "Export a monthly report"
command = ["python3", "scripts/export.py", "--month={month}", "--format", "{format}", "{note}", "{days}", "{dry}", "{tag}"]

[[param]]
name = "month"
type = "date"

[[param]]
name = "format"
type = "enum"
choices = ["csv", "xlsx"]
default = "csv"

[[param]]
name = "note"
type = "string"
required = false

[[param]]
name = "days"
type = "int"
min = 1
max = 365
default = 30

[[param]]
name = "dry"
type = "bool"
default = false

[[param]]
name = "tag"
type = "string"
pattern = "[a-z]+"
max_len = 8
required = false

[access]
run = ["anyone"]
"#;

fn manifest_in(dir: &Path) -> Manifest {
    std::fs::create_dir_all(dir.join("scripts")).expect("mkdir");
    std::fs::write(dir.join("scripts/export.py"), "print('hi')\n").expect("write script");
    let path = dir.join("report-export.toml");
    std::fs::write(&path, MANIFEST).expect("write manifest");
    Manifest::from_toml(MANIFEST, &path, &Config::defaults()).expect("the test manifest is valid")
}

fn raw(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn refused(m: &Manifest, pairs: &[(&str, &str)]) -> String {
    m.validate_args(&raw(pairs))
        .expect_err("should be refused")
        .to_string()
}

#[test]
fn defaults_fill_in_and_types_are_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = manifest_in(dir.path());
    let args = m
        .validate_args(&raw(&[("month", "2026-01-31")]))
        .expect("valid");
    assert_eq!(args["format"], ArgValue::Str("csv".into()), "enum default");
    assert_eq!(args["days"], ArgValue::Int(30), "int default");
    assert_eq!(args["dry"], ArgValue::Bool(false), "bool default");
    assert!(
        !args.contains_key("note"),
        "optional without default stays absent"
    );

    let args = m
        .validate_args(&raw(&[
            ("month", "2026-02-28"),
            ("days", "365"),
            ("dry", "yes"),
        ]))
        .expect("valid");
    assert_eq!(args["days"], ArgValue::Int(365), "max is inclusive");
    assert_eq!(args["dry"], ArgValue::Bool(true), "yes is true");
}

#[test]
fn each_type_refuses_what_does_not_fit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = manifest_in(dir.path());
    let e = refused(&m, &[("month", "2026-13")]);
    assert_eq!(
        e,
        "parameter `month`: expected a date YYYY-MM-DD, got `2026-13`"
    );
    assert!(
        refused(&m, &[("month", "2026-02-30")]).contains("expected a date"),
        "no Feb 30"
    );
    assert!(
        refused(&m, &[("month", "2026-1-05")]).contains("expected a date"),
        "two digits"
    );
    let e = refused(&m, &[("month", "2026-01-01"), ("days", "0")]);
    assert_eq!(e, "parameter `days`: must be at least 1, got 0");
    assert!(refused(&m, &[("month", "2026-01-01"), ("days", "366")]).contains("at most 365"));
    assert!(
        refused(&m, &[("month", "2026-01-01"), ("days", "3x")]).contains("expected an integer")
    );
    assert!(refused(&m, &[("month", "2026-01-01"), ("dry", "maybe")]).contains("true or false"));
    let e = refused(&m, &[("month", "2026-01-01"), ("format", "cvs")]);
    assert!(
        e.contains("expected one of csv, xlsx") && e.contains("did you mean `csv`"),
        "{e}"
    );
    let e = refused(&m, &[("month", "2026-01-01"), ("tag", "ABC")]);
    assert!(
        e.contains("does not match the pattern `[a-z]+`"),
        "pattern is anchored: {e}"
    );
    let e = refused(&m, &[("month", "2026-01-01"), ("tag", "abcdefghi")]);
    assert!(e.contains("longer than 8"), "{e}");
    let e = refused(&m, &[("month", "2026-01-01"), ("tag", "abc\nxyz")]);
    assert!(
        e.contains("pattern"),
        "a newline cannot sneak past an anchored pattern: {e}"
    );
}

#[test]
fn unknown_missing_and_repeated_parameters_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = manifest_in(dir.path());
    let e = refused(&m, &[("mnth", "2026-01-01")]);
    assert_eq!(
        e,
        "unknown parameter `mnth` (parameters: month, format, note, days, dry, tag); did you mean `month`?"
    );
    assert_eq!(refused(&m, &[]), "missing required parameter `month`");
    let e = refused(&m, &[("month", "2026-01-01"), ("month", "2026-02-01")]);
    assert!(e.contains("given more than once"), "{e}");
}

#[test]
fn shell_syntax_is_one_plain_argument() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = manifest_in(dir.path());
    for nasty in [
        "; touch /tmp/pwned",
        "$(id)",
        "`id` && rm -rf / | cat > x",
        "a b  c",
    ] {
        let args = m
            .validate_args(&raw(&[("month", "2026-01-01"), ("note", nasty)]))
            .expect("a string param with no pattern accepts any text");
        assert_eq!(args["note"], ArgValue::Str(nasty.into()));
        let argv = m.argv(&args);
        assert_eq!(
            argv.len(),
            8,
            "one element per template element (tag absent): {argv:?}"
        );
        assert_eq!(argv[5], nasty, "the value is exactly one argv element");
    }
    let e = refused(&m, &[("month", "2026-01-01"), ("note", "a\0b")]);
    assert!(e.contains("NUL"), "NUL bytes cannot reach argv: {e}");
}

#[test]
fn argv_resolves_scripts_and_keeps_the_program_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = manifest_in(dir.path());
    let args = m
        .validate_args(&raw(&[("month", "2026-01-31"), ("tag", "q")]))
        .expect("valid");
    let argv = m.argv(&args);
    assert_eq!(
        argv[0], "python3",
        "bare program names stay for PATH lookup"
    );
    assert_eq!(
        Path::new(&argv[1]),
        m.dir.join("scripts/export.py"),
        "script paths become absolute"
    );
    assert!(
        Path::new(&argv[1]).is_absolute(),
        "runs from any working directory"
    );
    assert_eq!(
        argv[2], "--month=2026-01-31",
        "prefix and value form one element"
    );
    assert_eq!(&argv[3..], ["--format", "csv", "30", "false", "q"]);
}

#[test]
fn typed_values_are_checked_like_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = manifest_in(dir.path());
    let mut values = BTreeMap::new();
    values.insert("month".to_string(), ArgValue::Str("2026-01-01".into()));
    values.insert("days".to_string(), ArgValue::Str("7".into()));
    let args = m
        .validate_typed(&values)
        .expect("a numeric string is an int");
    assert_eq!(args["days"], ArgValue::Int(7));
    values.insert("dry".to_string(), ArgValue::Int(1));
    let e = m
        .validate_typed(&values)
        .expect_err("an int is not a bool")
        .to_string();
    assert!(e.starts_with("parameter `dry`: "), "{e}");
    let json: ArgValue = serde_json::from_str("42").expect("untagged");
    assert_eq!(json, ArgValue::Int(42), "JSON numbers are ints");
}

#[test]
fn digest_notices_an_edited_script() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = manifest_in(dir.path());
    assert_eq!(m.digest.len(), 64, "sha256 hex");
    assert_eq!(
        m.current_digest().expect("readable"),
        m.digest,
        "unchanged on disk"
    );
    std::fs::write(dir.path().join("scripts/export.py"), "print('bye')\n").expect("edit");
    assert_ne!(
        m.current_digest().expect("readable"),
        m.digest,
        "script edit changes it"
    );
}

#[test]
fn usage_mentions_params_and_risk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = manifest_in(dir.path());
    let u = m.usage();
    assert!(u.contains("month (date YYYY-MM-DD, required)"), "{u}");
    assert!(u.contains("format (one of csv, xlsx, default csv)"), "{u}");
    assert!(u.contains("Risk: low"), "{u}");
}

#[test]
fn catalog_suggests_close_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut catalog = Catalog::new();
    catalog.insert(manifest_in(dir.path()));
    assert!(catalog.get("report-export").is_some());
    assert_eq!(
        catalog.closest("reprot-export"),
        vec!["report-export".to_string()]
    );
    assert!(
        catalog.closest("zzz").is_empty(),
        "nothing close, no suggestion"
    );
}

#[test]
fn memory_and_process_limits_are_read_and_checked_at_their_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("limited.toml");
    let ok = "name = \"limited\"\ncommand = [\"true\"]\nmemory = \"512MiB\"\nmax_processes = 256\n";
    let m = Manifest::from_toml(ok, &path, &Config::defaults()).expect("valid limits");
    assert_eq!(m.memory, Some(512 * 1024 * 1024), "512MiB in bytes");
    assert_eq!(m.max_processes, Some(256));
    let none = Manifest::from_toml(
        "name = \"x\"\ncommand = [\"true\"]\n",
        &path,
        &Config::defaults(),
    )
    .expect("valid");
    assert_eq!(
        (none.memory, none.max_processes),
        (None, None),
        "no limit unless asked"
    );

    for (text, line, fragment) in [
        (
            "memory = \"lots\"",
            3,
            "key `memory`: `lots` is not a size such as \"512MiB\"",
        ),
        (
            "memory = \"100KiB\"",
            3,
            "`100KiB` is less than the 1MiB a script needs",
        ),
        (
            "memory = 512",
            3,
            "key `memory`: expected a string, got integer",
        ),
        (
            "max_processes = 0",
            3,
            "key `max_processes`: must be at least 1, got 0",
        ),
        (
            "max_processes = \"many\"",
            3,
            "key `max_processes`: expected an integer",
        ),
    ] {
        let manifest = format!("name = \"x\"\ncommand = [\"true\"]\n{text}\n");
        let problems = Manifest::from_toml(&manifest, &path, &Config::defaults())
            .expect_err("a bad limit is refused");
        assert!(
            problems
                .iter()
                .any(|d| d.line == line && d.to_string().contains(fragment)),
            "`{text}`: want line {line} `{fragment}`, got {problems:#?}"
        );
    }
}

#[test]
fn float_parameters_keep_the_typed_text_and_check_their_range() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ratio.toml");
    let text = "name = \"ratio\"\ncommand = [\"echo\", \"--ratio\", \"{ratio}\", \"{quiet?--quiet}\"]\n\
        [[param]]\nname = \"ratio\"\ntype = \"float\"\nmin = 0\nmax = 1.5\ndefault = 0.25\n\
        [[param]]\nname = \"quiet\"\ntype = \"bool\"\ndefault = false\n";
    let m = Manifest::from_toml(text, &path, &Config::defaults()).expect("valid float param");
    let args = m.validate_args(&[]).expect("defaults");
    assert_eq!(
        m.argv(&args),
        ["echo", "--ratio", "0.25"],
        "the default as written; a false switch is left out"
    );
    let args = m
        .validate_args(&raw(&[("ratio", "1e-3"), ("quiet", "true")]))
        .expect("a number in range");
    assert_eq!(m.argv(&args), ["echo", "--ratio", "1e-3", "--quiet"]);
    assert!(refused(&m, &[("ratio", "abc")]).contains("expected a number"));
    assert!(refused(&m, &[("ratio", "2")]).contains("at most 1.5"));
    assert!(refused(&m, &[("ratio", "NaN")]).contains("expected a number"));
    let typed = m
        .validate_typed(&[("ratio".to_string(), ArgValue::Int(1))].into())
        .expect("an integer is a number");
    assert_eq!(typed["ratio"], ArgValue::Str("1".into()));

    for (bad, fragment) in [
        (
            text.replace("default = 0.25", "default = 2.5"),
            "default fails its own type: must be at most 1.5",
        ),
        (
            text.replace("{quiet?--quiet}", "{ratio?--ratio}"),
            "`{ratio?--ratio}` is a switch: `ratio` must be a bool parameter",
        ),
        (
            text.replace("max = 1.5", "max = \"big\""),
            "key `param.max`: expected a finite number",
        ),
    ] {
        let problems = Manifest::from_toml(&bad, &path, &Config::defaults()).expect_err("refused");
        assert!(
            problems.iter().any(|d| d.to_string().contains(fragment)),
            "want `{fragment}`, got {problems:#?}"
        );
    }
}

/// `[[rule]]` matching: first match wins, numbers compare as numbers, several
/// conditions must all hold, and an absent optional argument matches nothing.
#[test]
fn the_first_rule_whose_conditions_all_hold_governs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = r#"
name = "tune"
command = ["true"]
[[param]]
name = "ratio"
type = "float"
default = 0.5
[[param]]
name = "days"
type = "int"
default = 7
[[param]]
name = "note"
type = "string"
required = false
[access]
run = ["anyone"]
[[rule]]
name = "noted"
when = { note = { in = ["a", "b"] } }
run = []
[[rule]]
name = "half-week"
when = { ratio = 0.50, days = { gte = 7, lt = 8 } }
[[rule]]
name = "big"
when = { ratio = { gt = 1 } }
"#;
    let path = dir.path().join("tune.toml");
    let m = Manifest::from_toml(text, &path, &Config::defaults()).expect("valid rules");
    let rule = |pairs: &[(&str, &str)]| {
        let args = m.validate_args(&raw(pairs)).expect("valid args");
        m.governed(&args).1
    };
    assert_eq!(
        rule(&[]).as_deref(),
        Some("half-week"),
        "defaults count; 0.5 == 0.50"
    );
    assert_eq!(rule(&[("days", "8")]), None, "lt 8 fails");
    assert_eq!(rule(&[("ratio", "1.5")]).as_deref(), Some("big"));
    assert_eq!(rule(&[("ratio", "1")]), None, "gt is strict");
    let (noted, name) = m.governed(&m.validate_args(&raw(&[("note", "b")])).unwrap());
    assert_eq!(name.as_deref(), Some("noted"), "first match wins");
    assert!(
        noted.access.run.is_empty(),
        "the rule's `run` replaces the top level's"
    );
    assert_eq!(rule(&[("note", "c"), ("days", "9")]), None);
}
