//! With `[runner] user`, a script runs as that user and cannot read the
//! service's database, its web secret or `/proc/<service pid>/environ`, yet
//! still runs, reads what that user may, and writes its output. The user comes
//! from `EXECGOV_TEST_RUNNER_USER`, which `tests/run` and `.ci/run` create.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::Arc;

use execgov::clock::SystemClock;
use execgov::config::Config;
use execgov::runner::{RunUser, StartError};
use execgov::types::RunState;

use super::host_table::{Column, missing};
use super::*;
use crate::helpers::{PEOPLE, person, say, wait_final};

/// The OS user the tests run scripts as; `None` (after saying why) where this
/// host cannot switch users and the README's table says so.
fn run_user() -> Option<String> {
    match std::env::var("EXECGOV_TEST_RUNNER_USER") {
        Ok(name) if !name.is_empty() => Some(name),
        _ if nix::unistd::geteuid().is_root() => panic!(
            "EXECGOV_TEST_RUNNER_USER is not set: run the tests with ./tests/run (as root it \
             creates the user), or `useradd --system --no-create-home execgov-run` and \
             export EXECGOV_TEST_RUNNER_USER=execgov-run"
        ),
        _ => {
            missing(
                runner().host(),
                Column::DataPrivate,
                "root (to run scripts as another user)",
            );
            None
        }
    }
}

/// Tries to read each argument; prints `read PATH` or `denied PATH`, counts
/// the reads of the service's files in the result, writes its uid as output.
const PROBE: &str = r#"control="$1"; shift
if cat "$control" > /dev/null; then echo "read $control"; else echo "denied $control"; fi
n=0
for f in "$@"; do
  if cat "$f" > /dev/null 2>&1; then echo "read $f"; n=$((n+1)); else echo "denied $f"; fi
done
id -u > "$EXECGOV_OUTPUT_DIR/uid.txt"
printf '{"service_files_read": %d}' "$n" > "$EXECGOV_RESULT"
"#;

const MANIFEST: &str = r#"name = "probe"
description = "Tries to read what it is given"
command = ["sh", "scripts/probe.sh", "{control}", "{db}", "{secret}", "{environ}"]
timeout = "20s"
[[param]]
name = "control"
type = "string"
[[param]]
name = "db"
type = "string"
[[param]]
name = "secret"
type = "string"
[[param]]
name = "environ"
type = "string"
[access]
run = ["anyone"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_run_as_the_run_user_cannot_read_the_service() {
    let Some(user) = run_user() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    // The run user must reach the manifests and the run folders (not data/).
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::create_dir_all(root.join("manifests/scripts")).expect("mkdir");
    std::fs::write(root.join("manifests/probe.toml"), MANIFEST).expect("manifest");
    std::fs::write(root.join("manifests/scripts/probe.sh"), PROBE).expect("script");
    std::fs::write(root.join("control.txt"), "anyone may read this\n").expect("control");
    let config = format!(
        "manifests = \"manifests\"\ndata_dir = \"data\"\n[database]\nurl = \"sqlite://{}/data/execgov.db\"\n\
         [runner]\npool_size = 2\nkill_grace = \"1s\"\nuser = \"{user}\"\nruns_dir = \"runs\"\n{PEOPLE}",
        root.display()
    );
    std::fs::write(root.join("execgov.toml"), config).expect("config");
    let config = Config::load(Some(&root.join("execgov.toml"))).expect("config loads");
    let engine = execgov::app::build_engine(Arc::new(config), Arc::new(SystemClock))
        .await
        .expect("engine builds");
    let opts = execgov::runner::LocalOptions::from_engine(&engine);
    let runner = opts.runner.runner().expect("the runner starts").clone();
    let stop = CancellationToken::new();
    let pool = tokio::spawn(
        execgov::runner::Local::new(engine.clone(), opts).run_until_stopped(None, stop.clone()),
    );

    let data = root.join("data");
    let (db, secret) = (data.join("execgov.db"), data.join("web-secret"));
    assert!(
        db.is_file() && secret.is_file(),
        "the service's files exist"
    );
    assert_eq!(
        std::fs::metadata(&data)
            .expect("data_dir")
            .permissions()
            .mode()
            & 0o777,
        0o700,
        "data_dir is private to the service"
    );
    let environ = format!("/proc/{}/environ", std::process::id());
    let line = format!(
        "run probe control={} db={} secret={} environ={environ}",
        root.join("control.txt").display(),
        db.display(),
        secret.display()
    );
    let reply = say(&engine, &person("alice"), &line).await;
    let run = reply
        .run
        .unwrap_or_else(|| panic!("run accepted: {}", reply.text));
    let done = wait_final(&engine, run.id).await;
    stop.cancel();
    pool.await.expect("the pool stops");

    let log = execgov::runs_data::log_all(&engine, &done)
        .await
        .expect("log read")
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .expect("the log is stored");
    assert_eq!(done.state, RunState::Succeeded, "{:?}\n{log}", done.error);
    let control = format!("read {}\n", root.join("control.txt").display());
    assert!(
        log.contains(&control),
        "the probe reads what the user may:\n{log}"
    );
    for denied in [
        db.display().to_string(),
        secret.display().to_string(),
        environ,
    ] {
        assert!(
            log.contains(&format!("denied {denied}\n")),
            "the script must not read {denied}:\n{log}"
        );
    }
    assert_eq!(
        done.result,
        Some(serde_json::json!({"service_files_read": 0})),
        "nothing of the service could be read"
    );
    let uid_file = root.join(format!("runs/{}/output/uid.txt", run.id));
    let uid = std::fs::read_to_string(&uid_file).expect("the script wrote its output");
    let expected = runner.host().user.as_ref().expect("a run user").uid;
    assert_eq!(uid.trim(), expected.to_string(), "it ran as {user}");
    assert_eq!(
        std::fs::metadata(&uid_file).expect("artifact").uid(),
        nix::unistd::geteuid().as_raw(),
        "after the run its folder is the runner's again"
    );
}

#[tokio::test]
async fn a_run_folder_the_user_cannot_reach_is_refused_with_the_folder_named() {
    let Some(user) = run_user() else {
        return;
    };
    let runner = runner_with(RunnerOptions {
        scope: "it-user".into(),
        user: Some(user.clone()),
        ..RunnerOptions::default()
    });
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let ran = run_on(&runner, spec(dir.path(), &["true"])).await;
    let ExitKind::SpawnFailed(why) = &ran.outcome.kind else {
        panic!(
            "an unreachable run folder is refused: {:?}",
            ran.outcome.kind
        )
    };
    assert!(
        why.contains(&format!(
            "user `{user}` cannot enter `{}`",
            dir.path().display()
        )),
        "{why}"
    );
}

#[test]
fn an_unknown_run_user_is_refused_with_how_to_create_it() {
    let err = Runner::start(RunnerOptions {
        scope: "it-user".into(),
        user: Some("execgov-no-such-user".into()),
        ..RunnerOptions::default()
    })
    .expect_err("no such user");
    assert!(matches!(err, StartError::User(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "no user `execgov-no-such-user` on this host; create it with \
         `useradd --system --no-create-home execgov-no-such-user`"
    );
    assert!(
        RunUser::lookup("root").is_err(),
        "root is refused as a run user"
    );
}
