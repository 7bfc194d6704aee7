//! Protects `execgov check`: every broken manifest is reported with its file, the
//! exact line and a clear message, is kept out of the catalog, and the shipped
//! manifests load cleanly.

use std::path::{Path, PathBuf};

use execgov::config::Config;
use execgov::manifest::{Catalog, Diagnostic, load_catalog};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn people_config() -> Config {
    let path = fixtures().join("config/people.toml");
    let text = std::fs::read_to_string(&path).expect("fixture config readable");
    Config::parse(&text, &path).expect("fixture config is valid")
}

/// Writes `files` into a fresh folder and loads it as a catalog.
fn load(files: &[(&str, &str)]) -> (Catalog, Vec<Diagnostic>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write manifest");
    }
    let (catalog, diagnostics) = load_catalog(dir.path(), &people_config());
    (catalog, diagnostics, dir)
}

/// A valid manifest that each broken case below differs from in one way.
const GOOD: &str = r#"name = "ok"
command = ["echo", "{days}"]

[[param]]
name = "days"
type = "int"
max = 365
default = 7

[access]
run = ["group:sre"]
"#;

/// (what is wrong, manifest text, line it is on, fragment of the message)
const BROKEN: &[(&str, &str, usize, &str)] = &[
    (
        "invalid TOML",
        "name = \"x\"\ncommand = [\"echo\"\n",
        2,
        "invalid TOML",
    ),
    (
        "missing name",
        "command = [\"echo\"]\n",
        1,
        "key `name`: is required but missing",
    ),
    (
        "missing command",
        "name = \"x\"\n\ndescription = \"no command\"\n",
        1,
        "key `command`: is required but missing",
    ),
    (
        "empty command",
        "name = \"x\"\ncommand = []\n",
        2,
        "must name at least the program",
    ),
    (
        "bad script name",
        "name = \"Disk Cleanup\"\ncommand = [\"echo\"]\n",
        1,
        "not a valid script name",
    ),
    (
        "unknown top-level key",
        "name = \"x\"\ncommand = [\"echo\"]\ntimeot = \"5m\"\n",
        3,
        "unknown key `timeot` (did you mean `timeout`?)",
    ),
    (
        "unknown key in [[param]]",
        "name = \"x\"\ncommand = [\"echo\", \"{n}\"]\n[[param]]\nname = \"n\"\ntype = \"int\"\nmni = 1\n",
        6,
        "unknown key `mni` in [[param]]",
    ),
    (
        "unknown key in [access]",
        "name = \"x\"\ncommand = [\"echo\"]\n[access]\nrun = [\"anyone\"]\nwho = [\"anyone\"]\n",
        5,
        "unknown key `who` in [access]",
    ),
    (
        "unknown key in [approval]",
        "name = \"x\"\ncommand = [\"echo\"]\nrisk = \"high\"\n[approval]\napprovers = [\"group:sre\"]\nquorom = 1\n",
        6,
        "unknown key `quorom` in [approval] (did you mean `quorum`?)",
    ),
    (
        "unknown key in [[schedule]]",
        "name = \"x\"\ncommand = [\"echo\"]\n[[schedule]]\ncron = \"0 6 * * *\"\ntz = \"UTC\"\n",
        5,
        "unknown key `tz` in [[schedule]]",
    ),
    (
        "wrong type for a key",
        "name = \"x\"\ncommand = [\"echo\"]\ntimeout = 600\n",
        3,
        "key `timeout`: expected a string, got integer",
    ),
    (
        "bad duration",
        "name = \"x\"\ncommand = [\"echo\"]\ntimeout = \"10 parsecs\"\n",
        3,
        "`10 parsecs` is not a duration",
    ),
    (
        "risk neither low nor high",
        "name = \"x\"\ncommand = [\"echo\"]\nrisk = \"extreme\"\n",
        3,
        "must be \"low\", \"high\" or \"critical\"",
    ),
    (
        "high risk without approval",
        "name = \"x\"\ncommand = [\"echo\"]\n\nrisk = \"high\"\n",
        4,
        "risk = \"high\" needs an [approval] section",
    ),
    (
        "max_concurrent zero",
        "name = \"x\"\ncommand = [\"echo\"]\nmax_concurrent = 0\n",
        3,
        "key `max_concurrent`: must be at least 1",
    ),
    (
        "bad parameter type",
        "name = \"x\"\ncommand = [\"echo\", \"{n}\"]\n[[param]]\nname = \"n\"\ntype = \"integer\"\n",
        5,
        "unknown parameter type `integer`",
    ),
    (
        "placeholder without a param",
        "name = \"x\"\ncommand = [\n  \"echo\",\n  \"{dayz}\",\n]\n",
        4,
        "placeholder `{dayz}` names no [[param]]",
    ),
    (
        "two placeholders in one element",
        "name = \"x\"\ncommand = [\"echo\", \"{a}{b}\"]\n",
        2,
        "more than one placeholder",
    ),
    (
        "placeholder as the program",
        "name = \"x\"\ncommand = [\"{prog}\"]\n[[param]]\nname = \"prog\"\n",
        2,
        "must be fixed text",
    ),
    (
        "default that fails its own type",
        "name = \"x\"\ncommand = [\"echo\", \"{n}\"]\n[[param]]\nname = \"n\"\ntype = \"int\"\ndefault = \"ten\"\n",
        6,
        "default fails its own type: expected an integer, got `ten`",
    ),
    (
        "default outside the range",
        "name = \"x\"\ncommand = [\"echo\", \"{n}\"]\n[[param]]\nname = \"n\"\ntype = \"int\"\nmax = 5\ndefault = 9\n",
        7,
        "default fails its own type: must be at most 5",
    ),
    (
        "min greater than max",
        "name = \"x\"\ncommand = [\"echo\", \"{n}\"]\n[[param]]\nname = \"n\"\ntype = \"int\"\nmin = 10\nmax = 5\n",
        7,
        "min 10 is greater than max 5",
    ),
    (
        "bad regex pattern",
        "name = \"x\"\ncommand = [\"echo\", \"{s}\"]\n[[param]]\nname = \"s\"\npattern = \"[a-\"\n",
        5,
        "pattern `[a-` is not a valid regex",
    ),
    (
        "enum without choices",
        "name = \"x\"\ncommand = [\"echo\", \"{e}\"]\n\n[[param]]\nname = \"e\"\ntype = \"enum\"\n",
        4,
        "an enum parameter needs `choices`",
    ),
    (
        "constraint for another type",
        "name = \"x\"\ncommand = [\"echo\", \"{s}\"]\n[[param]]\nname = \"s\"\nmin = 1\n",
        5,
        "`min` applies only to types \"int\" and \"float\"",
    ),
    (
        "unknown group in access",
        "name = \"x\"\ncommand = [\"echo\"]\n[access]\nrun = [\"group:sre-lead\"]\n",
        4,
        "unknown group `sre-lead` (not in the config's [groups]); did you mean `sre-leads`?",
    ),
    (
        "unknown person in access",
        "name = \"x\"\ncommand = [\"echo\"]\n[access]\nrun = [\"person:mallory\"]\n",
        4,
        "unknown person `mallory`",
    ),
    (
        "malformed principal",
        "name = \"x\"\ncommand = [\"echo\"]\n[access]\nrun = [\"sre\"]\n",
        4,
        "`sre` is not a principal",
    ),
    (
        "unknown channel in access",
        "name = \"x\"\ncommand = [\"echo\"]\n[access]\nchannels = [\"on-call\"]\n",
        4,
        "unknown channel `on-call`",
    ),
    (
        "unknown approval channel",
        "name = \"x\"\ncommand = [\"echo\"]\nrisk = \"high\"\n[approval]\napprovers = [\"group:sre\"]\nchannel = \"aprovals\"\n",
        6,
        "unknown channel `aprovals` (not in the config's [channels]); did you mean `approvals`?",
    ),
    (
        "unknown group to notify",
        "name = \"x\"\ncommand = [\"echo\"]\n[[schedule]]\ncron = \"0 6 * * *\"\nnotify_on_failure = [\"group:nobody\"]\n",
        5,
        "unknown group `nobody`",
    ),
    (
        "unknown channel to post to",
        "name = \"x\"\ncommand = [\"echo\"]\n[[schedule]]\ncron = \"0 6 * * *\"\npost_to = [\"report\"]\n",
        5,
        "unknown channel `report`",
    ),
    (
        "anyone as an approver: nobody could approve",
        "name = \"x\"\ncommand = [\"echo\"]\nrisk = \"high\"\n[approval]\napprovers = [\"group:sre\",\n  \"anyone\"]\n",
        6,
        "`anyone` cannot approve: approval by anyone is no approval",
    ),
    (
        "a script missing beside the manifest",
        "name = \"x\"\ncommand = [\n  \"sh\",\n  \"scripts/cleanup.sh\",\n]\n",
        4,
        "`scripts/cleanup.sh` does not exist: relative paths resolve against the manifest's folder, so it was looked for at ",
    ),
    (
        "a program path missing beside the manifest",
        "name = \"x\"\ncommand = [\"bin/cleanup\"]\n",
        2,
        "`bin/cleanup` does not exist: relative paths resolve against the manifest's folder",
    ),
    (
        "quorum zero",
        "name = \"x\"\ncommand = [\"echo\"]\nrisk = \"high\"\n[approval]\napprovers = [\"group:sre\"]\nquorum = 0\n",
        6,
        "must be at least 1, got 0",
    ),
    (
        "quorum more than the approvers name",
        "name = \"x\"\ncommand = [\"echo\"]\nrisk = \"high\"\n[approval]\napprovers = [\"group:sre\", \"person:alice\"]\nquorum = 3\n",
        6,
        "quorum 3 is more than the 2 people the approvers name",
    ),
    (
        "cron with four fields",
        "name = \"x\"\ncommand = [\"echo\"]\n[[schedule]]\ncron = \"0 6 * *\"\n",
        4,
        "bad cron expression `0 6 * *`: 4 fields; crontab has 5 fields, `minute hour day-of-month month day-of-week`",
    ),
    (
        "cron with an impossible hour",
        "name = \"x\"\ncommand = [\"echo\"]\n[[schedule]]\ncron = \"0 0 66 * * *\"\n",
        4,
        "bad cron expression `0 0 66 * * *`: hour field `66`: 66 is more than 23; hour accepts 0-23",
    ),
    (
        "cron with weekday 8",
        "name = \"x\"\ncommand = [\"echo\"]\n[[schedule]]\ncron = \"0 9 * * 1-8\"\n",
        4,
        "day-of-week field `1-8`: 8 is more than 7; day-of-week accepts 0-7 (0 and 7 are Sunday) or SUN-SAT",
    ),
    (
        "cron with a weekday name in the month field",
        "name = \"x\"\ncommand = [\"echo\"]\n[[schedule]]\ncron = \"0 9 * MON *\"\n",
        4,
        "month field `MON`: `MON` (a weekday name) is not a month value",
    ),
    (
        "cron that never fires",
        "name = \"x\"\ncommand = [\"echo\"]\n[[schedule]]\ncron = \"0 9 30 2 *\"\n",
        4,
        "it never fires: day-of-month `30` never comes in month `2`",
    ),
    (
        "unknown timezone",
        "name = \"x\"\ncommand = [\"echo\"]\n[[schedule]]\ncron = \"0 6 * * *\"\ntimezone = \"Mars/Olympus\"\n",
        5,
        "unknown timezone `Mars/Olympus`",
    ),
    (
        "schedule args that fail the params",
        "name = \"x\"\ncommand = [\"echo\", \"{days}\"]\n[[param]]\nname = \"days\"\ntype = \"int\"\nmax = 365\n[[schedule]]\ncron = \"0 6 * * *\"\nargs = { days = 400 }\n",
        9,
        "schedule args: parameter `days`: must be at most 365",
    ),
    (
        "schedule args missing a required param",
        "name = \"x\"\ncommand = [\"echo\", \"{days}\"]\n[[param]]\nname = \"days\"\ntype = \"int\"\n[[schedule]]\ncron = \"0 6 * * *\"\nargs = {}\n",
        8,
        "missing required parameter `days`",
    ),
];

#[test]
fn the_good_manifest_loads() {
    let (catalog, diagnostics, _dir) = load(&[("ok.toml", GOOD)]);
    assert!(
        diagnostics.is_empty(),
        "no diagnostics expected: {diagnostics:#?}"
    );
    assert!(
        catalog.get("ok").is_some(),
        "the good manifest is in the catalog"
    );
}

#[test]
fn every_broken_manifest_is_reported_at_its_line() {
    let mut failures = Vec::new();
    for (what, text, line, fragment) in BROKEN {
        let (catalog, diagnostics, _dir) = load(&[("broken.toml", text)]);
        let hit = diagnostics.iter().any(|d| {
            d.line == *line && d.message.contains(fragment) && d.file.ends_with("broken.toml")
        });
        if !hit {
            failures.push(format!(
                "{what}: want line {line} `{fragment}`, got {diagnostics:#?}"
            ));
        }
        if !catalog.is_empty() {
            failures.push(format!(
                "{what}: a broken manifest must stay out of the catalog"
            ));
        }
    }
    assert!(
        BROKEN.len() >= 15,
        "the table covers at least 15 kinds of mistake"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A missing script is reported where it was looked for: beside the manifest,
/// wherever `check` runs from; words that only look like paths are not scripts.
#[test]
fn a_missing_script_is_reported_at_the_path_it_resolves_to() {
    let (_, diagnostics, dir) = load(&[(
        "broken.toml",
        "name = \"x\"\ncommand = [\"python3\", \"scripts/export.py\", \"--out=reports/a.sh\", \"s3/bucket\", \"echo hi > x.sh\"]\n",
    )]);
    let want = dir.path().join("scripts/export.py");
    assert_eq!(diagnostics.len(), 1, "only the script: {diagnostics:#?}");
    assert!(
        diagnostics[0]
            .message
            .ends_with(&format!("looked for at {}", want.display())),
        "the manifest-relative path: {diagnostics:#?}"
    );
    std::fs::create_dir_all(dir.path().join("scripts")).unwrap();
    std::fs::write(&want, "print('ok')\n").unwrap();
    let (catalog, diagnostics) = load_catalog(dir.path(), &people_config());
    assert!(diagnostics.is_empty(), "present now: {diagnostics:#?}");
    assert_eq!(catalog.len(), 1);
}

#[test]
fn diagnostics_display_as_file_line_message() {
    let (_, diagnostics, dir) = load(&[(
        "broken.toml",
        "name = \"x\"\ncommand = [\"echo\"]\ntimeot = \"5m\"\n",
    )]);
    let shown = diagnostics.first().expect("one diagnostic").to_string();
    let want = format!(
        "{}:3: unknown key `timeot`",
        dir.path().join("broken.toml").display()
    );
    assert!(
        shown.starts_with(&want),
        "`{shown}` should start with `{want}`"
    );
}

#[test]
fn duplicate_names_name_both_files_and_load_neither() {
    let (catalog, diagnostics, _dir) = load(&[
        ("a.toml", GOOD),
        ("b.toml", GOOD),
        ("c.toml", "name = \"c\"\ncommand = [\"true\"]\n"),
    ]);
    assert_eq!(
        diagnostics.len(),
        2,
        "one diagnostic per file: {diagnostics:#?}"
    );
    for (d, other) in diagnostics.iter().zip(["b.toml", "a.toml"]) {
        assert_eq!(d.line, 1, "the line of `name`");
        assert!(
            d.message.contains("duplicate name `ok`") && d.message.contains(other),
            "{d}"
        );
    }
    assert!(
        catalog.get("ok").is_none(),
        "an ambiguous name loads neither file"
    );
    assert_eq!(catalog.len(), 1, "the unrelated manifest still loads");
}

#[test]
fn the_fixture_manifest_matches_the_design_example() {
    let (catalog, diagnostics) = load_catalog(&fixtures().join("manifests"), &people_config());
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
    let m = catalog.get("disk-cleanup").expect("loaded");
    let schedule = &m.schedules[0];
    assert_eq!(schedule.name, "default", "a lone schedule is `default`");
    assert_eq!(schedule.timezone, chrono_tz::Europe::Berlin);
    let argv = m.argv(&schedule.args);
    assert!(
        argv[1].ends_with("manifests/scripts/disk_cleanup.py") && Path::new(&argv[1]).is_absolute(),
        "{argv:?}"
    );
    assert_eq!(&argv[2..], ["--days", "30", "--dir", "/var/tmp/exports"]);
    assert_eq!(
        m.current_digest().expect("readable"),
        m.digest,
        "nothing changed on disk"
    );
}

#[test]
fn the_repository_manifests_load_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (config_path, manifests) = (root.join("execgov.toml"), root.join("manifests"));
    if !config_path.is_file() || !manifests.is_dir() {
        println!("note: skipped, execgov.toml or manifests/ is not in the repository yet");
        return;
    }
    let text = std::fs::read_to_string(&config_path).expect("execgov.toml readable");
    let config = Config::parse(&text, &config_path)
        .unwrap_or_else(|e| panic!("execgov.toml is valid:\n{e}"));
    let (catalog, diagnostics) = load_catalog(&manifests, &config);
    let shown: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    assert!(
        shown.is_empty(),
        "shipped manifests must pass `execgov check`:\n{}",
        shown.join("\n")
    );
    assert!(!catalog.is_empty(), "manifests/ ships at least one script");
}
