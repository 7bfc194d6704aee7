//! Protects `execgov init`: a manifest written from a script's argparse parser,
//! for scripts of different shapes and for public CLIs installed from PyPI (the
//! venv of tests/python_init/venv.sh), passes `execgov check` as written, names
//! what it could not map, never runs the script's main work, and a run with typed
//! arguments reaches the script as argparse expects them.

mod results;

use std::path::{Path, PathBuf};
use std::process::Output;

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The venv with the pinned public CLIs (`tests/python_init/venv.sh install`).
pub(crate) fn venv() -> PathBuf {
    let dir = std::env::var_os("EXECGOV_PYINIT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/execgov-pyinit")
        })
        .join("venv");
    assert!(
        dir.join("bin/csvstat").is_file(),
        "the python_init venv is missing: run tests/python_init/venv.sh install"
    );
    dir
}

/// The venv's interpreter: a real binary, so runs do not pay for a pyenv shim.
pub(crate) fn python() -> String {
    venv().join("bin/python").display().to_string()
}

/// A config folder with `manifests/scripts/` holding the fixture scripts.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new() -> Project {
        let dir = tempfile::tempdir().expect("tempdir");
        let scripts = dir.path().join("manifests/scripts");
        std::fs::create_dir_all(&scripts).expect("mkdir");
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/python_init");
        for entry in std::fs::read_dir(fixtures).expect("fixtures") {
            let entry = entry.expect("entry");
            std::fs::copy(entry.path(), scripts.join(entry.file_name())).expect("copy");
        }
        std::fs::write(
            dir.path().join("execgov.toml"),
            "manifests = \"manifests\"\ndata_dir = \"data\"\n\
             [database]\nurl = \"sqlite://data/execgov.db\"\n\
             [cli]\nimpersonation = true\n\
             [people.carol]\nunix = \"carol-test\"\n",
        )
        .expect("config");
        Project { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("execgov.toml")
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `execgov --config … ARGS` in the project's folder.
    fn execgov(&self, args: &[&str]) -> Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_execgov"))
            .arg("--config")
            .arg(self.config())
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("EXECGOV_DATABASE_URL")
            .env_remove("EXECGOV_CONFIG")
            .env("EXECGOV_LOG", "warn")
            .output()
            .expect("execgov runs")
    }

    /// `execgov init ARGS`, which must succeed; the manifest written.
    fn init(&self, args: &[&str], name: &str) -> (String, String) {
        let o = self.execgov(&[&["init"], args].concat());
        assert!(o.status.success(), "init {args:?}: {}", text(&o));
        let manifest = std::fs::read_to_string(self.path(&format!("manifests/{name}.toml")))
            .expect("the manifest was written");
        (manifest, text(&o))
    }

    /// `execgov check` of the manifests folder, which must pass.
    fn check(&self) {
        let o = self.execgov(&["check"]);
        assert!(o.status.success(), "check passes as written: {}", text(&o));
    }

    /// Runs `script` with `args` as carol and waits; then `show` of the run.
    fn run(&self, script: &str, args: &[&str]) -> String {
        let o = self.execgov(&[&["run", script], args, &["--wait", "--as", "carol"]].concat());
        let out = text(&o);
        assert!(o.status.success(), "{script} {args:?} succeeds: {out}");
        let id = run_id_in(&out);
        let o = self.execgov(&["show", &id.to_string()]);
        assert!(o.status.success(), "show {id}: {}", text(&o));
        text(&o)
    }
}

/// The id in `run 7 …`.
fn run_id_in(out: &str) -> u32 {
    out.split("run ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a run id in: {out}"))
}

/// The `ARGS {...}` line the fixture scripts print, as JSON.
fn printed_args(show: &str) -> serde_json::Value {
    let line = show
        .lines()
        .find_map(|l| l.trim().strip_prefix("ARGS "))
        .unwrap_or_else(|| panic!("the script printed its args: {show}"));
    serde_json::from_str(line).expect("JSON")
}

#[test]
fn options_of_every_type_become_typed_params_and_reach_the_script() {
    let p = Project::new();
    let py = python();
    let (m, _) = p.init(
        &[
            "manifests/scripts/report.py",
            "--python",
            &py,
            "--run",
            "person:carol",
        ],
        "report",
    );
    for want in [
        "description = \"Monthly report of sales by region.\"",
        "\"scripts/report.py\"",
        "\"--month={month}\"",
        "\"{dry_run?--dry-run}\"",
        "\"{no_color?--no-color}\"",
        "type = \"float\"\ndefault = 0.5",
        "type = \"int\"\ndefault = 30\ndescription = \"look back 30 days\"",
        "type = \"enum\"\nchoices = [\"csv\", \"json\"]\ndefault = \"csv\"",
        "run = [\"person:carol\"]",
    ] {
        assert!(m.contains(want), "manifest has `{want}`:\n{m}");
    }
    assert!(
        m.contains("name = \"month\"\ntype = \"string\"\ndescription"),
        "a required option has no default and no `required = false`:\n{m}"
    );
    p.check();

    let show = p.run(
        "report",
        &[
            "month=2026-10",
            "ratio=0.25",
            "days=7",
            "dry_run=true",
            "format=json",
            "no_color=true",
        ],
    );
    assert_eq!(
        printed_args(&show),
        serde_json::json!({"month": "2026-10", "ratio": 0.25, "days": 7, "dry_run": true,
            "format": "json", "color": false}),
        "typed arguments arrive as argparse parses them"
    );
    let show = p.run("report", &["month=2026-11"]);
    assert_eq!(
        printed_args(&show),
        serde_json::json!({"month": "2026-11", "ratio": 0.5, "days": 30, "dry_run": false,
            "format": "csv", "color": true}),
        "defaults and switches left out give the script its own defaults"
    );
    let o = p.execgov(&[
        "run",
        "report",
        "month=2026-10",
        "ratio=lots",
        "--as",
        "carol",
    ]);
    assert!(
        !o.status.success() && text(&o).contains("expected a number"),
        "a float parameter refuses text: {}",
        text(&o)
    );
}

#[test]
fn positionals_come_after_a_double_dash_and_keep_their_order() {
    let p = Project::new();
    let py = python();
    let (m, _) = p.init(
        &[
            "manifests/scripts/positional.py",
            "--python",
            &py,
            "--run",
            "anyone",
            "--name",
            "tidy",
        ],
        "tidy",
    );
    assert!(
        m.contains("\"-n{n}\", \"--\", \"{path}\", \"{mode}\"]"),
        "short option glued, positionals after `--`:\n{m}"
    );
    p.check();
    let show = p.run("tidy", &["path=-weird name.txt", "mode=slow", "n=3"]);
    assert_eq!(
        printed_args(&show),
        serde_json::json!({"path": "-weird name.txt", "mode": "slow", "n": 3}),
        "a positional starting with `-` stays a value"
    );
    let show = p.run("tidy", &["path=a.txt"]);
    assert_eq!(
        printed_args(&show),
        serde_json::json!({"path": "a.txt", "mode": "fast", "n": null})
    );
}

#[test]
fn the_main_work_after_parse_known_args_never_runs_at_init() {
    let p = Project::new();
    let py = python();
    let marker = p.path("marker");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_execgov"))
        .args(["--config"])
        .arg(p.config())
        .args([
            "init",
            "manifests/scripts/guarded.py",
            "--python",
            &py,
            "--run",
            "anyone",
        ])
        .env("PYINIT_MARKER", &marker)
        .current_dir(p.dir.path())
        .output()
        .expect("init runs");
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        !marker.exists(),
        "init stopped the script at its argument parsing"
    );
    p.check();
    let show = p.run("guarded", &["times=2"]);
    assert_eq!(
        printed_args(&show),
        serde_json::json!({"target": "out.txt", "times": 2})
    );
}

#[test]
fn what_cannot_be_mapped_is_said_per_option_and_left_as_a_comment() {
    let p = Project::new();
    let py = python();
    let (m, out) = p.init(
        &[
            "manifests/scripts/unmappable.py",
            "--python",
            &py,
            "--run",
            "anyone",
        ],
        "unmappable",
    );
    for (what, why) in [
        ("--tags", "nargs=\"*\""),
        ("--include", "append"),
        ("--mask", "custom"),
        ("-v", "count"),
    ] {
        let line = format!("# not mapped: {what}: ");
        assert!(
            m.lines().any(|l| l.starts_with(&line) && l.contains(why)),
            "a comment for {what} saying {why}:\n{m}"
        );
        assert!(
            out.contains(&format!("not mapped: {what}: ")),
            "and said on the terminal: {out}"
        );
    }
    p.check();
    let show = p.run("unmappable", &["label=x"]);
    assert_eq!(printed_args(&show)["label"], "x");

    let (m, _) = p.init(
        &[
            "manifests/scripts/subcommands.py",
            "--python",
            &py,
            "--run",
            "anyone",
        ],
        "subcommands",
    );
    assert!(
        m.contains("# not mapped: cmd: subcommands (sync, prune)"),
        "subcommands are named:\n{m}"
    );
    p.check();
    let show = p.run("subcommands", &["verbose=true"]);
    assert_eq!(
        printed_args(&show),
        serde_json::json!({"verbose": true, "cmd": null})
    );
}

#[test]
fn json_tool_from_the_standard_library() {
    let p = Project::new();
    let py = python();
    let (m, _) = p.init(
        &["-m", "json.tool", "--python", &py, "--run", "anyone"],
        "json-tool",
    );
    assert!(
        m.contains("\"-m\", \"json.tool\"") && m.contains("{sort_keys?--sort-keys}"),
        "{m}"
    );
    assert!(
        !m.contains("default = 4"),
        "--indent is in a mutually exclusive group, so its default is left to the script:\n{m}"
    );
    p.check();
    let input = p.path("in.json");
    std::fs::write(&input, r#"{"b": 1, "a": [1, 2]}"#).expect("write");
    let show = p.run(
        "json-tool",
        &[
            &format!("infile={}", input.display()),
            "sort_keys=true",
            "indent=1",
        ],
    );
    assert!(
        show.contains("    {\n     \"a\": [\n      1,"),
        "sorted with an indent of 1: {show}"
    );
}

#[test]
fn csvstat_from_csvkit() {
    let p = Project::new();
    let csvstat = venv().join("bin/csvstat");
    let (m, out) = p.init(
        &[csvstat.to_str().expect("utf-8"), "--run", "anyone"],
        "csvstat",
    );
    assert!(
        m.contains(&format!(
            "command = [\"{}\", \"{}\"",
            python(),
            csvstat.display()
        )),
        "the console script's own interpreter, from its #! line:\n{m}"
    );
    assert!(out.contains("not mapped: --null-value"), "{out}");
    p.check();
    let input = p.path("sales.csv");
    std::fs::write(&input, "region,amount\nnorth,10\nsouth,32\n").expect("write");
    let show = p.run(
        "csvstat",
        &[
            &format!("input_path={}", input.display()),
            "csv_output=true",
            "columns=amount",
        ],
    );
    assert!(
        show.contains("column_id,column_name,type") && show.contains("2,amount,Number"),
        "csvstat's CSV statistics of the amount column: {show}"
    );
}
