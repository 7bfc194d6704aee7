//! Python scripts with their own environments, through the whole chain on a
//! real local runner: a `[python]` manifest's first run builds its environment
//! (progress says so) and the next reuses it; PEP 723 dependencies are
//! installed; an unresolvable requirement fails the run with the resolver's
//! words; editing requirements.txt while a run awaits approval ends that
//! request; `check` names the requirements file's bad line. The environment is
//! built with uv when `EXECGOV_UV` (set by tests/run) or `PATH` has it, else
//! with venv + pip.

use crate::both_backends;
use crate::helpers::*;
use execgov::config::Config;
use execgov::engine::{Engine, ReplyKind};
use execgov::manifest::Manifest;
use execgov::types::{RunId, RunState};
use serde_json::Value;
use std::path::Path;

/// A script that needs `tabulate` and imports a module from its own folder.
const REPORT_PY: &str = r#"import os, sys
import tabulate
import helper
print("tabulate", tabulate.__version__)
print("unbuffered", os.environ.get("PYTHONUNBUFFERED"))
print("exe", sys.executable)
print(helper.greet(sys.argv[1]))
"#;

const HELPER_PY: &str = "def greet(who):\n    return 'hello ' + who\n";

fn report_manifest(name: &str, risk: &str, requirements: &str) -> String {
    let approval = if risk == "high" {
        "[approval]\napprovers = [\"group:leads\"]\n"
    } else {
        ""
    };
    format!(
        r#"name = "{name}"
risk = "{risk}"
description = "Print a table with tabulate"
timeout = "120s"
[[param]]
name = "who"
type = "string"
default = "world"
[python]
script = "py/report.py"
args = ["{{who}}"]
requirements = "{requirements}"
[access]
run = ["group:sre", "anyone"]
{approval}"#
    )
}

/// Writes `manifests/py/` (the script, its helper module, `requirements`)
/// and the named manifests.
fn write_python(root: &Path, requirements: &str, manifests: &[(&str, String)]) {
    let py = root.join("manifests/py");
    std::fs::create_dir_all(&py).unwrap();
    std::fs::write(py.join("report.py"), REPORT_PY).unwrap();
    std::fs::write(py.join("helper.py"), HELPER_PY).unwrap();
    std::fs::write(py.join("requirements.txt"), requirements).unwrap();
    for (file, text) in manifests {
        std::fs::write(root.join("manifests").join(file), text).unwrap();
    }
}

/// The details of the run's finishing audit entry (`run.succeeded`, `run.failed`…).
async fn finish_details(engine: &Engine, id: RunId) -> Value {
    engine
        .store()
        .audit_entries(Some(id), 0, 1000)
        .await
        .expect("audit entries")
        .into_iter()
        .rfind(|e| e.actor.starts_with("runner:"))
        .map(|e| e.details)
        .expect("the runner reported an outcome")
}

/// Runs `script` with `args` as alice and waits for it to end; the progress
/// texts seen while it ran, and the run.
async fn run_and_watch(engine: &Engine, line: &str) -> (Vec<String>, execgov::store::Run) {
    let mut events = engine.subscribe();
    let reply = say(engine, &person("alice"), line).await;
    assert_eq!(reply.kind, ReplyKind::Accepted, "{}", reply.text);
    let id = reply.run.expect("a run was recorded").id;
    let watcher = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Ok(e) = events.recv().await {
            if e.run != id {
                continue;
            }
            if let Some((_, text)) = e.progress {
                seen.push(text);
            }
            if e.state.is_final() {
                break;
            }
        }
        seen
    });
    let run = wait_final(engine, id).await;
    let seen = tokio::time::timeout(std::time::Duration::from_secs(5), watcher)
        .await
        .map(|r| r.unwrap_or_default())
        .unwrap_or_default();
    (seen, run)
}

both_backends!(
    the_first_run_prepares_its_environment_and_the_second_reuses_it,
    |b| async move {
        let app = start_with(b, |root| {
            write_python(
                root,
                "# pinned\ntabulate==0.9.0\n",
                &[(
                    "py-report.toml",
                    report_manifest("py-report", "low", "py/requirements.txt"),
                )],
            )
        })
        .await;
        let e = &app.engine;

        let (progress, first) = run_and_watch(e, "run py-report who=team").await;
        assert_eq!(
            first.state,
            RunState::Succeeded,
            "first run: {:?} {:?}",
            first.error,
            first.output_tail
        );
        let tail = first.output_tail.clone().unwrap_or_default();
        assert!(
            tail.contains("tabulate 0.9.0"),
            "the pinned package is importable: {tail}"
        );
        assert!(
            tail.contains("unbuffered 1"),
            "PYTHONUNBUFFERED=1 is set: {tail}"
        );
        assert!(
            tail.contains("hello team"),
            "the script's folder is on PYTHONPATH and args reach it: {tail}"
        );
        assert!(
            tail.contains(&format!("{}", app.env.path().join("data/envs").display())),
            "the interpreter is the environment's, under data_dir/envs: {tail}"
        );
        assert!(
            progress
                .iter()
                .any(|p| p == "preparing environment: installing 1 package"),
            "the first run says it prepares its environment: {progress:?}"
        );
        let first_py = &finish_details(e, first.id).await["python"];
        assert_eq!(
            first_py["cached"], false,
            "the first run built it: {first_py}"
        );
        assert!(
            first_py["version"]
                .as_str()
                .is_some_and(|v| v.starts_with('3')),
            "the interpreter's version is audited: {first_py}"
        );
        let interpreter = first_py["interpreter"].as_str().unwrap_or("");
        assert!(
            !interpreter.contains("/shims/"),
            "the audited interpreter is a real binary, not a shim: {interpreter}"
        );

        let (progress, second) = run_and_watch(e, "run py-report").await;
        assert_eq!(
            second.state,
            RunState::Succeeded,
            "second run: {:?}",
            second.error
        );
        let second_py = &finish_details(e, second.id).await["python"];
        assert_eq!(
            second_py["cached"], true,
            "the second run reused it: {second_py}"
        );
        assert_eq!(second_py["env"], first_py["env"], "the same environment");
        assert!(
            !progress
                .iter()
                .any(|p| p.starts_with("preparing environment")),
            "a cache hit prepares nothing: {progress:?}"
        );
        eprintln!(
            "environment: built in {} ms, found in {} ms",
            first_py["prepare_ms"], second_py["prepare_ms"]
        );
    }
);

both_backends!(
    editing_requirements_ends_a_pending_approval,
    |b| async move {
        let app = start_with(b, |root| {
            write_python(
                root,
                "tabulate==0.9.0\n",
                &[(
                    "py-risky.toml",
                    report_manifest("py-risky", "high", "py/requirements.txt"),
                )],
            )
        })
        .await;
        let e = &app.engine;
        let reply = say(e, &person("alice"), "run py-risky").await;
        let run = reply
            .run
            .unwrap_or_else(|| panic!("a run was recorded: {}", reply.text));
        assert_eq!(run.state, RunState::AwaitingApproval, "{}", reply.text);

        let reqs = app.env.path().join("manifests/py/requirements.txt");
        std::fs::write(&reqs, "tabulate==0.8.10\n").unwrap();
        let approve = say(e, &person("bob"), &format!("approve {}", run.id)).await;
        assert!(
            approve.is_error(),
            "an approval of changed dependencies is refused: {}",
            approve.text
        );
        let ended = e.store().get_run(run.id).await.unwrap();
        assert_eq!(
            ended.state,
            RunState::Rejected,
            "the request ends like one whose script was edited"
        );
    }
);

both_backends!(
    an_unresolvable_requirement_fails_the_run_with_the_resolvers_message,
    |b| async move {
        let app = start_with(b, |root| {
            write_python(
                root,
                "execgov-no-such-package-zq9==1.0\n",
                &[(
                    "py-broken.toml",
                    report_manifest("py-broken", "low", "py/requirements.txt"),
                )],
            )
        })
        .await;
        let e = &app.engine;
        let (_, run) = run_and_watch(e, "run py-broken").await;
        assert_eq!(run.state, RunState::Failed);
        let error = run.error.unwrap_or_default();
        assert!(
            error.contains("preparing the Python environment")
                && error.contains("execgov-no-such-package-zq9"),
            "the run's error carries the resolver's message: {error}"
        );
        let details = finish_details(e, run.id).await;
        assert_eq!(
            details["ending"]["kind"], "not_started",
            "the script never started: {details}"
        );
        let envs = app.env.path().join("data/envs");
        let left: Vec<_> = std::fs::read_dir(&envs)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(
            left.iter().all(|n| n.to_string_lossy().ends_with(".lock")),
            "a failed build leaves no environment behind: {left:?}"
        );
    }
);

both_backends!(a_pep723_script_runs_with_its_dependencies, |b| async move {
    let app = start_with(b, |root| {
            let py = root.join("manifests/py");
            std::fs::create_dir_all(&py).unwrap();
            std::fs::write(
                py.join("inline.py"),
                "# /// script\n# dependencies = [\"tabulate==0.9.0\"]\n# ///\nimport tabulate\nprint(tabulate.tabulate([[1, 2]], headers=['a', 'b']))\nprint('version', tabulate.__version__)\n",
            )
            .unwrap();
            std::fs::write(
                root.join("manifests/inline.toml"),
                "name = \"inline\"\ntimeout = \"120s\"\n[python]\nscript = \"py/inline.py\"\n[access]\nrun = [\"anyone\"]\n",
            )
            .unwrap();
        })
        .await;
    let e = &app.engine;
    let (_, run) = run_and_watch(e, "run inline").await;
    assert_eq!(
        run.state,
        RunState::Succeeded,
        "{:?} {:?}",
        run.error,
        run.output_tail
    );
    let tail = run.output_tail.unwrap_or_default();
    assert!(
        tail.contains("version 0.9.0"),
        "the inline dependency is installed: {tail}"
    );
});

#[test]
fn check_names_the_bad_line_of_a_requirements_file() {
    let dir = tempfile::tempdir().unwrap();
    write_python(dir.path(), "tabulate==0.9.0\n-r more.txt\n", &[]);
    let path = dir.path().join("manifests/py-report.toml");
    let text = report_manifest("py-report", "low", "py/requirements.txt");
    let errors = Manifest::from_toml(&text, &path, &Config::defaults()).unwrap_err();
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(
        shown
            .iter()
            .any(|d| d.contains("py/requirements.txt line 2")
                && d.contains(&format!("{}:12:", path.display()))),
        "the manifest's `requirements` line and the file's bad line are named: {shown:?}"
    );

    let both = format!("command = [\"python3\", \"py/report.py\"]\n{text}");
    std::fs::write(
        dir.path().join("manifests/py/requirements.txt"),
        "tabulate\n",
    )
    .unwrap();
    let errors = Manifest::from_toml(&both, &path, &Config::defaults()).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|d| d.line == 1 && d.message.contains("[python]")),
        "[python] and `command` together are refused at command's line: {errors:?}"
    );
}

#[tokio::test]
async fn execgov_prepare_builds_once_with_progress_then_finds_it() {
    let env = TestEnv::new(Backend::Sqlite).await;
    write_python(
        env.path(),
        "tabulate==0.9.0\n",
        &[(
            "py-report.toml",
            report_manifest("py-report", "low", "py/requirements.txt"),
        )],
    );
    let first = execgov(&env.config_path(), &["prepare", "py-report"]);
    let out = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        out.contains("py-report: preparing environment: installing 1 package"),
        "progress is printed: {out}"
    );
    assert!(
        out.contains("ready (built"),
        "the first prepare builds: {out}"
    );
    let second = execgov(&env.config_path(), &["prepare"]);
    let out = String::from_utf8_lossy(&second.stdout);
    assert!(second.status.success(), "{out}");
    assert!(
        out.contains("py-report: environment") && out.contains("ready (cached"),
        "the next prepare (all scripts) finds it: {out}"
    );
    assert!(
        !out.contains("preparing environment"),
        "nothing is rebuilt: {out}"
    );
}

#[tokio::test]
async fn without_uv_the_environment_is_built_with_venv_and_pip() {
    let env = TestEnv::new(Backend::Sqlite).await;
    write_python(
        env.path(),
        "tabulate==0.9.0\n",
        &[(
            "py-report.toml",
            report_manifest("py-report", "low", "py/requirements.txt"),
        )],
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_execgov"))
        .args([
            "--config",
            &env.config_path().display().to_string(),
            "prepare",
            "py-report",
        ])
        .env("EXECGOV_UV", "")
        .env_remove("EXECGOV_DATABASE_URL")
        .env_remove("EXECGOV_CONFIG")
        .env("EXECGOV_LOG", "warn")
        .output()
        .expect("execgov runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let envs = env.path().join("data/envs");
    let marker = std::fs::read_dir(&envs)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("execgov-env.json"))
        .find(|p| p.is_file())
        .expect("a finished environment");
    let marker: Value = serde_json::from_slice(&std::fs::read(marker).unwrap()).unwrap();
    assert_eq!(marker["built_with"], "pip", "built without uv: {marker}");
    let python = marker["interpreter"]["path"].as_str().unwrap().to_string();
    assert!(!python.is_empty());
    let env_python = envs.join(
        stdout
            .split("environment ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .expect("the key is printed"),
    );
    let check = std::process::Command::new(env_python.join("bin/python"))
        .args(["-c", "import tabulate; print(tabulate.__version__)"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&check.stdout).trim(),
        "0.9.0",
        "pip installed the pin into the environment"
    );
}

both_backends!(
    a_python_command_runs_its_real_interpreter_unbuffered_with_its_folder_on_the_path,
    |b| async move {
        let app = start_with(b, |root| {
            let py = root.join("manifests/py");
            std::fs::create_dir_all(&py).unwrap();
            std::fs::write(py.join("helper.py"), HELPER_PY).unwrap();
            std::fs::write(
                py.join("plain.py"),
                "import os, sys, helper\nprint('unbuffered', os.environ.get('PYTHONUNBUFFERED'))\nprint('exe', sys.executable)\nprint(helper.greet('plain'))\n",
            )
            .unwrap();
            std::fs::write(
                root.join("manifests/plain.toml"),
                "name = \"plain\"\ncommand = [\"python3\", \"py/plain.py\"]\n[access]\nrun = [\"anyone\"]\n",
            )
            .unwrap();
        })
        .await;
        let e = &app.engine;
        let (_, run) = run_and_watch(e, "run plain").await;
        assert_eq!(
            run.state,
            RunState::Succeeded,
            "{:?} {:?}",
            run.error,
            run.output_tail
        );
        let tail = run.output_tail.unwrap_or_default();
        assert!(tail.contains("unbuffered 1"), "PYTHONUNBUFFERED=1: {tail}");
        assert!(
            tail.contains("hello plain"),
            "the script's folder is on PYTHONPATH: {tail}"
        );
        let py = &finish_details(e, run.id).await["python"];
        let interpreter = py["interpreter"].as_str().unwrap_or("");
        assert!(
            !interpreter.is_empty() && tail.contains(&format!("exe {interpreter}")),
            "the run started the audited binary, resolved once from `python3`: {py} / {tail}"
        );
        assert!(
            !interpreter.contains("/shims/"),
            "not a shim: {interpreter}"
        );
    }
);
